"""Clusters for tests and benchmarks: as processes or in process, bounded waits, leak checks.

The one harness behind `tests/cluster`, the compatibility suite's `cluster` master,
the dynamic-allocation tests and `bench/` (issue 11, step 5), shipped as code as
`rpcenv/testing.py` is, so that a fix to how a cluster is started or stopped lands
once. Every process is `python -m cluster.run` on 127.0.0.1, started with
`--stop-on-stdin-eof`, so a harness that dies leaves no orphan; every wait is
bounded; `ProcCluster.close` stops workers before the master, then SIGKILLs by PID
whatever they left, and `assert_no_leaks` proves every PID it ever saw is gone.

`LocalCluster` is the in-process kind: a real Master on the local backend, with
`FakeWorker`s and `FakeDriver`s (endpoints that register and record what the
Master tells them) for tests of the Master's decisions at unit speed.
"""

from __future__ import annotations

import collections.abc
import concurrent.futures
import contextlib
import functools
import json
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any, TypeVar

import psutil
from google.protobuf.message import Message

from cluster._timers import Ticker
from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker
from rpcenv import Conf, RpcEndpoint, RpcEndpointRef, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = [
    "LOCAL_CONF",
    "ClusterProcess",
    "FakeDriver",
    "FakeWorker",
    "LocalCluster",
    "ProcCluster",
    "Recorder",
    "descendant_pids",
    "free_port",
    "wait_until",
]

T = TypeVar("T")

#: The repository root: children import our packages from here even without an install.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a fixed, reusable port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll `predicate` until it returns something truthy and return that; fail after `timeout`.

    Raises:
        AssertionError: naming `what`, when `timeout` seconds pass first (tests read it as
            a failure, never a hang).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def descendant_pids(pid: int) -> list[int]:
    """Every living descendant of `pid` (executors, Python workers), or [] if it is gone."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
        for env in self.envs:
            env.shutdown()
        self.envs = []
        if not self.master.alive():
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
        killed = [pid for pid in leftovers if _alive(pid)]
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return killed

    def assert_no_leaks(self, timeout: float = 10.0) -> None:
        """After `close`: every PID this cluster started or saw under it is gone."""
        wait_until(
            lambda: not [pid for pid in self._seen if _alive(pid)],
            timeout,
            f"processes of the cluster to exit: {sorted(p for p in self._seen if _alive(p))}",
        )


# In-process clusters: a real Master on the local backend, fake workers and drivers.


class Recorder(RpcEndpoint):
    """An endpoint that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        with self._lock:
            self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_of(self, kind: type[Message], count: int = 1, timeout: float = 10.0) -> list[Any]:
        """The messages of `kind` once there are at least `count` (bounded by `timeout`)."""

        def enough() -> list[Any]:
            found = self.of(kind)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, f"{count} {kind.__name__}")


class FakeDriver(Recorder):
    """A driver's app client: registers an application from inside its endpoint."""

    def __init__(self, master: RpcEndpointRef, description: pb.ApplicationDescription) -> None:
        super().__init__()
        self.master = master
        self.description = description
        self.registered: concurrent.futures.Future[Message] | None = None

    def on_start(self) -> None:
        # A ref made by our own env, so that the Master sees us as the sender.
        self.master = self.rpc_env.endpoint_ref(self.master.address, self.master.name)
        request = pb.RegisterApplicationRequest(
            description=self.description, driver_endpoint="AppClient"
        )
        self.registered = self.master.ask(request, timeout=10.0)

    @property
    def app_id(self) -> str:
        assert self.registered is not None
        reply = self.registered.result(timeout=10.0)
        assert isinstance(reply, pb.RegisterApplicationResponse)
        return reply.app_id


