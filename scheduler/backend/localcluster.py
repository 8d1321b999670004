"""`local-cluster[N,C,M]`: a Master and N Workers (C cores, M MiB each) on this host.

Spark's own way of testing a real cluster in one call. The SparkContext starts
the processes before it connects (as `python -m cluster.run master|worker`,
each its own process on 127.0.0.1, in a throwaway work directory), talks to
the Master as to any standalone one, and stops them, by PID, when it stops.
The children are SIGKILLed if this driver dies (Linux), so none outlives it.
This module never imports `cluster`: it only starts its command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from scheduler.backend.master_url import parse_local_cluster

__all__ = ["LocalCluster", "start_local_cluster"]

#: How long the Master, then each Worker, may take to report itself ready.
START_TIMEOUT_S = 60.0
#: How long a stopped child may take to exit before it is killed.
STOP_TIMEOUT_S = 15.0


#: Runs `python -m cluster.run ARGS` in a process that dies with this one (Linux): it
#: asks for SIGKILL on its parent's death itself, so nothing runs between fork and exec.
_LAUNCHER = """\
import ctypes, os, runpy, signal, sys
parent = int(sys.argv[1])
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))
if os.getppid() != parent:
    sys.exit(1)
sys.argv = ["cluster.run", *sys.argv[2:]]
runpy.run_module("cluster.run", run_name="__main__", alter_sys=True)
"""


class _Child:
    """One `python -m cluster.run` process; its first stdout line is a JSON status."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.log = log
        self._log_file: IO[bytes] = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self._status: dict[str, object] | None = None
        self._read = threading.Event()
        threading.Thread(target=self._read_status, daemon=True).start()

    def _read_status(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        with contextlib.suppress(ValueError):
            self._status = json.loads(line.decode(errors="replace") or "null")
        self._read.set()
        for _ in stdout:  # keep the pipe drained
            pass

    def await_ready(self, timeout: float, what: str) -> dict[str, object]:
        """The child's status once it reports ready.

        Raises:
            RuntimeError: it failed, exited or did not report in `timeout` seconds;
                the message holds the end of its log.
        """
        self._read.wait(timeout)
        status = self._status
        if status and status.get("ready"):
            return status
        self._log_file.flush()
        tail = self.log.read_text(errors="replace")[-2000:]
        reason = (status or {}).get("error") or f"not ready after {timeout:.0f} s"
        raise RuntimeError(f"local-cluster: the {what} did not start: {reason}\n{tail}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._log_file.close()


class LocalCluster:
    """A Master and its Workers as child processes, for one SparkContext."""

    def __init__(
        self, workers: int, cores: int, memory_mb: int, worker_conf: dict[str, str] | None = None
    ) -> None:
        self.workers = workers
        self.cores = cores
        self.memory_mb = memory_mb
        #: The application's spark.worker.resource* keys: its workers get them, as in Spark.
        self.worker_conf = dict(worker_conf or {})
        self.url = ""
        self._children: list[_Child] = []
        self._dir = Path(tempfile.mkdtemp(prefix="sparkctl-local-cluster-"))

    def start(self) -> str:
        """Start the Master, then the Workers; returns the Master's spark:// URL.

        Raises:
            RuntimeError: a process did not start (everything started is stopped).
        """
        env = dict(os.environ)
        # The children import `cluster` from wherever this driver imports `scheduler`.
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        try:
            master = _Child(
                ["master", "--port", "0", "--work-dir", str(self._dir / "master")],
                self._dir / "master.log",
                env,
            )
            self._children.append(master)
            self.url = str(master.await_ready(START_TIMEOUT_S, "Master")["url"])
            for i in range(self.workers):
                args = ["worker", self.url, "--cores", str(self.cores)]
                args += ["--memory", f"{self.memory_mb}m"]
                args += ["--work-dir", str(self._dir / f"worker-{i}")]
                for key, value in sorted(self.worker_conf.items()):
                    args += ["--conf", f"{key}={value}"]
                self._children.append(_Child(args, self._dir / f"worker-{i}.log", env))
            deadline = time.monotonic() + START_TIMEOUT_S
            for i, child in enumerate(self._children[1:]):
                status = child.await_ready(max(0.0, deadline - time.monotonic()), f"Worker {i}")
                if not status.get("registered"):
                    raise RuntimeError(f"local-cluster: Worker {i} did not register")
        except BaseException:
            self.stop()
            raise
        return self.url

    @property
    def pids(self) -> list[int]:
        """Process ids of the Master and Workers."""
        return [child.proc.pid for child in self._children]

    def stop(self) -> None:
        """Workers first (they stop their executors), then the Master; then the files."""
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


def start_local_cluster(
    master: str, executor_memory_mb: int, conf: Mapping[str, str] | None = None
) -> LocalCluster:
    """Start the cluster a local-cluster[N,C,M] URL asks for.

    Raises:
        ValueError: an executor would not fit in a worker's M MiB (Spark's check).
        RuntimeError: a process did not start.
    """
    shape = parse_local_cluster(master)
    assert shape is not None, master
    workers, cores, memory_mb = shape
    if executor_memory_mb > memory_mb:
        raise ValueError(
            f"Asked to launch cluster with {memory_mb} MiB/worker but requested "
            f"{executor_memory_mb} MiB/executor (spark.executor.memory)"
        )
    worker_conf = {
        k: v
        for k, v in (conf or {}).items()
        if k.startswith("spark.worker.resource") or k == "spark.worker.resourcesFile"
    }
    cluster = LocalCluster(workers, cores, memory_mb, worker_conf)
    cluster.start()
    return cluster
