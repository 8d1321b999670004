"""The local[N] backend: the driver starts its executor process itself.

One executor process with N cores, started through the same
`python -m scheduler.executor` command line a Worker uses
(`scheduler.backend.endpoint.executor_argv`), and replaced if it dies, up to
a bound after which the application fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

from rpcenv import Conf, RpcConfigError
from rpcenv import settings as rpc_keys
from scheduler.backend.endpoint import executor_argv
from scheduler.core.taskscheduler import TaskScheduler
from sparkctl.v1 import scheduler_pb2 as pb

__all__ = [
    "LOCAL_RPC_BACKEND",
    "LocalBackend",
    "check_driver_rpc_backend",
    "local_executor_env",
    "local_rpc_backend",
]

log = logging.getLogger(__name__)

#: The RpcEnv backend a local[N] driver and its executor speak unless the app names one.
LOCAL_RPC_BACKEND = "tcp"


def local_rpc_backend(settings: Conf, explicit: Mapping[str, str]) -> str | None:
    """The backend local[N] uses instead of the configured one, or None to keep it.

    The driver and its one executor are processes of one machine: plain sockets
    (`rpcenv.tcp`) cost each message one write and one reader-thread wake-up, where
    gRPC's Python runtime costs several thread hand-offs on each side, most of a
    tiny job's time. An app that names spark.rpc.backend, or asks for TLS (which the
    tcp backend lacks), keeps what it asked for.
    """
    if rpc_keys.RPC_BACKEND.key in explicit or settings.get(rpc_keys.SSL_ENABLED):
        return None
    return LOCAL_RPC_BACKEND


def check_driver_rpc_backend(settings: Conf, local: bool) -> None:
    """Refuse, before anything starts, a backend the driver's peers cannot speak.

    A driver of a cluster registers with a Master, which speaks gRPC only (its
    services are the language-neutral contract); on tcp it failed only after the
    registration timeout, with "connection closed". The in-process `local` backend
    reaches no executor, which is always another process.

    Raises:
        RpcConfigError: naming the key and what to do.
    """
    backend = settings.get(rpc_keys.RPC_BACKEND)
    if backend == "local":
        raise RpcConfigError(
            "spark.rpc.backend=local connects envs of one process only (for tests); a "
            "driver's executors are other processes. Remove the setting"
        )
    if not local and backend == LOCAL_RPC_BACKEND:
        raise RpcConfigError(
            f"spark.rpc.backend={LOCAL_RPC_BACKEND} cannot be a standalone driver's backend: "
            "it registers with the Master, which speaks gRPC only. Remove the setting (the "
            "driver talks to its executors over tcp by itself unless TLS is on)"
        )


class LocalBackend:
    """local[N]: one executor process with N cores on this machine, restarted if it dies."""

    def __init__(
        self,
        scheduler: TaskScheduler,
        driver_url: str,
        app_id: str,
        cores: int,
        env: dict[str, str],
        max_restarts: int = 16,
        python: str = sys.executable,
    ) -> None:
        self._scheduler = scheduler
        #: The interpreter of the executor (spark.pyspark.python / PYSPARK_PYTHON, else ours).
        self.python = python
        self._driver_url = driver_url
        self._app_id = app_id
        self._cores = cores
        self._env = env
        self._max_restarts = max_restarts
        self._restarts = 0
        self._next_id = 0
        self._lock = threading.Lock()
        self._stopped = False
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Called (on a thread of its own) once no executor will be started again.
        self.on_dead: Callable[[], None] | None = None

    def start(self, timeout: float = 60.0) -> str:
        """Launch the executor and wait until it has registered; returns the app id.

        Raises:
            RuntimeError: the executor exited or did not register within `timeout`.
        """
        executor_id = self._launch()
        deadline = time.monotonic() + timeout
        with self._scheduler.lock:
            while executor_id not in self._scheduler.executors:
                proc = self.processes.get(executor_id)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"the local executor exited with code {proc.returncode} before registering"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the local executor did not register within {timeout:.0f}s")
                self._scheduler.executors_changed.wait(min(left, 0.2))
        return self._app_id

    def _launch(self) -> str:
        with self._lock:
            executor_id = str(self._next_id)
            self._next_id += 1
            argv = executor_argv(
                self._driver_url,
                executor_id,
                "127.0.0.1",
                str(self._cores),
                self._app_id,
                None,
                self.python,
            )
            try:
                self.processes[executor_id] = subprocess.Popen(
                    argv, env=self._env, stdin=subprocess.DEVNULL
                )
            except OSError as exc:
                raise RuntimeError(
                    f"cannot start the local executor with Python {self.python!r} "
                    f"(spark.pyspark.python / PYSPARK_PYTHON): {exc.strerror or exc}"
                ) from None
            return executor_id

    def executor_lost(self, executor_id: str, reason: str) -> None:
        """Replace a dead local executor (bounded)."""
        proc = self.processes.pop(executor_id, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self._stopped:
            return
        if self._restarts >= self._max_restarts:
            self._give_up(reason)
            return
        self._restarts += 1
        self._launch()

    def _give_up(self, reason: str) -> None:
        """No executor will come back: fail the jobs now instead of waiting for one forever."""
        log.error(
            "the local executor was lost %d times (last: %s); not starting another",
            self._restarts + 1,
            reason,
        )
        self._stopped = True
        message = (
            f"because the local executor was lost {self._restarts + 1} times "
            f"(last: {reason}) and no other is started"
        )
        self._scheduler.cancel_jobs(None, message)
        if self.on_dead is not None:
            threading.Thread(target=self.on_dead, name="stop-dead-app", daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        self._scheduler.broadcast_to_executors(pb.StopExecutor(reason="application finished"))
        deadline = time.monotonic() + 5.0
        for proc in list(self.processes.values()):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]


def local_executor_env(extra: dict[str, str], py_files: list[str] | None = None) -> dict[str, str]:
    """The environment of locally launched executors: the driver's, plus its sys.path."""
    env = dict(os.environ)
    env.update(extra)
    paths = [os.path.abspath(p) for p in py_files or []]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    cwd = os.getcwd()
    if cwd not in paths:
        paths.insert(0, cwd)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([existing] if existing else []))
    env.setdefault("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))
    return env
