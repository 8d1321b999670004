"""Standalone clusters for the driver benchmark: sparkctl's, and Spark's for the comparison.

Both start a master and one worker with 2 cores on 127.0.0.1 as child
processes, report the master URL once the worker is registered, and are
stopped by PID (then any descendant left, by PID) with bounded waits. Nothing
here binds a non-loopback address or outlives the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
if str(REPO) not in sys.path:  # the PySpark venv has psutil but not our packages installed
    sys.path.append(str(REPO))

# Its process helpers need only psutil (the in-process harness, gRPC, loads lazily).
from cluster.testing import descendant_pids, free_port, stop_processes  # noqa: E402


class Cluster:
    """A master and one worker; `url` once ready, `pids()` of everything it runs."""

    url: str

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-cluster-")
        self.work_dir = Path(self._tmp.name)
        self.procs: list[subprocess.Popen[bytes]] = []

    def pids(self) -> list[int]:
        """The cluster's processes and all their descendants (executors included)."""
        own = [p.pid for p in self.procs if p.poll() is None]
        return own + [pid for p in own for pid in descendant_pids(p)]

    def stop(self) -> None:
        stop_processes(self.procs, STOP_TIMEOUT_S)
        self._tmp.cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SparkctlCluster(Cluster):
    """sparkctl's master and workers, each a `python -m cluster.run` process.

    The processes are `cluster.testing.ProcCluster`'s (imported here: the PySpark
    benchmark runs in a venv without our packages); this class only gives it the
    benchmark's `Cluster` face (`url`, `pids()`, `stop()`).
    """

    def __init__(self, cores: int = 2, memory_mb: int = 2048, workers: int = 1) -> None:
        super().__init__()
        from cluster.testing import ProcCluster

        try:
            self._cluster = ProcCluster(
                self.work_dir,
                master_port=free_port(),
                workers=workers,
                cores=cores,
                memory=f"{memory_mb}m",
                ready_timeout=READY_TIMEOUT_S,
            )
        except BaseException:
            super().stop()
            raise
        self.url = self._cluster.url

    def pids(self) -> list[int]:
        """The master, the workers and all their descendants (executors included)."""
        return self._cluster.pids()

    def stop(self) -> None:
        # Workers first (they stop their executors), then the master, then leftovers by PID.
        self._cluster.close(STOP_TIMEOUT_S)
        super().stop()


class PySparkCluster(Cluster):
    """Spark's own standalone master and worker (JVMs from the pyspark package)."""

    def __init__(self, cores: int = 2, memory: str = "2g") -> None:
        super().__init__()
        import pyspark

        home = Path(pyspark.__file__).resolve().parent
        spark_class = str(home / "bin" / "spark-class")
        port, ui_port = free_port(), free_port()
        env = {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOG_DIR": str(self.work_dir),
            "SPARK_WORKER_DIR": str(self.work_dir / "work"),
            "PYSPARK_PYTHON": sys.executable,
        }
        log = open(self.work_dir / "cluster.log", "wb")  # noqa: SIM115 - lives with the cluster
        self.procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(ui_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        self.url = f"spark://127.0.0.1:{port}"
        self.procs.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--webui-port",
                    str(free_port()),
                    self.url,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        try:
            self._await_worker(ui_port)
        except BaseException:
            self.stop()
            raise

    def _await_worker(self, ui_port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json", timeout=2) as r:
                    if json.load(r).get("aliveworkers", 0) >= 1:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"Spark standalone worker not registered in {READY_TIMEOUT_S}s")
