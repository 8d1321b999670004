"""Scale benchmark: one real Master process, N simulated workers, 20 drivers.

Usage: ``.venv/bin/python bench/bench_scale.py [--quick] [--sizes 10,100,1000,2000] [--json]``
(``make bench-scale``).

The Master is `sparkctl start-master --foreground` (its web UI included, for
`/json`), with default settings. Each simulated worker is a real RpcEnv peer:
its own client-mode RpcEnv (its own connection to the Master) with a "Worker"
endpoint that registers (`RegisterWorkerRequest`, asked from inside the
endpoint as the real Worker does), heartbeats every second, and answers
`LaunchExecutor` with `ExecutorStateChanged(RUNNING)` without starting
anything. Heartbeats take the real Worker's path: signed UDP datagrams
(`cluster.heartbeat_datagrams.DatagramSender`) when the Master offers them,
with the same fallback to the stream on `UseStreamHeartbeats`; `--stream-heartbeats`
makes them all `WorkerHeartbeat` messages on the stream, as before. Workers
run in a few helper processes (this file with ``--sim``), each holding many
RpcEnvs. Drivers are client-mode RpcEnvs of this process
that register applications as a driver's AppClient does.

Measured per N: time to register all workers; the Master's CPU per heartbeat
and in % of a core (psutil over a window / heartbeats sent in it, less those the
kernel dropped at the Master's full UDP socket: "UDP lost"; "by UDP" is the share
sent as datagrams), and the part
of it spent in grpc's C-core threads ("of it C"); its RSS; `GetClusterState`
and `/json` latency p50/p99; time to place one app with an executor on every
worker, and the Master's CPU meanwhile; 20 apps at once (registered, placed);
workers the Master declared DEAD (it must be none); SIGTERM to exit under
heartbeat load; the machine's load average (on a shared machine, CPU figures
inflate with it: compare builds in one run).
Targets at 2,000 workers (issue 9): register < 10 s, 20/20 drivers, CPU < 20%
of a core, GetClusterState p99 < 50 ms, idle RSS < 250 MiB, flat cost per
heartbeat.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from cluster.heartbeat_datagrams import DatagramSender  # noqa: E402
from cluster.testing import free_ports  # noqa: E402
from rpcenv import RpcAddress, RpcEndpoint, RpcEndpointRef, RpcEnv, _dispatcher  # noqa: E402
from sparkctl.v1 import deploy_pb2 as pb  # noqa: E402
from sparkctl.v1 import master_service_pb2 as api  # noqa: E402

WORKER_CORES = 2
WORKER_MEMORY_MB = 4096
PER_HELPER = 250  # simulated workers per helper process
DRIVERS = 20
CLIENT_CONF = {"spark.rpc.askTimeout": "30s"}
SIM_CONF = {**CLIENT_CONF, "spark.rpc.dispatcher.numThreads": "1"}


# -- simulated workers (helper processes) ---------------------------------------------


class SimWorker(RpcEndpoint):
    """A worker that registers, heartbeats and 'runs' executors without processes."""

    def __init__(
        self, master: RpcAddress, worker_id: str, fake_port: int, stats: Stats, udp: bool
    ) -> None:
        self.master_address = master
        self.worker_id = worker_id
        self.fake_port = fake_port
        self.stats = stats
        self.udp = udp
        self.master: RpcEndpointRef | None = None
        self.registered = False
        # The real Worker's sender, while the Master takes our heartbeats by datagram.
        self.datagrams: DatagramSender | None = None

    def connect(self, attempts: int = 5) -> None:
        """Reach the Master through our own env, retrying as a real worker's finder does."""
        for attempt in range(attempts):
            try:
                self.master = self.rpc_env.endpoint_ref(self.master_address, "Master", 60.0)
                return
            except Exception as exc:  # a refused or cancelled connection under the burst
                self.stats.add("connect_retries")
                self.stats.note_error(f"connect: {exc}")
                time.sleep(min(5.0, 0.2 * 2**attempt))

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        master = self.master
        if master is None:
            return
        if isinstance(message, pb.MasterReachable | pb.ReconnectWorker):
            if isinstance(message, pb.ReconnectWorker):
                self.stats.add("reconnects")
            self._register(master)
        elif isinstance(message, pb.LaunchExecutor):
            self.stats.add("launches")
            master.send(
                pb.ExecutorStateChanged(
                    app_id=message.app_id,
                    executor_id=message.executor_id,
                    state=pb.EXECUTOR_STATE_RUNNING,
                )
            )
        elif isinstance(message, pb.UseStreamHeartbeats):
            self.stats.add("udp_fallbacks")
            self.stats.note_error(f"told to use the stream: {message.reason}")
            self.datagrams = None
        elif isinstance(message, pb.KillExecutor):
            self.stats.add("kills")
        elif isinstance(message, pb.ApplicationFinished):
            self.stats.add("app_finished")

    def heartbeat(self) -> None:
        """Heartbeat from the helper's timer thread, as this endpoint (its sender).

        Sent straight from the timer rather than through the endpoint's inbox:
        the Master sees the same message, and the helpers spend half the CPU
        (they share the machine with the Master being measured).
        """
        master = self.master
        if master is None or not self.registered:
            return
        datagrams = self.datagrams
        if datagrams is not None:
            try:
                datagrams.send()
                self.stats.add("heartbeats")
                self.stats.add("udp_heartbeats")
                return
            except OSError as exc:  # as the real Worker: the stream from now on
                self.stats.note_error(f"UDP send: {exc}")
                self.datagrams = None
        _dispatcher._local.ref = self.self_ref  # bench only: what an endpoint thread has
        try:
            master.send(pb.WorkerHeartbeat(worker_id=self.worker_id, incarnation=1))
        finally:
            _dispatcher._local.ref = None
        self.stats.add("heartbeats")

    def _register(self, master: RpcEndpointRef) -> None:
        request = pb.RegisterWorkerRequest(
            worker_id=self.worker_id,
            host="127.0.0.1",
            port=self.fake_port,
            cores=WORKER_CORES,
            memory_mb=WORKER_MEMORY_MB,
            incarnation=1,
            udp_heartbeats=self.udp,
        )

        def done(future: Any) -> None:
            try:
                reply = future.result()
            except Exception as exc:
                self.stats.add("register_errors")
                self.stats.note_error(str(exc))
                return
            if isinstance(reply, pb.RegisterWorkerResponse) and reply.accepted:
                if self.udp and reply.heartbeat_udp_port > 0:
                    self.datagrams = DatagramSender(
                        self.master_address.host,
                        reply.heartbeat_udp_port,
                        reply.heartbeat_slot,
                        reply.heartbeat_key,
                    )
                first = not self.registered
                self.registered = True
                if first:
                    self.stats.registered()
            else:
                self.stats.add("register_refused")

        master.ask(request, timeout=60.0).add_done_callback(done)


