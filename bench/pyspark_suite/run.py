"""PySpark's own RDD/core unit tests, run unchanged against sparkctl (or PySpark).

Usage (``make pyspark-tests`` / ``make pyspark-tests-oracle`` wrap this):

    python bench/pyspark_suite/run.py --spark-src DIR [--impl sparkctl|pyspark]
        [--python PY] [--files test_rdd.py,...] [--json OUT] [-k EXPR]

``--spark-src`` is a Spark source tree (a checkout of apache/spark, or just its
``python/pyspark/tests`` and ``python/test_support`` folders): PySpark's test files
are not in its wheel or sdist. `fetch_spark_tests.sh` beside this file gets them
at the pinned commit.

With ``--impl sparkctl`` every ``pyspark`` import is answered by ``scheduler``
(``shim/pyspark_alias.py``; the test utilities are ``shim/pyspark_testing.py``),
in the driver and in every executor and Python worker. With ``--impl pyspark``
the files run on real PySpark (``--python`` of a venv that has it, and a JVM),
with PySpark's own test utilities (``shim/pyspark_oracle.py`` puts back three names
that later 4.x moved). ``SPARK_HOME`` is a folder laid out for the run: the source
tree's ``python/test_support`` beside, for sparkctl, this repository's
``bin/spark-submit`` and, for PySpark, the installed package's ``bin``, ``jars``...

Each file runs in its own pytest process, as PySpark's ``run-tests`` does, so one
file's stuck context cannot fail the next. PySpark's ``ReusedPySparkTestCase``
adds a ``test_assert_classic_mode`` to every subclass; it tests the utility, not
the file, and is deselected on both sides. Every process a run starts is stopped
by PID (its process group, then any tracked descendant) before the next file.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHIM = HERE / "shim"

#: PySpark's test files for the RDD API and core: python/pyspark/tests/ less
#: test_memory_profiler.py (SQL UDFs and memory_profiler) and
#: test_install_spark.py (downloads Spark distributions).
CORE_FILES = (
    "test_appsubmit.py",
    "test_broadcast.py",
    "test_conf.py",
    "test_context.py",
    "test_daemon.py",
    "test_join.py",
    "test_pin_thread.py",
    "test_profiler.py",
    "test_rdd.py",
    "test_rddbarrier.py",
    "test_rddsampler.py",
    "test_readwrite.py",
    "test_serializers.py",
    "test_shuffle.py",
    "test_stage_sched.py",
    "test_statcounter.py",
    "test_taskcontext.py",
    "test_util.py",
    "test_worker.py",
)
DESELECT = "not test_assert_classic_mode"
#: How long one file may run before its pytest is stopped (a hang is a failure).
FILE_TIMEOUT_S = 900.0
#: How long one test may run (pytest-timeout).
TEST_TIMEOUT_S = 300


@dataclass
class Case:
    """One test's outcome."""

    name: str
    outcome: str  # passed | failed | skipped
    message: str = ""


@dataclass
class FileResult:
    """One file's outcomes."""

    file: str
    cases: list[Case] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)


def _first_line(text: str, limit: int = 240) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def _failure_summary(element: ET.Element) -> str:
    """One line for a junit failure/error: the final exception, as pytest's message has it."""
    message = element.get("message") or ""
    setup = re.fullmatch(r'failed on (setup|teardown) with "(.*)"', message, re.DOTALL)
    if setup:
        return f"[{setup.group(1)}] {_first_line(setup.group(2))}"
    if message and message != "collection failure":
        return _first_line(message)
    # A collection error's message says only that: its last 'E ' line is the exception.
    e_lines = [ln[1:].strip() for ln in (element.text or "").splitlines() if ln.startswith("E ")]
    return f"[import] {e_lines[-1][:240]}" if e_lines else _first_line(element.text or "")


