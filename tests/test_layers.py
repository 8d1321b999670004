"""The layer gate: which of our packages may import which (issue 11, step 6).

The layering in DESIGN.md held by discipline alone; this test makes it a gate
(`make layers`, run by `make check`). It reads the sources with `ast` and never
imports them, so it is fast and sees every import: module level, inside
functions (the lazy imports that dodge cycles) and under `if TYPE_CHECKING:`,
plus `importlib.import_module("literal")`. The rules, lowest layer first:

- only `rpcenv/grpc/` imports gRPC (`grpc`, `grpc_*`, the generated `*_pb2_grpc`);
- `rpcenv` imports none of `cluster`, `scheduler`, `cli`, `webui`;
- `cluster` and `scheduler` never import each other, nor `cli`;
- `webui` imports none of our packages;
- inside `scheduler`, the subpackages form layers (`SCHEDULER_LAYERS`, top
  first, as in scheduler/README.md): a subpackage imports only those of lower
  ranks, never a sibling of its own rank nor one above.

A violation that cannot be fixed at once goes into `ALLOWED` with its reason;
an entry that no longer matches anything fails the gate, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rpcenv", "webui", "cluster", "scheduler", "cli")
OURS = (*PACKAGES, "sparkctl")


@dataclass(frozen=True)
class Rule:
    """Modules under `source` (a dotted prefix) must not import what `forbids` matches."""

    name: str
    source: str
    forbidden: tuple[str, ...]
    exempt: str | None = None  # a dotted prefix under `source` the rule does not cover
    grpc: bool = False  # also forbid grpc, grpc_* and generated *_pb2_grpc modules


# scheduler's subpackages, top rank first; a rank may import only later ranks.
SCHEDULER_LAYERS: tuple[tuple[str, ...], ...] = (
    ("api", "history"),
    ("backend", "status"),
    ("core", "executor"),
    ("rdd",),
    ("task",),
    ("shuffle", "resource"),
)


def _scheduler_rules() -> Iterator[Rule]:
    for rank, names in enumerate(SCHEDULER_LAYERS):
        above = [n for higher in SCHEDULER_LAYERS[:rank] for n in higher]
        for name in names:
            others = [*above, *(n for n in names if n != name)]
            yield Rule(
                f"scheduler.{name} imports only lower layers",
                f"scheduler.{name}",
                tuple(f"scheduler.{n}" for n in others),
            )


RULES = (
    *(
        Rule("grpc only in rpcenv/grpc", pkg, (), exempt="rpcenv.grpc", grpc=True)
        for pkg in PACKAGES
    ),
    Rule(
        "rpcenv is below the cluster and the driver",
        "rpcenv",
        ("cluster", "scheduler", "cli", "webui"),
    ),
    Rule("cluster does not know the driver", "cluster", ("scheduler", "cli")),
    Rule("the driver does not know the cluster", "scheduler", ("cluster", "cli")),
    Rule("webui is a leaf library", "webui", tuple(p for p in OURS if p != "webui")),
    *_scheduler_rules(),
    Rule(
        "scheduler.settings is a leaf every subpackage may read",
        "scheduler.settings",
        tuple(f"scheduler.{n}" for names in SCHEDULER_LAYERS for n in names),
    ),
    Rule(
        "scheduler.errors is a leaf every subpackage may raise from",
        "scheduler.errors",
        tuple(f"scheduler.{n}" for names in SCHEDULER_LAYERS for n in names),
    ),
)

# (importing module, imported module) -> why it is tolerated for now. Add an entry
# only with a reason and an issue to remove it; stale entries fail the gate.
ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Violation:
    """One forbidden import, with where it is, for a readable failure."""

    rule: str
    module: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported} ({self.rule})"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_grpc(name: str) -> bool:
    top = name.split(".", 1)[0]
    return top == "grpc" or top.startswith("grpc_") or name.endswith("_pb2_grpc")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every module `tree` imports, absolute, with its line (relative imports resolved)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            # `from pkg import sub` may name a submodule (`from sparkctl.v1 import x_pb2_grpc`).
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def scan(root: Path, rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    """The violations of `rules` by the packages under `root`, one per (module, import)."""
    found: dict[tuple[str, str, int], Violation] = {}
    for pkg in sorted({rule.source.split(".")[0] for rule in rules}):
        for path in sorted((root / pkg).rglob("*.py")):
            module = _module_name(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for imported, line in imports_of(tree, module, path.name == "__init__.py"):
                for rule in rules:
                    if not _under(module, rule.source):
                        continue
                    if rule.exempt is not None and _under(module, rule.exempt):
                        continue
                    bad = any(_under(imported, f) for f in rule.forbidden) or (
                        rule.grpc and _is_grpc(imported)
                    )
                    key = (rule.name, module, line)  # one report per import statement
                    if bad and key not in found:
                        rel = str(path.relative_to(root))
                        found[key] = Violation(rule.name, module, imported, rel, line)
    return list(found.values())


def test_the_tree_obeys_the_layers() -> None:
    violations = [v for v in scan(ROOT) if (v.module, v.imported) not in ALLOWED]
    assert not violations, "layer violations:\n" + "\n".join(map(str, violations))


def test_every_allowed_entry_is_still_needed() -> None:
    seen = {(v.module, v.imported) for v in scan(ROOT)}
    stale = sorted(set(ALLOWED) - seen)
    assert not stale, f"ALLOWED entries that match no import any more, remove them: {stale}"


def test_the_scan_sees_our_real_imports() -> None:
    """Guards against a gate that passes because it reads nothing."""
    tree = ast.parse((ROOT / "rpcenv/grpc/_server.py").read_text(encoding="utf-8"))
    assert any(_is_grpc(name) for name, _ in imports_of(tree, "rpcenv.grpc._server", False))
    assert sum(1 for _ in (ROOT / "scheduler").rglob("*.py")) > 20


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for pkg in PACKAGES:
        (root / pkg).mkdir(exist_ok=True)
        (root / pkg / "__init__.py").touch()


@pytest.mark.parametrize(
    ("rel", "text", "rule", "imported"),
    [
        ("cluster/master.py", "import grpc\n", "grpc only in rpcenv/grpc", "grpc"),
        (
            "scheduler/_x.py",
            "from grpc_health.v1 import health\n",
            "grpc only in rpcenv/grpc",
            "grpc_health.v1",
        ),
        (
            "cli/_x.py",
            "from sparkctl.v1 import deploy_pb2_grpc\n",
            "grpc only in rpcenv/grpc",
            "sparkctl.v1.deploy_pb2_grpc",
        ),
        (
            "scheduler/_ctx.py",
            "def f() -> None:\n    from cluster.placement import plan\n",
            "the driver does not know the cluster",
            "cluster.placement",
        ),
        (
            "cluster/worker.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import scheduler.core.dag\n",
            "cluster does not know the driver",
            "scheduler.core.dag",
        ),
        (
            "cluster/sub/x.py",
            "try:\n    from scheduler import SparkContext\nexcept ImportError:\n    pass\n",
            "cluster does not know the driver",
            "scheduler",
        ),
        ("cluster/x.py", "import cli.main\n", "cluster does not know the driver", "cli.main"),
        (
            "rpcenv/_x.py",
            "import importlib\nimportlib.import_module('webui.server')\n",
            "rpcenv is below the cluster and the driver",
            "webui.server",
        ),
        ("webui/server.py", "from rpcenv import RpcEnv\n", "webui is a leaf library", "rpcenv"),
        (
            "scheduler/rdd/x.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from scheduler.api.context import SparkContext\n",
            "scheduler.rdd imports only lower layers",
            "scheduler.api.context",
        ),
        (
            "scheduler/executor/x.py",
            "def f() -> None:\n    from scheduler.core.dag import DAGScheduler\n",
            "scheduler.executor imports only lower layers",
            "scheduler.core.dag",
        ),
    ],
)
def test_the_gate_fails_on_a_violation(
    tmp_path: Path, rel: str, text: str, rule: str, imported: str
) -> None:
    _write(tmp_path, {rel: text})
    violations = scan(tmp_path)
    assert [(v.rule, v.imported) for v in violations] == [(rule, imported)], violations
    assert violations[0].path == rel


def test_the_gate_passes_allowed_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "rpcenv/grpc/_server.py": "import grpc\nfrom grpc_health.v1 import health\n",
            "cluster/master.py": "from rpcenv import RpcEnv\nfrom cluster.placement import plan\n",
            "scheduler/_ctx.py": "import rpcenv\nfrom sparkctl.v1 import rpc_pb2\n",
            "cli/main.py": "import cluster.run\nimport scheduler\nimport webui.server\n",
            "webui/server.py": "import http.server\nfrom .util import x\n",
        },
    )
    assert scan(tmp_path) == []