class Stats:
    """Counters of one helper process (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.last_registered_wall = 0.0
        self.error = ""

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def registered(self) -> None:
        with self._lock:
            self.counts["registered"] = self.counts.get("registered", 0) + 1
            self.last_registered_wall = time.time()

    def note_error(self, text: str) -> None:
        with self._lock:
            self.error = self.error or text[:300]

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.counts, "last_registered_wall": self.last_registered_wall,
                    "error": self.error}  # fmt: skip


def run_helper(master_url: str, first: int, count: int, udp: bool) -> int:
    """One helper process: `count` simulated workers; commands on stdin, answers on stdout."""
    host, _, port = master_url.removeprefix("spark://").rpartition(":")
    master = RpcAddress(host, int(port))
    stats = Stats()
    sims: list[SimWorker] = []
    envs: list[RpcEnv] = []
    for i in range(first, first + count):
        env = RpcEnv.create(f"sim{i}", "127.0.0.1", 0, SIM_CONF, client_mode=True)
        sim = SimWorker(master, f"worker-sim-{i:05d}", 20_000 + i, stats, udp)
        env.setup_endpoint("Worker", sim)
        envs.append(env)
        sims.append(sim)
    # Connected from a few threads at once: a real cluster's workers start together.
    pending = list(sims)
    lock = threading.Lock()

    def connect_some() -> None:
        while True:
            with lock:
                if not pending:
                    return
                sim = pending.pop()
            sim.connect()

    threads = [threading.Thread(target=connect_some, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    print(json.dumps({"ready": True, "connected": sum(s.master is not None for s in sims)}),
          flush=True)  # fmt: skip
    stop = threading.Event()

    def heartbeats() -> None:
        # Every second, spread over the second (as real workers' timers are).
        while not stop.is_set():
            start = time.monotonic()
            for n, sim in enumerate(sims):
                if stop.is_set():
                    return
                wait = start + n / len(sims) - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                sim.heartbeat()
            rest = start + 1.0 - time.monotonic()
            if rest > 0:
                stop.wait(rest)

    threading.Thread(target=heartbeats, name="sim-heartbeats", daemon=True).start()
    for line in sys.stdin:
        command = line.strip()
        if command == "register":
            for sim in sims:
                sim.self_ref.send(pb.MasterReachable())
            print(json.dumps({"ok": True}), flush=True)
        elif command == "stats":
            print(json.dumps(stats.snapshot()), flush=True)
        elif command == "stop":
            break
    stop.set()
    for env in envs:
        threading.Thread(target=env.shutdown, daemon=True).start()
    time.sleep(1.0)
    os._exit(0)  # thousands of envs: do not wait for each one's orderly end


class Helper:
    """The orchestrator's side of one helper process."""

    def __init__(
        self, master_url: str, first: int, count: int, log: pathlib.Path, udp: bool
    ) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--sim", master_url, str(first), str(count), str(int(udp))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            for line in out:
                self._lines.put(line)

        threading.Thread(target=pump, daemon=True).start()

    def read(self, timeout: float) -> dict[str, Any]:
        try:
            return dict(json.loads(self._lines.get(timeout=timeout)))
        except queue.Empty:
            raise RuntimeError(f"helper {self.proc.pid} did not answer in {timeout}s") from None

    def command(self, text: str, timeout: float = 120.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


# -- drivers (this process) -------------------------------------------------------------


class BenchDriver(RpcEndpoint):
    """A driver's app client: registers on request, times its executors' arrival."""

    def __init__(self, master: RpcAddress, description: pb.ApplicationDescription) -> None:
        self.master_address = master
        self.description = description
        self.master: RpcEndpointRef | None = None
        self.app_id = ""
        self.error = ""
        self.executors = 0
        self.wanted = 0
        self.asked_at = 0.0
        self.done_at = 0.0
        self.registered = threading.Event()
        self.placed = threading.Event()

    def on_start(self) -> None:
        self.master = self.rpc_env.endpoint_ref(self.master_address, "Master", timeout=30.0)

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.MasterReachable) and self.master is not None:
            self.asked_at = time.monotonic()
            request = pb.RegisterApplicationRequest(
                description=self.description, driver_endpoint="AppClient"
            )
            self.master.ask(request, timeout=30.0).add_done_callback(self._answered)
        elif isinstance(message, pb.ExecutorAdded):
            self.executors += 1
            if self.executors >= self.wanted and not self.placed.is_set():
                self.done_at = time.monotonic()
                self.placed.set()

    def _answered(self, future: Any) -> None:
        try:
            reply = future.result()
            assert isinstance(reply, pb.RegisterApplicationResponse)
            self.app_id = reply.app_id
        except Exception as exc:
            self.error = str(exc)[:300]
        self.registered.set()


