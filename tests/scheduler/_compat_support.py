"""Helpers of the PySpark-compatibility suite: implementation choice, contexts, the cluster.

Every behaviour in tests/scheduler/test_compat_*.py was first checked against
real PySpark; the same files still run against it. The implementation is
chosen with the environment variable ``SPARKCTL_TEST_IMPL``:

- ``sparkctl`` (default): ``from scheduler import ...`` is our driver.
- ``pyspark``: the oracle. ``scheduler`` is aliased to the real ``pyspark``
  package (run from a venv that has pyspark, pytest and pytest-timeout):
  ``make test-oracle`` (it installs PySpark into ``.bench-venv/``).

This module never leaves a process behind: the cluster it starts is stopped
by PID with bounded waits, and its descendants are killed by PID if they
outlive it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The bounded poll of every compat test; `cluster.testing` loads its gRPC parts lazily,
# so this import works in the oracle's venv too (only psutil is needed).
from cluster.testing import wait_until as wait_until

if TYPE_CHECKING:
    from cluster.testing import ProcCluster

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
IMPL = os.environ.get("SPARKCTL_TEST_IMPL", "sparkctl")
if IMPL not in ("sparkctl", "pyspark"):
    raise RuntimeError(f"SPARKCTL_TEST_IMPL must be 'sparkctl' or 'pyspark', not {IMPL!r}")

#: How long the child processes may take to report a master and two registered workers.
CLUSTER_READY_TIMEOUT_S = 60.0
#: How long a stopped cluster may take to exit before it is killed.
CLUSTER_STOP_TIMEOUT_S = 15.0


def alias_pyspark_as_scheduler() -> None:
    """Make ``from scheduler import X`` resolve to real PySpark (oracle mode)."""
    import pyspark
    from pyspark.statcounter import StatCounter

    alias = types.ModuleType("scheduler")
    for name in pyspark.__all__:
        setattr(alias, name, getattr(pyspark, name))
    alias.StatCounter = StatCounter  # type: ignore[attr-defined]
    from pyspark.sql import Row, SparkSession

    alias.SparkSession = SparkSession  # type: ignore[attr-defined]
    alias.Row = Row  # type: ignore[attr-defined]
    import pyspark.resource

    # `from scheduler.resource import ...` is `from pyspark.resource import ...`.
    alias.resource = pyspark.resource  # type: ignore[attr-defined]
    import pyspark.errors

    # `from scheduler.errors import ...` is `from pyspark.errors import ...`.
    alias.errors = pyspark.errors  # type: ignore[attr-defined]
    # Public names PySpark keeps outside its __all__ (pyspark, its accumulators and
    # serializers modules); sparkctl exports them from `scheduler`.
    import pyspark.accumulators
    import pyspark.serializers

    alias.keyword_only = pyspark.keyword_only  # type: ignore[attr-defined]
    for name in ("INT_ACCUMULATOR_PARAM", "FLOAT_ACCUMULATOR_PARAM", "COMPLEX_ACCUMULATOR_PARAM"):
        setattr(alias, name, getattr(pyspark.accumulators, name))
    alias.PickleSerializer = pyspark.serializers.PickleSerializer  # type: ignore[attr-defined]
    alias.CloudPickleSerializer = pyspark.serializers.CloudPickleSerializer  # type: ignore[attr-defined]
    import pyspark.util

    alias.VersionUtils = pyspark.util.VersionUtils  # type: ignore[attr-defined]
    alias.__version__ = pyspark.__version__  # type: ignore[attr-defined]
    sys.modules["scheduler"] = alias
    sys.modules["scheduler.resource"] = pyspark.resource
    sys.modules["scheduler.errors"] = pyspark.errors


if IMPL == "pyspark":
    alias_pyspark_as_scheduler()


def stop_pyspark_gateway() -> None:
    """Shut down PySpark's JVM gateway (it outlives SparkContext.stop by design)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    proc = getattr(gateway, "proc", None)
    with contextlib.suppress(Exception):
        gateway.shutdown()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=CLUSTER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=CLUSTER_STOP_TIMEOUT_S)


def pickle_by_value(module: types.ModuleType) -> None:
    """Ship a module's functions by value, as cloudpickle does for a user's ``__main__``."""
    try:
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except ImportError:
        pass
    if IMPL == "pyspark":
        from pyspark import cloudpickle as pyspark_cloudpickle

        pyspark_cloudpickle.register_pickle_by_value(module)


#: Each worker offers one core, so the cluster has local[2]'s parallelism.
WORKER_CORES = 1
WORKER_MEMORY = "1024m"
WORKERS = 2


def start_cluster(work_dir: Path) -> ProcCluster:
    """A master and two one-core workers, each its own `python -m cluster.run` process.

    Stop it with ``close(CLUSTER_STOP_TIMEOUT_S)``: workers first (they stop their
    executors), then the master, then any leftover by PID.
    """
    from cluster.testing import ProcCluster  # gRPC and protobuf: not in the oracle's venv

    return ProcCluster(
        work_dir,
        {"spark.worker.timeout": "10"},
        workers=WORKERS,
        cores=WORKER_CORES,
        memory=WORKER_MEMORY,
        ready_timeout=CLUSTER_READY_TIMEOUT_S,
    )


def cluster_unavailable_reason() -> str | None:
    """Why the ``cluster`` parameter cannot run, or None when it can."""
    if IMPL == "pyspark":
        return "oracle mode runs PySpark on local[2] only"
    import importlib.util

    try:
        spec = importlib.util.find_spec("cluster.launch")
    except ImportError:
        spec = None
    if spec is None:
        return "cluster.launch (start_master/start_worker) does not exist yet"
    return None


def master_for(request: pytest.FixtureRequest, param: str) -> str:
    """The master URL for a fixture parameter: ``local[...]`` as is, ``cluster`` -> spark://."""
    if param == "cluster":
        return str(request.getfixturevalue("spark_cluster"))
    return param


def compat_conf(app_name: str) -> Any:
    """A SparkConf for tests: no UI, no progress bar."""
    from scheduler import SparkConf

    return (
        SparkConf()
        .setAppName(app_name)
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )


def new_context(master: str, app_name: str, **conf: str) -> Any:
    """Create a SparkContext; a master kind that is not implemented yet skips the test."""
    from scheduler import SparkContext

    spark_conf = compat_conf(app_name).setMaster(master)
    for key, value in conf.items():
        spark_conf.set(key, value)
    try:
        ctx = SparkContext(conf=spark_conf)
    except NotImplementedError as exc:
        pytest.skip(f"{master}: not implemented yet: {exc}")
    if IMPL == "pyspark":
        ctx.setLogLevel("ERROR")
    return ctx


def retrying_master(master: str) -> str:
    """The master URL with task retries: ``local[N]`` does not retry, ``local[N,F]`` does."""
    if master.startswith("local[") and "," not in master:
        return master[:-1] + ",2]"
    return master
