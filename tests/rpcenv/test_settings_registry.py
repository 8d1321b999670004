"""The typed settings registry: entries, bounds, errors, and who declares which key."""

from __future__ import annotations

import ast
import logging
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import cluster.settings
import scheduler.settings
from rpcenv import (
    DURATION,
    INT,
    PORT,
    SIZE,
    Conf,
    ConfigEntry,
    ConfigSection,
    ConfigValueError,
    OptionalConfigEntry,
    RpcConfigError,
    choice,
    is_known_key,
    lookup_entry,
    registered_entries,
    registered_sections,
)
from rpcenv import settings as rpc_settings

ROOT = Path(__file__).resolve().parents[2]

#: Which key families each layer may declare (issue 11, step 3: each layer its own).
OWNED = {
    "rpcenv": (
        "spark.rpc.",
        "spark.network.",
        "spark.authenticate",
        "spark.ssl.",
        "spark.port.",
        "spark.local.dir",
        "spark.sparkctl.ui.",  # the sign-in of every web UI (webui declares nothing)
        "spark.sparkctl.rpc.",  # bounds of the RpcEnv backends
    ),
    "cluster": (
        "spark.deploy.",
        "spark.worker.",
        "spark.master.",
        "spark.sparkctl.worker.",
        "spark.sparkctl.master.",
        "spark.sparkctl.zookeeper.",
        "spark.sparkctl.submit.",
    ),
}

# A section of the test's own: entries declared here exercise the machinery only.
_TEST = ConfigSection("tests.settings_registry", "test-only")
_COUNT = _TEST.entry("spark.sparkctl.test.count", INT, "3", "a count", min=1, max=9)
_WAIT = _TEST.entry("spark.sparkctl.test.wait", DURATION, "2s", "a wait", above=0, unit="s")
_SIZE = _TEST.entry("spark.sparkctl.test.size", SIZE, "4", "a size", min=1 << 20, unit="m")
_PORT = _TEST.entry("spark.sparkctl.test.port", PORT, "0", "a port")
_MODE = _TEST.entry("spark.sparkctl.test.mode", choice("ONE", "TWO"), "ONE", "a mode")
_OPTIONAL = _TEST.optional("spark.sparkctl.test.optional", INT, "unset", min=0)
_FALLBACK = _TEST.entry("spark.sparkctl.test.fallback", DURATION, _WAIT, "falls back", above=0)


def test_every_declared_key_reads_its_default() -> None:
    entries = registered_entries()
    assert len(entries) > 100  # rpcenv, cluster and scheduler are all loaded
    empty = Conf()
    for entry in entries:
        value = empty.get(entry)
        if isinstance(entry, ConfigEntry) and isinstance(entry.default, str):
            assert value == entry.parse(entry.default), entry.key
            assert value is not None, entry.key
        elif isinstance(entry, OptionalConfigEntry):
            assert value is None, entry.key


def test_every_declared_key_has_a_doc_and_a_spark_name() -> None:
    layers = {"rpcenv", "cluster", "scheduler"}
    for entry in (e for e in registered_entries() if e.section.name in layers):
        assert entry.key.startswith("spark."), entry.key
        assert len(entry.doc) > 10, f"{entry.key} has no doc"


def test_each_layer_declares_only_its_own_keys() -> None:
    sections = {s.name: s for s in registered_sections()}
    assert {"rpcenv", "cluster", "scheduler"} <= set(sections)
    for layer, prefixes in OWNED.items():
        for entry in sections[layer].entries:
            assert entry.key.startswith(prefixes), f"{layer} declares {entry.key}"
    others = tuple(p for layer, ps in OWNED.items() if layer != "scheduler" for p in ps)
    for entry in sections["scheduler"].entries:
        assert not entry.key.startswith(others), f"scheduler declares {entry.key}"


