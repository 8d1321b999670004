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
Master tells them) for tests of the Master's decisions at unit speed. It lives in
`cluster/_testing_local.py` and loads on first use: the rest of this module needs
only psutil, so the PySpark oracle suite and benchmark (venvs without gRPC) share
`wait_until`, `free_port`, `kill_tree` and `stop_processes` with everything else.
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar

import psutil

if TYPE_CHECKING:
    from cluster._testing_local import (
        LOCAL_CONF,
        FakeContext,
        FakeDriver,
        FakeRef,
        FakeWorker,
        LocalCluster,
        Recorder,
    )
    from cluster._timers import Clock
    from cluster.launcher import Launcher
    from rpcenv import RpcEndpointRef, RpcEnv
    from sparkctl.v1 import master_service_pb2 as api

__all__ = [
    "LOCAL_CONF",
    "ClusterProcess",
    "FakeClock",
    "FakeContext",
    "FakeDriver",
    "FakeLauncher",
    "FakeProcess",
    "FakeRef",
    "FakeTimer",
    "FakeWorker",
    "LocalCluster",
    "ProcCluster",
    "Recorder",
    "alive",
    "descendant_pids",
    "free_port",
    "free_ports",
    "kill_tree",
    "stop_processes",
    "tls_files",
    "wait_until",
]

#: The in-process harness, imported on first use (it needs gRPC and protobuf; the
#: process helpers here need only psutil, so PySpark's oracle venv can use them).
_LOCAL = frozenset(
    {"LOCAL_CONF", "FakeContext", "FakeDriver", "FakeRef", "FakeWorker", "LocalCluster", "Recorder"}
)


def __getattr__(name: str) -> Any:
    if name in _LOCAL:
        import cluster._testing_local

        return getattr(cluster._testing_local, name)
    raise AttributeError(f"module 'cluster.testing' has no attribute {name!r}")


T = TypeVar("T")

#: The repository root: children import our packages from here even without an install.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a fixed, reusable port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1, free a moment ago (all held while picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tls_files(root: pathlib.Path) -> dict[str, str]:
    """A fresh CA and a certificate for 127.0.0.1 and localhost, as PEM files in `root`.

    Returns the paths under "ca", "key" and "chain" (what `spark.ssl.rpc.*` names).
    Needs `trustme`, a dev dependency, imported here so the rest needs only psutil.
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"ca": root / "ca.pem", "key": root / "node.key", "chain": root / "node.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    cert.cert_chain_pems[0].write_to_path(str(files["chain"]))
    return {k: str(v) for k, v in files.items()}


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


@dataclass
class FakeTimer:
    """A one-shot timer set on a `FakeClock`: what it is, when it fires, whether it did."""

    name: str
    delay: float
    due: float
    action: Callable[[], None]
    fired: bool = False


class FakeClock:
    """Monotonic seconds and timers that move only when a test says so: a `Clock`.

    The Master and the Worker take one (`clock=`), so their timeouts, back-offs,
    recovery wait and startup graces are tested by `advance`, never by sleeping:
    a timer set with `later` runs (on the test's thread) once `advance` reaches
    its due time, in due order; `timers` lists every timer ever set.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.timers: list[FakeTimer] = []

    def __call__(self) -> float:
        return self.now

    def later(self, delay: float, action: Callable[[], None], name: str) -> None:
        """Set a timer: `action` runs when `advance` passes `delay` seconds from now."""
        self.timers.append(FakeTimer(name, delay, self.now + max(0.0, delay), action))

    def pending(self, name: str | None = None) -> list[FakeTimer]:
        """Timers not fired yet (those called `name`), soonest first."""
        waiting = [t for t in self.timers if not t.fired and name in (None, t.name)]
        return sorted(waiting, key=lambda t: t.due)

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds`, firing the timers due by then; return the new now."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds}s)")
        end = self.now + seconds
        while True:
            due = [t for t in self.pending() if t.due <= end]
            if not due:
                break
            timer = due[0]  # an action may set new timers: look again after each
            self.now = max(self.now, timer.due)
            timer.fired = True
            timer.action()
        self.now = end
        return self.now

    if TYPE_CHECKING:

        def _is_a_clock(fake: FakeClock) -> Clock:  # mypy checks the protocol here
            return fake


class FakeProcess:
    """A Worker's child that never runs: the test ends it with `exit(code)`.

    It records every `stop(grace)` asked of it and exits only when told (a real
    process may ignore SIGTERM for a while, or die on its own at any time).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
        pid: int,
        start_error: OSError | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self._on_exit = on_exit
        self._pid = pid
        self._start_error = start_error
        self.started = False
        self.exit_code: int | None = None
        #: The grace of every `stop` asked, in order.
        self.stops: list[float] = []

    @property
    def pid(self) -> int:
        """A made-up pid once started (never a real process's: nothing signals it)."""
        return self._pid if self.started else 0

    @property
    def stderr_path(self) -> pathlib.Path:
        return self.cwd / "stderr"

    @property
    def running(self) -> bool:
        return self.started and self.exit_code is None

    def start(self) -> None:
        if self._start_error is not None:
            raise self._start_error
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.started = True

    def stop(self, grace: float = 5.0) -> None:
        if self.running:
            self.stops.append(grace)

    def wait(self, timeout: float | None = None) -> bool:
        return not self.running

    def exit(self, code: int, stderr: str = "") -> None:
        """End it with return `code` (negative: the signal), having written `stderr`."""
        if not self.running:
            raise AssertionError(f"{self.name} is not running")
        if stderr:
            self.stderr_path.write_text(stderr)
        self.exit_code = code
        self._on_exit(code)


class FakeLauncher:
    """A `cluster.launcher.Launcher` of `FakeProcess`es with memory figures set by the test.

    Args:
        start_error: what every `start` raises (a missing program, say); None to start.
    """

    def __init__(self, start_error: OSError | None = None) -> None:
        self.start_error = start_error
        self.processes: list[FakeProcess] = []
        #: Resident bytes of each pid's tree, as `rss_bytes` reports them (0 if unset).
        self.rss: dict[int, int] = {}

    def process(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
    ) -> FakeProcess:
        if not argv:
            raise ValueError(f"{name}: empty command")
        pid = (1 << 22) + 1 + len(self.processes)  # above Linux's largest pid_max: nobody's
        child = FakeProcess(name, argv, cwd, env, on_exit, pid, self.start_error)
        self.processes.append(child)
        return child

    def rss_bytes(self, pid: int) -> int:
        return self.rss.get(pid, 0)

    def named(self, name: str) -> FakeProcess:
        """The latest process made under `name` (e.g. "executor-app-1-0")."""
        for child in reversed(self.processes):
            if child.name == name:
                return child
        raise AssertionError(f"no process {name!r}; made: {[p.name for p in self.processes]}")


if TYPE_CHECKING:

    def _is_a_launcher(fake: FakeLauncher) -> Launcher:  # mypy checks the protocol here
        return fake


def descendant_pids(pid: int) -> list[int]:
    """Every living descendant of `pid` (executors, Python workers), or [] if it is gone."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, or a PID that is gone, counts as exited)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL `pid`, its process group if it leads one, and every descendant; wait `timeout`.

    For processes that left the test's tree on purpose (daemons start their own
    session), so only their PID names them.
    """
    try:
        process = psutil.Process(pid)
        victims = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=timeout)


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM `procs`, SIGKILL any still running after `timeout`, then SIGKILL by PID
    every descendant they had when this was called (what a stop left behind)."""
    leftovers = [pid for proc in procs for pid in descendant_pids(proc.pid)]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
