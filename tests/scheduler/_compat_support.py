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
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

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
    sys.modules["scheduler"] = alias


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Each worker offers one core, so the cluster has local[2]'s parallelism.
WORKER_CORES = 1
WORKER_MEMORY_MB = 1024
WORKERS = 2


class _Child:
    """One child of _compat_cluster.py whose first ``READY x`` line gives ``x``."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_compat_cluster.py"), *args],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.lines: list[str] = []
        stdout = self.proc.stdout
        assert stdout is not None

        def read() -> None:
            for raw in stdout:
                self.lines.append(raw.decode(errors="replace").strip())

        threading.Thread(target=read, daemon=True).start()

    def await_ready(self, deadline: float) -> str:
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if line.startswith("READY "):
                    return line.split(" ", 1)[1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        err = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.proc.args!r} not ready; stdout {self.lines!r}; stderr:\n{err}")

    def stop(self) -> list[int]:
        """Close stdin (the polite stop), then SIGKILL; returns the PIDs it had started."""
        leftovers = _descendant_pids(self.proc.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=CLUSTER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=CLUSTER_STOP_TIMEOUT_S)
        self._log_file.close()
        return leftovers


def _descendant_pids(pid: int) -> list[int]:
    try:
        import psutil

        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except Exception:
        return []


class ClusterProcess:
    """A master and two one-core workers, each its own process (see _compat_cluster.py)."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.children: list[_Child] = []
        try:
            deadline = time.monotonic() + CLUSTER_READY_TIMEOUT_S
            master = _Child(
                ["master", str(free_port()), str(work_dir / "master")], work_dir / "master.log"
            )
            self.children.append(master)
            self.url = master.await_ready(deadline)
            for i in range(WORKERS):
                args = ["worker", self.url, str(WORKER_CORES), str(WORKER_MEMORY_MB)]
                args.append(str(work_dir / f"worker-{i}"))
                self.children.append(_Child(args, work_dir / f"worker-{i}.log"))
            for worker in self.children[1:]:
                worker.await_ready(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Workers first (they stop their executors), then the master; then any leftover."""
        leftovers: list[int] = []
        for child in reversed(self.children):
            leftovers += child.stop()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


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


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