def start_drivers(
    master: RpcAddress, count: int, max_cores: int, cores_per_executor: int, wanted: int
) -> tuple[list[RpcEnv], list[BenchDriver]]:
    envs, drivers = [], []
    for n in range(count):
        env = RpcEnv.create(f"bench-driver{n}", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
        desc = pb.ApplicationDescription(
            name=f"bench-app-{n}",
            max_cores=max_cores,
            cores_per_executor=cores_per_executor,
            memory_per_executor_mb=512,
            command=pb.Command(argv=["true"]),
        )
        driver = BenchDriver(master, desc)
        driver.wanted = wanted
        env.setup_endpoint("AppClient", driver)
        envs.append(env)
        drivers.append(driver)
    deadline = time.monotonic() + 30
    while any(d.master is None for d in drivers) and time.monotonic() < deadline:
        time.sleep(0.02)
    return envs, drivers


def stop_envs(envs: list[RpcEnv]) -> None:
    threads = [threading.Thread(target=e.shutdown, daemon=True) for e in envs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)


# -- the orchestrator ---------------------------------------------------------------------


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    if not ordered:
        return math.nan, math.nan
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered), p99


class Master:
    """`sparkctl start-master --foreground` on free ports."""

    def __init__(self, work: pathlib.Path) -> None:
        self.port, self.ui_port = free_ports(2)
        self.url = f"spark://127.0.0.1:{self.port}"
        self.address = RpcAddress("127.0.0.1", self.port)
        self._log = (work / "master.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "start-master", "--foreground", "--host", "127.0.0.1",
             "--port", str(self.port), "--webui-port", str(self.ui_port),
             "--work-dir", str(work / "master")],
            stdout=self._log, stderr=self._log, cwd=ROOT,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.json()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"master did not start; see {work / 'master.log'}") from None
                time.sleep(0.1)

    def json(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.ui_port}/json"
        with urllib.request.urlopen(url, timeout=30) as reply:
            return dict(json.loads(reply.read()))

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def grpc_core_cpu(self) -> float:
        """CPU seconds of grpc's C-core threads (named event_engine), apart from Python's."""
        total = 0.0
        for thread in self.ps.threads():
            try:
                comm = pathlib.Path(f"/proc/{self.proc.pid}/task/{thread.id}/comm").read_text()
            except OSError:
                continue  # ended meanwhile
            if comm.startswith("event_engine"):
                total += thread.user_time + thread.system_time
        return total

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss / (1 << 20))

    def sigterm(self, bound: float = 30.0) -> float:
        """SIGTERM; seconds until it exited (the bound plus a kill if it did not)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return math.inf
        finally:
            self._log.close()
        return time.monotonic() - started


def start_master(work: pathlib.Path, attempts: int = 3) -> Master:
    """A Master; picked ports can be taken by another process before it binds: retry."""
    for attempt in range(attempts):
        try:
            return Master(work)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def helper_totals(helpers: list[Helper]) -> dict[str, Any]:
    total: dict[str, Any] = {"last_registered_wall": 0.0, "error": ""}
    for helper in helpers:
        snap = helper.command("stats")
        for key, value in snap.items():
            if key == "last_registered_wall":
                total[key] = max(total[key], value)
            elif key == "error":
                total[key] = total[key] or value
            else:
                total[key] = total.get(key, 0) + value
    return total


def wait_totals(helpers: list[Helper], key: str, want: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        totals = helper_totals(helpers)
        if totals.get(key, 0) >= want or time.monotonic() > deadline:
            return totals
        time.sleep(0.25)


def udp_drops(pid: int, port: int) -> int:
    """Datagrams the kernel dropped at `pid`'s UDP socket on `port` (full buffer), or -1."""
    for name in ("udp", "udp6"):
        try:
            lines = pathlib.Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rpartition(":")[2], 16) == port:
                return int(fields[-1])
    return -1


