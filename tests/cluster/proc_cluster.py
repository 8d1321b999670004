"""A Master and Workers as real processes on 127.0.0.1 (`python -m cluster.run`)."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

from rpcenv import RpcEndpointRef, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Proc:
    """One `cluster.run` process and its ready line."""

    def __init__(self, args: list[str], log_path: pathlib.Path, timeout: float = 20.0) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "cluster.run", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=ROOT,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        assert self.popen.stdout is not None
        stdout = self.popen.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"cluster.run {args} not ready in {timeout}s") from None
        self.ready_after = time.monotonic() - self.started
        if not line:
            self.kill()
            raise AssertionError(f"cluster.run {args} died: {log_path.read_text()[-2000:]}")
        self.info: dict[str, Any] = json.loads(line)
        if not self.info.get("ready"):
            self.kill()
            raise AssertionError(f"cluster.run {args} failed: {self.info}")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float:
        return psutil.Process(self.pid).memory_info().rss / (1 << 20)

    def children(self) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(self.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._close()

    def _close(self) -> None:
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


class ProcCluster:
    """A Master and N Workers as processes; a client-mode env for fake drivers."""

    def __init__(self, tmp: pathlib.Path, conf: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.conf = {"spark.worker.timeout": "3", **(conf or {})}
        self.procs: list[Proc] = []
        self.workers: list[Proc] = []
        self.master = self._start_master(0)
        self.envs: list[RpcEnv] = []

    def _conf_args(self) -> list[str]:
        return [arg for k, v in self.conf.items() for arg in ("--conf", f"{k}={v}")]

    def _start_master(self, port: int) -> Proc:
        proc = Proc(
            [
                "master",
                "--port",
                str(port),
                "--work-dir",
                str(self.tmp / "master"),
                *self._conf_args(),
            ],
            self.tmp / f"master-{len(self.procs)}.log",
        )
        self.procs.append(proc)
        return proc

    @property
    def url(self) -> str:
        return str(self.master.info["url"])

    @property
    def master_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def restart_master(self, kill: bool = False) -> Proc:
        port = self.master_port
        if kill:
            self.master.kill()
        else:
            self.master.stop()
        deadline = time.monotonic() + 10
        while True:  # the port is free once the old process is gone; retry briefly
            try:
                self.master = self._start_master(port)
                return self.master
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def add_worker(self, cores: int = 2, memory: str = "1g", wait: bool = True) -> Proc:
        n = len(self.workers)
        args = [
            "worker",
            self.url,
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--work-dir",
            str(self.tmp / f"worker{n}"),
            *self._conf_args(),
        ]
        if not wait:
            args.append("--no-wait")
        proc = Proc(args, self.tmp / f"worker{n}.log")
        self.procs.append(proc)
        self.workers.append(proc)
        return proc

    def client_env(self) -> RpcEnv:
        env = RpcEnv.create(
            "test-driver", "127.0.0.1", 0, {"spark.rpc.askTimeout": "10s"}, client_mode=True
        )
        self.envs.append(env)
        return env

    def master_ref(self, env: RpcEnv) -> RpcEndpointRef:
        return env.endpoint_ref(f"spark://Master@{self.url.removeprefix('spark://')}")

    def state(self) -> api.GetClusterStateResponse:
        env = self.envs[0] if self.envs else self.client_env()
        reply = self.master_ref(env).ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    def assert_all_free(self, timeout: float = 15.0) -> None:
        """The end-of-test leak check: drivers gone, so every core and MiB is free again."""
        for env in self.envs:
            env.shutdown()
        self.envs = []
        if self.master.popen.poll() is not None:
            return
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            alive = [w for w in state.workers if w.state == pb.WORKER_STATE_ALIVE]
            if not state.active_apps and all(
                w.cores_used == 0 and w.memory_used_mb == 0 for w in alive
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"resources still held after the test: {state}")
            time.sleep(0.05)
        for worker in self.workers:
            if worker.popen.poll() is None:
                wait_until = time.monotonic() + timeout
                while worker.children() and time.monotonic() < wait_until:
                    time.sleep(0.05)
                assert not worker.children(), (
                    f"worker {worker.info['worker_id']} still has children"
                )

    def close(self) -> None:
        for env in self.envs:
            env.shutdown()
        for proc in reversed(self.procs):
            proc.stop()
