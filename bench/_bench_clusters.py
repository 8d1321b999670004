"""Standalone clusters for the driver benchmark: sparkctl's, and Spark's for the comparison.

Both start a master and one worker with 2 cores on 127.0.0.1 as child
processes, report the master URL once the worker is registered, and are
stopped by PID (then any descendant left, by PID) with bounded waits. Nothing
here binds a non-loopback address or outlives the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_processes(procs: list[subprocess.Popen[bytes]]) -> None:
    leftovers = [pid for proc in procs for pid in _descendant_pids(proc.pid)]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _descendant_pids(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


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
        return own + [pid for p in own for pid in _descendant_pids(p)]

    def stop(self) -> None:
        _stop_processes(self.procs)
        self._tmp.cleanup()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SparkctlCluster(Cluster):
    """sparkctl's master and worker, each its own process, through cluster.launch."""

    def __init__(self, cores: int = 2, memory_mb: int = 2048) -> None:
        super().__init__()
        self._logs: list[Any] = []
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            master = self._spawn(["master", str(free_port()), str(self.work_dir / "master")])
            self.url = self._await_ready(master, deadline)
            worker = self._spawn(
                ["worker", self.url, str(cores), str(memory_mb), str(self.work_dir / "worker")]
            )
            self._await_ready(worker, deadline)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.work_dir / f"{args[0]}.log", "wb")  # noqa: SIM115 - closed in stop
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_bench_cluster.py"), *args],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.procs.append(proc)
        return proc

    def _await_ready(self, proc: subprocess.Popen[bytes], deadline: float) -> str:
        lines: list[str] = []
        stdout = proc.stdout
        assert stdout is not None

        def read() -> None:
            for raw in stdout:
                lines.append(raw.decode(errors="replace").strip())

        threading.Thread(target=read, daemon=True).start()
        while time.monotonic() < deadline and proc.poll() is None:
            for line in list(lines):
                if line.startswith("READY "):
                    return line.split(" ", 1)[1]
            time.sleep(0.05)
        logs = " | ".join(
            p.read_text(errors="replace")[-1000:] for p in sorted(self.work_dir.glob("*.log"))
        )
        raise RuntimeError(f"sparkctl {proc.args!r} not ready in {READY_TIMEOUT_S}s: {logs}")

    def stop(self) -> None:
        # Worker first (it stops its executors), then the master: stdin EOF is their stop.
        for proc in reversed(self.procs):
            if proc.stdin is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=STOP_TIMEOUT_S)
        super().stop()
        for log in self._logs:
            log.close()


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