def measure(
    n: int, window: float, work: pathlib.Path, udp: bool = True, heartbeats_only: bool = False
) -> dict[str, Any]:
    row: dict[str, Any] = {"workers": n}
    master = start_master(work)
    helpers: list[Helper] = []
    envs: list[RpcEnv] = []
    try:
        count = math.ceil(n / PER_HELPER)
        for h in range(count):
            first = h * PER_HELPER
            size = min(PER_HELPER, n - first)
            helpers.append(Helper(master.url, first, size, work / f"helper{h}.log", udp))
        for helper in helpers:
            helper.read(timeout=300)  # envs made and connected
        # Registration: all at once, timed on this machine's wall clock.
        go = time.time()
        for helper in helpers:
            helper.command("register")
        totals = wait_totals(helpers, "registered", n, timeout=120)
        row["registered"] = totals.get("registered", 0)
        row["register_s"] = totals["last_registered_wall"] - go
        row["register_error"] = totals["error"]
        row["connect_retries"] = totals.get("connect_retries", 0)
        # Idle with heartbeats every second: CPU per heartbeat, RSS.
        time.sleep(2.0)
        before = helper_totals(helpers)
        before_cpu, before_drops = master.cpu(), udp_drops(master.proc.pid, master.port)
        before_core = master.grpc_core_cpu()
        time.sleep(window)
        after = helper_totals(helpers)
        after_cpu, after_drops = master.cpu(), udp_drops(master.proc.pid, master.port)
        after_core = master.grpc_core_cpu()
        sent = after.get("heartbeats", 0) - before.get("heartbeats", 0)
        # Datagrams the kernel dropped never cost the Master anything: not counted.
        row["udp_dropped"] = max(0, after_drops - before_drops)
        row["udp_share"] = (after.get("udp_heartbeats", 0) - before.get("udp_heartbeats", 0)) / max(
            1, sent
        )
        row["udp_fallbacks"] = after.get("udp_fallbacks", 0)
        beats = max(1, sent - row["udp_dropped"])
        row["hb_per_s"] = beats / window
        row["cpu_pct"] = 100 * (after_cpu - before_cpu) / window
        row["us_per_hb"] = 1e6 * (after_cpu - before_cpu) / beats
        # Of which grpc's C core (its event_engine threads); the rest is Python's threads.
        row["core_us_per_hb"] = 1e6 * (after_core - before_core) / beats
        row["load"] = os.getloadavg()[0]  # the machine's: CPU figures inflate when it is busy
        row["idle_rss_mb"] = master.rss_mb()
        row["master_threads"] = master.ps.num_threads()
        if heartbeats_only:
            row["sigterm_s"] = master.sigterm()
            return row
        # Status latency, with heartbeats flowing.
        client = RpcEnv.create("bench-status", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
        envs.append(client)
        ref = client.endpoint_ref(master.address, "Master", timeout=30.0)
        samples = []
        for _ in range(60):
            t = time.perf_counter()
            ref.ask_sync(api.GetClusterStateRequest(), 30.0)
            samples.append(1000 * (time.perf_counter() - t))
        row["state_p50_ms"], row["state_p99_ms"] = percentiles(samples)
        samples = []
        for _ in range(30):
            t = time.perf_counter()
            master.json()
            samples.append(1000 * (time.perf_counter() - t))
        row["json_p50_ms"], row["json_p99_ms"] = percentiles(samples)
        # One app with an executor on every worker.
        got = max(1, int(row["registered"]))  # placement is timed over those registered
        denvs, (driver,) = start_drivers(master.address, 1, got * WORKER_CORES, WORKER_CORES, got)
        envs.extend(denvs)
        place_cpu_before = master.cpu()
        driver.self_ref.send(pb.MasterReachable())
        placed = driver.placed.wait(120)
        row["place_all_s"] = driver.done_at - driver.asked_at if placed else math.inf
        row["place_cpu_s"] = master.cpu() - place_cpu_before
        launched = wait_totals(helpers, "launches", got, timeout=60)
        row["launched"] = launched.get("launches", 0)
        stop_envs(denvs)  # the driver goes: its app FINISHED, every worker told
        wait_totals(helpers, "app_finished", got, timeout=60)
        # 20 apps at once, each asking for a 20th of the cluster.
        share = max(1, got * WORKER_CORES // DRIVERS)
        denvs, drivers = start_drivers(master.address, DRIVERS, share, 1, share)
        envs.extend(denvs)
        started = time.monotonic()
        for d in drivers:
            d.self_ref.send(pb.MasterReachable())
        for d in drivers:
            d.registered.wait(max(0.0, started + 60 - time.monotonic()))
        row["drivers_ok"] = sum(bool(d.app_id) for d in drivers)
        row["driver_error"] = next((d.error for d in drivers if d.error), "")
        for d in drivers:
            d.placed.wait(max(0.0, started + 120 - time.monotonic()))
        row["apps_placed"] = sum(d.placed.is_set() for d in drivers)
        row["apps20_s"] = (
            max(d.done_at for d in drivers) - started
            if all(d.placed.is_set() for d in drivers)
            else math.inf
        )
        state = ref.ask_sync(api.GetClusterStateRequest(), 30.0)
        assert isinstance(state, api.GetClusterStateResponse)
        row["state_kb"] = state.ByteSize() / 1024
        row["dead"] = sum(w.state == pb.WORKER_STATE_DEAD for w in state.workers)
        row["reconnects"] = helper_totals(helpers).get("reconnects", 0)
        row["loaded_rss_mb"] = master.rss_mb()
        stop_envs(envs)
        envs = []
        # Datagrams the kernel dropped over the whole run (placement and status load too).
        row["udp_dropped_run"] = udp_drops(master.proc.pid, master.port)
        row["sigterm_s"] = master.sigterm()  # heartbeats still flowing
    finally:
        stop_envs(envs)
        for helper in helpers:
            helper.stop()
        if master.proc.poll() is None:
            master.proc.kill()
            master.proc.wait(10)
    return row


COLUMNS = [
    ("workers", "N", "{:.0f}"),
    ("registered", "reg'd", "{:.0f}"),
    ("register_s", "reg s", "{:.2f}"),
    ("hb_per_s", "hb/s", "{:.0f}"),
    ("cpu_pct", "cpu %", "{:.1f}"),
    ("us_per_hb", "us/hb", "{:.0f}"),
    ("core_us_per_hb", "of it C", "{:.0f}"),
    ("udp_share", "by UDP", "{:.2f}"),
    ("udp_dropped", "UDP lost", "{:.0f}"),
    ("udp_dropped_run", "in run", "{:.0f}"),
    ("idle_rss_mb", "rss MiB", "{:.0f}"),
    ("master_threads", "thr", "{:.0f}"),
    ("state_p50_ms", "state p50", "{:.1f}"),
    ("state_p99_ms", "state p99", "{:.1f}"),
    ("json_p50_ms", "json p50", "{:.1f}"),
    ("json_p99_ms", "json p99", "{:.1f}"),
    ("place_all_s", "place N s", "{:.2f}"),
    ("place_cpu_s", "its CPU s", "{:.2f}"),
    ("drivers_ok", "drivers", "{:.0f}"),
    ("apps20_s", "20 apps s", "{:.2f}"),
    ("dead", "dead", "{:.0f}"),
    ("state_kb", "state KiB", "{:.0f}"),
    ("sigterm_s", "stop s", "{:.2f}"),
    ("load", "load", "{:.1f}"),
]


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        cells.append(
            [fmt.format(row[k]) if isinstance(row.get(k), int | float) else str(row.get(k, "-"))
             for k, _, fmt in COLUMNS]
        )  # fmt: skip
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    for r in cells:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    for row in rows:
        for key in ("register_error", "driver_error"):
            if row.get(key):
                print(f"N={row['workers']}: {key}: {row[key]}")


def main(argv: list[str]) -> int:
    # Drivers leave before their executors' last updates arrive: those drops are expected.
    logging.basicConfig(level=logging.ERROR)
    if argv[:1] == ["--sim"]:
        return run_helper(argv[1], int(argv[2]), int(argv[3]), argv[4:5] != ["0"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 10, 100 only (a sanity run)")
    parser.add_argument("--sizes", default="", help="comma-separated N (default 10,100,1000,2000)")
    parser.add_argument("--window", type=float, default=10.0, help="CPU window in seconds")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument(
        "--stream-heartbeats",
        action="store_true",
        help="workers heartbeat on their streams (no UDP), as before issue 9's datagrams",
    )
    parser.add_argument(
        "--heartbeats-only",
        action="store_true",
        help="measure registration, heartbeat CPU and RSS only (a short A/B run)",
    )
    parser.add_argument(
        "--work-dir", type=pathlib.Path, help="keep logs here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s] or (
        [10, 100] if args.quick else [10, 100, 1000, 2000]
    )
    window = min(args.window, 5.0) if args.quick else args.window
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in sizes:
            work = (args.work_dir or pathlib.Path(tmp)) / f"n{n}"
            work.mkdir(parents=True, exist_ok=True)
            try:
                row = measure(n, window, work, not args.stream_heartbeats, args.heartbeats_only)
            except Exception as exc:  # report the sizes that ran, and why this one did not
                row = {"workers": n, "register_error": f"{type(exc).__name__}: {exc}"}
                log_tail = (work / "master.log").read_text(errors="replace")[-1500:]
                print(f"N={n} failed: {exc}\nmaster log tail:\n{log_tail}", file=sys.stderr)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print_table(rows)
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