class FakeWorker(Recorder):
    """A worker that registers and records what the Master tells it, running nothing."""

    def __init__(
        self,
        master: RpcEndpointRef,
        worker_id: str,
        cores: int,
        memory_mb: int,
        incarnation: int = 1,
        heartbeat: bool = True,
        resources: collections.abc.Mapping[str, collections.abc.Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.master = master
        #: Custom resources it reports (name -> addresses).
        self.resources = dict(resources or {})
        self.worker_id = worker_id
        self.cores = cores
        self.memory_mb = memory_mb
        self.incarnation = incarnation
        self.reply: concurrent.futures.Future[Message] | None = None
        self.heartbeat = heartbeat
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        # A ref made by our own env, so that the Master sees us as the sender.
        self.master = self.rpc_env.endpoint_ref(self.master.address, self.master.name)
        self.register()
        if self.heartbeat:
            me = self.self_ref
            self._ticker = Ticker("fake-heartbeat", 0.2, lambda: me.send(pb.WorkerHeartbeat()))
            self._ticker.start()

    def silence(self) -> None:
        """Stop heartbeating (the worker hangs, as far as the Master can tell)."""
        if self._ticker is not None:
            self._ticker.stop()

    def on_stop(self) -> None:
        self.silence()

    def register(
        self,
        executors: collections.abc.Sequence[pb.ExecutorDescription] = (),
        drivers: collections.abc.Sequence[pb.DriverRuntime] = (),
    ) -> None:
        address = self.rpc_env.address
        self.reply = self.master.ask(
            pb.RegisterWorkerRequest(
                worker_id=self.worker_id,
                host=address.host,
                port=address.port,
                cores=self.cores,
                memory_mb=self.memory_mb,
                incarnation=self.incarnation,
                executors=executors,
                drivers=drivers,
                resources=[
                    pb.ResourceAddresses(name=n, addresses=a) for n, a in self.resources.items()
                ],
            ),
            timeout=10.0,
        )

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.RegisterWorkerRequest):  # a test asks us to register again
            self.register(message.executors, message.drivers)
            return
        if isinstance(message, pb.WorkerHeartbeat):  # a test asks us to heartbeat
            self.master.send(
                pb.WorkerHeartbeat(worker_id=self.worker_id, incarnation=self.incarnation)
            )
            return
        if isinstance(message, pb.ExecutorStateChanged):  # a test plays an executor's fate
            self.master.send(message)
            return
        if isinstance(message, pb.DriverStateChanged):
            self.master.send(message)
            return
        super().receive(message, sender)


LOCAL_CONF = {
    "spark.rpc.backend": "local",
    "spark.worker.timeout": "2",
    "spark.rpc.askTimeout": "10s",
}


class LocalCluster:
    """A Master on the local backend plus fake workers and drivers, all cleaned up."""

    def __init__(self, tmp_path: pathlib.Path, conf: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.conf = Conf({**LOCAL_CONF, **(conf or {})})
        self.envs: list[RpcEnv] = []
        self.workers: list[WorkerHandle] = []
        self.master: MasterHandle = start_master(self.conf, "127.0.0.1", 0, tmp_path / "master")

    def env(self, client: bool = False) -> RpcEnv:
        env = RpcEnv.create("test", "127.0.0.1", 0, self.conf, client_mode=client)
        self.envs.append(env)
        return env

    def worker(
        self, worker_id: str, cores: int = 4, memory_mb: int = 4096, **kw: Any
    ) -> FakeWorker:
        env = self.env()
        worker = FakeWorker(self.master.ref, worker_id, cores, memory_mb, **kw)
        env.setup_endpoint("Worker", worker)
        wait_until(lambda: worker.reply is not None and worker.reply.done(), 5, "registration")
        return worker

    def driver(self, **description: Any) -> FakeDriver:
        env = self.env(client=True)
        desc = pb.ApplicationDescription(
            name="test-app", command=pb.Command(argv=["true"]), memory_per_executor_mb=512
        )
        for key, value in description.items():
            if isinstance(value, Message):
                getattr(desc, key).CopyFrom(value)
            elif isinstance(value, dict):  # a map field
                getattr(desc, key).update(value)
            else:
                setattr(desc, key, value)
        driver = FakeDriver(self.master.ref, desc)
        env.setup_endpoint("AppClient", driver)
        wait_until(lambda: driver.registered is not None and driver.registered.done(), 5, "app")
        return driver

    def state(self) -> api.GetClusterStateResponse:
        reply = self.master.ref.ask_sync(api.GetClusterStateRequest(), 5.0)
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    def real_worker(self, cores: int = 2, memory_mb: int = 2048, name: str = "w") -> WorkerHandle:
        handle = start_worker(
            self.conf,
            [self.master.url],
            cores,
            memory_mb,
            "127.0.0.1",
            0,
            self.tmp_path / f"{name}{len(self.workers)}",
        )
        self.workers.append(handle)
        assert handle.wait_registered(5), "worker did not register"
        return handle

    def restart_master(self) -> MasterHandle:
        port = self.master.rpc_env.address.port
        self.master.stop()
        self.master = start_master(self.conf, "127.0.0.1", port, self.tmp_path / "master")
        return self.master

    def close(self) -> None:
        for handle in self.workers:
            handle.stop()
        for env in self.envs:
            env.shutdown()
        self.master.stop()
