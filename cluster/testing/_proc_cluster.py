"""A Master and N Workers as `python -m cluster.run` processes on 127.0.0.1.

`ClusterProcess` is one child, ready once it printed its JSON ready line and
bound to the harness by `--stop-on-stdin-eof` (a harness that dies leaves no
orphan); `ProcCluster` starts a master and workers, hands out client envs for
the drivers of tests, and at the end checks that no core or MiB is held,
stops workers before the master by PID, SIGKILLs what they left and proves
every PID it saw is gone. gRPC and protobuf load only when a method needs
them (`client_env`, `state`): starting and stopping processes needs psutil.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

import psutil

from cluster.testing._processes import alive, descendant_pids, wait_until

if TYPE_CHECKING:
    from rpcenv import RpcEndpointRef, RpcEnv
    from sparkctl.v1 import master_service_pb2 as api

__all__ = ["ROOT", "ClusterProcess", "ProcCluster"]

#: The repository root: children import our packages from here even without an install.
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _childless(proc: ClusterProcess) -> bool:
    return not proc.children()


class ClusterProcess:
    """One `python -m cluster.run` child, ready once it printed its JSON ready line.

    Raises:
        AssertionError: the child exits, reports `{"ready": false}`, or says nothing
            within `timeout` (its stderr tail is in the message; it is killed first).
    """

    def __init__(self, args: list[str], log_path: pathlib.Path, timeout: float = 20.0) -> None:
        self.args = args
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "cluster.run", *args, "--stop-on-stdin-eof"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=ROOT,
        )
        lines: queue.Queue[bytes] = queue.Queue()
        stdout = self.popen.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(
                f"cluster.run {args} not ready in {timeout}s: {self.stderr_tail()}"
            ) from None
        self.ready_after = time.monotonic() - self.started
        if not line:
            self.kill()
            raise AssertionError(f"cluster.run {args} died: {self.stderr_tail()}")
        self.info: dict[str, Any] = json.loads(line)
        if not self.info.get("ready"):
            self.kill()
            raise AssertionError(f"cluster.run {args} failed: {self.info}")

    @property
    def pid(self) -> int:
        """The child's PID (what every stop and leak check goes by)."""
        return self.popen.pid

    @property
    def url(self) -> str:
        """The `spark://` URL it reported ready with (a master's, or a worker's own)."""
        return str(self.info["url"])

    def alive(self) -> bool:
        """Whether the child still runs."""
        return self.popen.poll() is None

    def stderr_tail(self, chars: int = 2000) -> str:
        """The end of the child's log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def rss_mb(self) -> float:
        """The child's resident memory in MiB (benchmarks report it)."""
        return float(psutil.Process(self.pid).memory_info().rss) / (1 << 20)

    def children(self) -> list[int]:
        """PIDs of the child's living descendants (a worker's executors)."""
        return descendant_pids(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the Master/Worker stops its own children), then SIGKILL after `timeout`."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def kill(self) -> None:
        """SIGKILL, as a crash would: the child's own children are not stopped."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)
        self._close()

    def _close(self) -> None:
        for pipe in (self.popen.stdin, self.popen.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._log.close()


class ProcCluster:
    """A Master and N Workers as processes on 127.0.0.1; client envs for drivers of tests.

    Args:
        work_dir: where the master's and workers' work dirs and logs go (created).
        conf: `--conf` pairs every process gets (e.g. a short `spark.worker.timeout`).
        workers: how many workers to start at once, each with `cores` and `memory`.
        master_port: 0 for any free port; a fixed one to restart the master on it.
        ready_timeout: how long each process may take to print its ready line.
    """

    def __init__(
        self,
        work_dir: pathlib.Path,
        conf: Mapping[str, str] | None = None,
        *,
        workers: int = 0,
        cores: int = 2,
        memory: str = "1g",
        master_port: int = 0,
        ready_timeout: float = 20.0,
    ) -> None:
        self.tmp = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self.conf = dict(conf or {})
        self.ready_timeout = ready_timeout
        self.procs: list[ClusterProcess] = []
        self.workers: list[ClusterProcess] = []
        self.envs: list[RpcEnv] = []
        self._seen: set[int] = set()
        try:
            self.master = self._start_master(master_port)
            for _ in range(workers):
                self.add_worker(cores, memory, require_registered=True)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ProcCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _conf_args(self) -> list[str]:
        return [arg for k, v in self.conf.items() for arg in ("--conf", f"{k}={v}")]

    def _spawn(self, args: list[str], log_name: str) -> ClusterProcess:
        proc = ClusterProcess(args, self.tmp / log_name, self.ready_timeout)
        self.procs.append(proc)
        self._seen.add(proc.pid)
        return proc

    def _start_master(self, port: int) -> ClusterProcess:
        args = ["master", "--port", str(port), "--work-dir", str(self.tmp / "master")]
        return self._spawn([*args, *self._conf_args()], f"master-{len(self.procs)}.log")

    @property
    def url(self) -> str:
        """The master's `spark://127.0.0.1:port`."""
        return str(self.master.info["url"])

    @property
    def master_port(self) -> int:
        """The master's RPC port (a restarted master gets the same one)."""
        return int(self.url.rsplit(":", 1)[1])

    def restart_master(self, kill: bool = False) -> ClusterProcess:
        """Stop (or SIGKILL) the master and start a new one on the same port."""
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

    def add_worker(
        self,
        cores: int = 2,
        memory: str = "1g",
        wait: bool = True,
        require_registered: bool = False,
    ) -> ClusterProcess:
        """Start a worker; with `wait`, it is ready once registered or after 30 s of trying.

        Args:
            require_registered: fail unless the master accepted it (a test of a worker
                that cannot register leaves this off and reads `info["registered"]`).
        """
        n = len(self.workers)
        args = ["worker", self.url, "--cores", str(cores), "--memory", memory]
        args += ["--work-dir", str(self.tmp / f"worker{n}"), *self._conf_args()]
        if not wait:
            args.append("--no-wait")
        proc = self._spawn(args, f"worker{n}.log")
        self.workers.append(proc)
        if require_registered and not proc.info.get("registered"):
            raise AssertionError(f"worker{n} not registered with {self.url}: {proc.info}")
        return proc

    def client_env(self) -> RpcEnv:
        """A client-mode env (shut down by `close`) to talk to the master as a driver does."""
        from rpcenv import RpcEnv

        env = RpcEnv.create(
            "test-driver", "127.0.0.1", 0, {"spark.rpc.askTimeout": "10s"}, client_mode=True
        )
        self.envs.append(env)
        return env

    def master_ref(self, env: RpcEnv) -> RpcEndpointRef:
        """The Master endpoint, seen from `env`."""
        return env.endpoint_ref(f"spark://Master@{self.url.removeprefix('spark://')}")

    def state(self) -> api.GetClusterStateResponse:
        """The master's view of the cluster (workers, cores used, applications)."""
        from sparkctl.v1 import master_service_pb2 as api

        env = self.envs[0] if self.envs else self.client_env()
        reply = self.master_ref(env).ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    def pids(self) -> list[int]:
        """The living processes of the cluster and all their descendants (executors too)."""
        own = [p.pid for p in self.procs if p.alive()]
        found = own + [pid for p in own for pid in descendant_pids(p)]
        self._seen.update(found)
        return found

    def assert_all_free(self, timeout: float = 15.0) -> None:
        """The end-of-test resource check: no app, no core or MiB held, no executor left.

        Shuts the client envs down first (a driver that is gone frees its cores).
        """
        from sparkctl.v1 import deploy_pb2 as pb

        for env in self.envs:
            env.shutdown()
        self.envs = []
        if not self.master.alive():
            return
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            live = [w for w in state.workers if w.state == pb.WORKER_STATE_ALIVE]
            if not state.active_apps and all(
                w.cores_used == 0 and w.memory_used_mb == 0 for w in live
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"resources still held after the test: {state}")
            time.sleep(0.05)
        for worker in self.workers:
            if worker.alive():
                wait_until(
                    functools.partial(_childless, worker),
                    timeout,
                    f"worker {worker.info.get('worker_id')} to have no child process",
                )
        for env in self.envs:  # state() made one
            env.shutdown()
        self.envs = []

    def close(self, timeout: float = 15.0) -> list[int]:
        """Stop workers, then the master, by PID; SIGKILL what they left; return those PIDs."""
        for env in self.envs:
            env.shutdown()
        self.envs = []
        leftovers = [pid for p in self.procs for pid in p.children()]
        self._seen.update(leftovers)
        for proc in reversed(self.procs):
            proc.stop(timeout)
        killed = [pid for pid in leftovers if alive(pid)]
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return killed

    def assert_no_leaks(self, timeout: float = 10.0) -> None:
        """After `close`: every PID this cluster started or saw under it is gone."""
        wait_until(
            lambda: not [pid for pid in self._seen if alive(pid)],
            timeout,
            f"processes of the cluster to exit: {sorted(p for p in self._seen if alive(p))}",
        )