def test_rpcenv_names_no_key_of_the_layers_above() -> None:
    # The former rpcenv/_conf.py::KNOWN_KEYS listed spark.deploy.*, spark.worker.*, spark.ui.*.
    upper = (
        *OWNED["cluster"],
        "spark.ui.",
        "spark.task.",
        "spark.executor.",
        "spark.eventLog.",
        "spark.history.",
        "spark.dynamicAllocation.",
    )
    for path in (ROOT / "rpcenv/_conf.py", ROOT / "rpcenv/settings.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not node.value.startswith(upper), f"{path.name}: {node.value!r}"


def test_typed_values_and_the_fallback_entry() -> None:
    conf = Conf(
        {
            "spark.sparkctl.test.count": "7",
            "spark.sparkctl.test.wait": "250ms",
            "spark.sparkctl.test.size": "2",
            "spark.sparkctl.test.mode": "two",
            "spark.sparkctl.test.optional": "0",
        }
    )
    assert conf.get(_COUNT) == 7
    assert conf.get(_WAIT) == 0.25
    assert conf.get(_SIZE) == 2 << 20  # a bare number in the entry's unit (MiB)
    assert conf.get(_MODE) == "TWO"  # any case in, the declared spelling out
    assert conf.get(_OPTIONAL) == 0
    assert Conf().get(_OPTIONAL) is None
    assert conf.get(_FALLBACK) == 0.25  # unset: the value of the entry it falls back to
    assert Conf().get(_FALLBACK) == 2.0
    assert Conf({"spark.sparkctl.test.fallback": "9"}).get(_FALLBACK) == 9.0
    # A plain key still reads as a Mapping does.
    assert conf.get("spark.sparkctl.test.count") == "7"
    assert conf.get("spark.nothing", "x") == "x"


def test_askTimeout_falls_back_to_the_network_timeout() -> None:
    assert Conf().get(rpc_settings.ASK_TIMEOUT) == 120.0
    assert Conf({"spark.network.timeout": "5s"}).get(rpc_settings.ASK_TIMEOUT) == 5.0
    conf = Conf({"spark.network.timeout": "5s", "spark.rpc.askTimeout": "7"})
    assert conf.get(rpc_settings.ASK_TIMEOUT) == 7.0


@pytest.mark.parametrize(
    ("entry", "value", "expected"),
    [
        (_COUNT, "0", "an integer (1..9)"),
        (_COUNT, "10", "an integer (1..9)"),
        (_COUNT, "two", "an integer (1..9)"),
        (_WAIT, "0s", "a duration such as 30s, 100ms or 2min (> 0s; a bare number is in seconds)"),
        (_WAIT, "soon", "> 0s"),
        (_SIZE, "512k", "a size such as 512m or 4g (>= 1m; a bare number is in MiB)"),
        (_SIZE, "lots", ">= 1m"),
        (_PORT, "65536", "a port number (0..65535)"),
        (_PORT, "-1", "a port number (0..65535)"),
        (_MODE, "THREE", "one of ONE, TWO"),
        (_OPTIONAL, "-1", "an integer (0..2147483647)"),
        (cluster.settings.WORKER_TIMEOUT, "0", "> 0s"),
        (cluster.settings.SPREAD_OUT, "maybe", "true or false"),
        (scheduler.settings.TASK_MAX_FAILURES, "0", "an integer (1..2147483647)"),
        (rpc_settings.MAX_MESSAGE_SIZE, "2048", "1m..2047m"),
    ],
)
def test_a_bad_value_is_one_error_naming_key_value_and_expectation(
    entry: ConfigEntry[object], value: str, expected: str
) -> None:
    conf = Conf({entry.key: value})
    with pytest.raises(ConfigValueError) as info:
        conf.get(entry)
    error = info.value
    assert isinstance(error, RpcConfigError) and isinstance(error, ValueError)
    assert (error.key, error.value) == (entry.key, value)
    assert expected in error.expected
    assert str(error).startswith(f"{entry.key}: expected ")
    assert str(error).endswith(f", not {value!r}")
    copy = pickle.loads(pickle.dumps(error))  # it crosses process boundaries intact
    assert (copy.key, copy.value, copy.expected) == (error.key, error.value, error.expected)


def test_bounds_are_inclusive_unless_above() -> None:
    assert Conf({"spark.sparkctl.test.count": "1"}).get(_COUNT) == 1
    assert Conf({"spark.sparkctl.test.count": "9"}).get(_COUNT) == 9
    assert Conf({"spark.sparkctl.test.size": "1m"}).get(_SIZE) == 1 << 20
    assert Conf({"spark.sparkctl.test.wait": "1ms"}).get(_WAIT) == pytest.approx(0.001)
    assert Conf({"spark.sparkctl.test.port": "65535"}).get(_PORT) == 65535


def test_a_key_has_one_owner() -> None:
    other = ConfigSection("tests.other_owner", "test-only")
    with pytest.raises(ValueError, match=r"spark\.worker\.timeout is declared by both cluster"):
        other.entry("spark.worker.timeout", DURATION, "1s", "a second declaration")
    assert lookup_entry("spark.worker.timeout") is cluster.settings.WORKER_TIMEOUT


def test_known_keys_and_families(caplog: pytest.LogCaptureFixture) -> None:
    for key in (
        "spark.worker.timeout",
        "spark.executor.memory",
        "spark.rpc.askTimeout",
        "spark.executorEnv.FOO",
        "spark.dynamicAllocation.someFutureKey",
        "spark.worker.resource.gpu.amount",
        "spark.sparkctl.anything",
        "not.a.spark.key",
    ):
        assert is_known_key(key), key
    assert not is_known_key("spark.not.a.real.key.for.registry")
    with caplog.at_level(logging.WARNING, logger="rpcenv._conf"):
        unknown = Conf(
            {"spark.not.a.real.key.for.registry": "1", "spark.task.cpus": "2"}
        ).warn_unknown()
    assert unknown == ["spark.not.a.real.key.for.registry"]
    assert "spark.not.a.real.key.for.registry" in caplog.text


def test_a_mistyped_key_is_warned_about_with_the_key_it_resembles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="rpcenv._conf"):
        Conf({"spark.executor.memroy": "2g", "spark.zzz.unlike.anything": "1"}).warn_unknown()
    assert sorted(r.getMessage() for r in caplog.records) == [
        "ignoring unknown configuration key spark.executor.memroy "
        "(did you mean spark.executor.memory?)",
        "ignoring unknown configuration key spark.zzz.unlike.anything",  # like no key
    ]