def static_tests(path: Path) -> list[str]:
    """``Class.test_x`` for each test method of the file's TestCase classes, read from source.

    Used when a file fails to import, so that its tests count as failed, not as one.
    """
    tree = ast.parse(path.read_text())
    classes: dict[str, tuple[list[str], list[str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
            methods = [
                f.name
                for f in node.body
                if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                and f.name.startswith("test")
            ]
            classes[node.name] = (bases, methods)

    def lineage(name: str, seen: frozenset[str]) -> tuple[bool, list[str]]:
        bases, methods = classes.get(name, ([], []))
        is_case, found = False, list(methods)
        for base in bases:
            if base.endswith("TestCase"):
                is_case = True
            if base in classes and base not in seen:
                base_case, base_methods = lineage(base, seen | {name})
                is_case = is_case or base_case
                found += [m for m in base_methods if m not in found]
        return is_case, found

    out = []
    for name in classes:
        is_case, methods = lineage(name, frozenset())
        if is_case:
            out += [f"{name}.{m}" for m in methods]
    return out


def parse_junit(path: Path, source: Path) -> list[Case]:
    """Outcomes from pytest's junit XML; a file that does not import fails all its tests."""
    cases: list[Case] = []
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        cls = (tc.get("classname") or "").rsplit(".", 1)[-1]
        name = f"{cls}.{tc.get('name')}" if cls else str(tc.get("name"))
        outcome, message = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome, message = "failed", _failure_summary(child)
                if child.get("message") == "collection failure":
                    every = static_tests(source)
                    return [Case(t, "failed", message) for t in every or [name]]
                break
            if child.tag == "skipped":
                outcome, message = "skipped", _first_line(child.get("message") or "")
        cases.append(Case(name, outcome, message))
    return cases


def _pyspark_home(python: str, spark_src: Path, work: Path) -> Path:
    """A SPARK_HOME: the installed pyspark's files plus the source tree's test data."""
    pkg = subprocess.run(
        [python, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    home = work / "spark_home"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    for entry in Path(pkg).iterdir():
        if entry.name != "python":
            (home / entry.name).symlink_to(entry)
    (home / "python").mkdir()
    (home / "python" / "test_support").symlink_to(spark_src / "python" / "test_support")
    # test_daemon.py starts the daemon at its own folder's ../daemon.py, as in the package.
    daemon = work / "daemon.py"
    daemon.unlink(missing_ok=True)
    daemon.symlink_to(Path(pkg) / "daemon.py")
    return home


def _sparkctl_home(spark_src: Path, work: Path) -> Path:
    """A SPARK_HOME: this repository's bin/spark-submit plus the source tree's test data."""
    home = work / "spark_home"
    if home.exists():
        shutil.rmtree(home)
    (home / "bin").mkdir(parents=True)
    (home / "python").mkdir()
    (home / "python" / "test_support").symlink_to(spark_src / "python" / "test_support")
    submit = home / "bin" / "spark-submit"
    # A wrapper, not a symlink: bin/spark-submit finds the repository from its own path.
    submit.write_text(f'#!/bin/sh\nexec "{REPO / "bin" / "spark-submit"}" "$@"\n')
    submit.chmod(0o755)
    return home


def _stop_tree(proc: subprocess.Popen[bytes], seen: dict[int, float]) -> list[int]:
    """Stop the pytest process, its group and every descendant seen, by PID."""
    killed: list[int] = []
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid, created in seen.items():
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                p.kill()
                killed.append(pid)
        except psutil.Error:
            continue
    return killed


def run_file(
    file: str, args: argparse.Namespace, tests_dir: Path, env: dict[str, str], work: Path
) -> FileResult:
    """One file in its own pytest process; outcomes from its junit XML."""
    result = FileResult(file)
    junit = work / f"{Path(file).stem}.xml"
    junit.unlink(missing_ok=True)
    log = work / f"{Path(file).stem}.log"
    cmd = [
        args.python,
        "-m",
        "pytest",
        "-q",
        # Tests pickle sys.stderr (test_pickling_file_handles): it must be the real one.
        "--capture=no",
        "-p",
        "no:cacheprovider",
        "-o",
        f"timeout={TEST_TIMEOUT_S}",
        "--rootdir",
        str(work),
        f"--junitxml={junit}",
        "-k",
        f"({args.k}) and {DESELECT}" if args.k else DESELECT,
        str(tests_dir / file),
    ]
    started = time.monotonic()
    seen: dict[int, float] = {}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = started + args.file_timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    seen.setdefault(child.pid, child.create_time())
            except psutil.Error:
                pass
            time.sleep(0.5)
        if proc.poll() is None:
            result.note = f"file timed out after {args.file_timeout:g} s"
        killed = _stop_tree(proc, seen)
    result.seconds = time.monotonic() - started
    if killed:
        result.note = (result.note + "; " if result.note else "") + (
            f"{len(killed)} process(es) outlived the file and were killed"
        )
    if junit.exists():
        result.cases = parse_junit(junit, tests_dir / file)
    if not result.cases:
        # Killed or crashed before pytest wrote its report: every test of the file failed.
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        result.note = (result.note + "; " if result.note else "") + "no junit report"
        why = f"[no result] {result.note}: {tail}"[:300]
        result.cases = [Case(t, "failed", why) for t in static_tests(tests_dir / file)]
    return result


def make_env(args: argparse.Namespace, tests_dir: Path, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.impl == "sparkctl":
        env["SPARKCTL_PYSPARK_ALIAS"] = "1"
        env["SPARKCTL_PYSPARK_SPARK_HOME"] = str(_sparkctl_home(args.spark_src, work))
        env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(tests_dir), str(REPO)])
        env.pop("SPARK_HOME", None)
    else:
        env["SPARKCTL_PYSPARK_ORACLE"] = "1"
        env["SPARK_HOME"] = str(_pyspark_home(args.python, args.spark_src, work))
        env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(tests_dir)])
    # spark-submit's driver and every Python worker: the run's interpreter, as run-tests does.
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = args.python
    # As PySpark's run-tests sets it: Spark relaxes checks made for production (for one,
    # ResourceProfiles on a local master).
    env["SPARK_TESTING"] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


def report(results: list[FileResult], impl: str) -> str:
    lines = [f"PySpark's RDD/core test files on {impl}:", ""]
    lines.append(f"{'file':<24} {'tests':>5} {'pass':>5} {'fail':>5} {'skip':>5} {'secs':>6}")
    total = {"tests": 0, "passed": 0, "failed": 0, "skipped": 0}
    for r in results:
        n, p, f, s = len(r.cases), r.count("passed"), r.count("failed"), r.count("skipped")
        total["tests"] += n
        total["passed"] += p
        total["failed"] += f
        total["skipped"] += s
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"{r.file:<24} {n:>5} {p:>5} {f:>5} {s:>5} {r.seconds:>6.0f}{note}")
    lines.append(
        f"{'total':<24} {total['tests']:>5} {total['passed']:>5} {total['failed']:>5} "
        f"{total['skipped']:>5}"
    )
    failed = [(r.file, c) for r in results for c in r.cases if c.outcome == "failed"]
    if failed:
        lines += ["", "failed:"]
        lines += [f"  {file}::{c.name}: {c.message}" for file, c in failed]
    lines += ["", f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spark-src", type=Path, required=True, help="Spark source tree")
    parser.add_argument("--impl", choices=("sparkctl", "pyspark"), default="sparkctl")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run pytest")
    parser.add_argument("--files", default=",".join(CORE_FILES), help="comma-separated")
    parser.add_argument("--work", type=Path, default=None, help="scratch dir")
    parser.add_argument("--json", type=Path, default=None, help="write outcomes here")
    parser.add_argument("-k", default="", help="pytest -k expression")
    parser.add_argument("--file-timeout", type=float, default=FILE_TIMEOUT_S)
    args = parser.parse_args(argv)

    args.spark_src = args.spark_src.resolve()
    src_tests = args.spark_src / "python" / "pyspark" / "tests"
    if not (src_tests / "test_rdd.py").is_file():
        parser.error(f"--spark-src {args.spark_src}: no python/pyspark/tests/test_rdd.py there")
    work = (args.work or REPO / ".pyspark-suite" / f"work-{args.impl}").resolve()
    tests_dir = work / "tests"
    if tests_dir.exists():
        shutil.rmtree(tests_dir)
    tests_dir.mkdir(parents=True)
    files = [f.strip() for f in args.files.split(",") if f.strip()]
    for f in files:
        if not (src_tests / f).is_file():
            parser.error(f"--files: {f} is not in {src_tests}")
        shutil.copy2(src_tests / f, tests_dir / f)
    (work / "pytest.ini").write_text("[pytest]\n")
    env = make_env(args, tests_dir, work)

    results = []
    for f in files:
        r = run_file(f, args, tests_dir, env, work)
        print(
            f"{f}: {r.count('passed')} passed, {r.count('failed')} failed, "
            f"{r.count('skipped')} skipped ({r.seconds:.0f} s){'  ' + r.note if r.note else ''}",
            flush=True,
        )
        results.append(r)
    print()
    print(report(results, args.impl))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
