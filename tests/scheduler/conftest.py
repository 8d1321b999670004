"""Fixtures of the PySpark-compatibility suite (tests/scheduler/test_compat_*.py).

``sc`` is one SparkContext per test module, parametrized over ``local[2]``
and ``cluster`` (a real master and two one-core workers, processes on
127.0.0.1, started once per session through ``cluster.launch``). The cluster
parameter is skipped, with the reason, while ``cluster.launch`` does not
exist. ``SPARKCTL_TEST_IMPL=pyspark`` runs the same tests on real PySpark
(see _compat_support.py).

Test modules' functions reach executors by value, as a user's ``app.py``
does: executors cannot import pytest's test modules. This file never starts
a process it does not stop.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _compat_support as support


@pytest.fixture(autouse=True, scope="module")
def _ship_test_module_by_value(request: pytest.FixtureRequest) -> None:
    if Path(str(request.path)).resolve().parent == support.HERE:
        support.pickle_by_value(request.module)


@pytest.fixture(autouse=True, scope="session")
def _stop_pyspark_gateway() -> Iterator[None]:
    """Oracle mode: PySpark keeps its JVM for the life of the process; stop it by PID."""
    yield
    if support.IMPL == "pyspark":
        support.stop_pyspark_gateway()


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[str]:
    """URL of a master with two registered one-core workers, started once per session."""
    reason = support.cluster_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="sparkctl-compat-") as tmp:
        cluster = support.start_cluster(Path(tmp))
        try:
            yield cluster.url
        finally:
            cluster.close(support.CLUSTER_STOP_TIMEOUT_S)


@pytest.fixture(scope="module", params=["local[2]", "cluster"])
def sc(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One SparkContext per test module and master (local[2], then the real cluster)."""
    master = support.master_for(request, request.param)
    ctx = support.new_context(master, f"compat-{request.module.__name__}")
    try:
        yield ctx
    finally:
        ctx.stop()


@pytest.fixture(params=["local[2]", "cluster"])
def master(request: pytest.FixtureRequest) -> str:
    """A master URL for tests that manage their own SparkContext."""
    return support.master_for(request, request.param)