def test_untyped_getters_fall_back_to_declared_defaults() -> None:
    # Readers not yet converted (and keys read by prefix) keep Spark's defaults.
    conf = Conf()
    assert conf.get_str("spark.worker.timeout") == "60"
    assert conf.get_duration("spark.locality.wait") == 3.0
    assert conf.get_str("spark.nothing.declared") is None
    with pytest.raises(ConfigValueError, match=r"spark\.x\.flag: expected true or false"):
        Conf({"spark.x.flag": "maybe"}).get_bool("spark.x.flag")


def test_a_process_that_imports_only_rpcenv_still_knows_every_layers_keys() -> None:
    # rpcenv names no upper layer: the sparkctl.settings entry points bring their sections
    # in when every key must be known (a driver never imports cluster, yet a
    # spark-defaults.conf with spark.worker.timeout must not warn there).
    code = (
        "import sys\n"
        "from rpcenv import Conf\n"
        "assert 'cluster' not in sys.modules and 'scheduler' not in sys.modules\n"
        "conf = Conf({'spark.worker.timeout': '5', 'spark.task.cpus': '2', 'spark.bogus.x': '1'})\n"
        "print(conf.warn_unknown())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['spark.bogus.x']", done.stdout + done.stderr


_UNTYPED = {"get_str", "get_bool", "get_int", "get_float", "get_duration", "get_size"}


def test_no_declared_key_is_read_by_an_untyped_getter() -> None:
    # A declared key has one type, one default and one set of bounds: reading it with
    # conf.get_int("spark.x", 4) would state a second default at the reader.
    declared = {e.key for e in registered_entries()}
    found = []
    for package in ("rpcenv", "cluster", "scheduler", "cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _UNTYPED
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in declared
                ):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.append(f"{where} {node.func.attr}({node.args[0].value!r})")
    assert not found, "read these through their entries (conf.get(ENTRY)):\n" + "\n".join(found)
