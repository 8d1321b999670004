"""Heartbeat datagrams under attack: floods, replays, restarts.

The Master's datagram path (`cluster.heartbeat_datagrams`) must keep every
live worker ALIVE whatever reaches its UDP port: a flood of garbage and of
well-formed datagrams with forged tags (the slots a sniffer saw) while the
Master's process is busy; datagrams of a previous registration replayed after
the worker registered again (a restart with the same id); a Master SIGKILLed
and restarted on its port while its workers still send to it. Real sockets on
127.0.0.1; every process is stopped by PID.
"""

from __future__ import annotations

import contextlib
import pathlib
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from cluster.heartbeat_datagrams import DatagramListener, HeartbeatDatagrams, heartbeat_datagram
from cluster.launch import start_master, start_worker
from cluster.master import Master
from cluster.testing import FakeClock, FakeContext, FakeRef, ProcCluster, wait_until
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

pytestmark = pytest.mark.timeout(120)


def _listening_master(
    tmp_path: pathlib.Path, timeout: str
) -> tuple[Master, FakeClock, HeartbeatDatagrams]:
    """A Master on a fake clock, its datagram table listening on 127.0.0.1 (the caller
    stops `master._listener`)."""
    clock = FakeClock()
    master = Master(Conf({"spark.worker.timeout": timeout}), tmp_path, clock=clock)
    master._self_ref = FakeRef("Master", 7077)
    master.url = "spark://127.0.0.1:7077"
    table = master.datagrams
    assert table is not None
    master._listener = DatagramListener(table, "127.0.0.1", 0)
    return master, clock, table


def _register(master: Master, incarnation: int) -> pb.RegisterWorkerResponse:
    request = pb.RegisterWorkerRequest(
        worker_id="w1",
        host="127.0.0.1",
        port=7101,
        cores=1,
        memory_mb=256,
        incarnation=incarnation,
        udp_heartbeats=True,
    )
    context = FakeContext(FakeRef("Worker", 7101))
    master._on_register_worker(request, context)
    answer = context.answer
    assert isinstance(answer, pb.RegisterWorkerResponse) and answer.accepted
    return answer


def test_a_previous_registrations_datagrams_replayed_are_no_heartbeat(
    tmp_path: pathlib.Path,
) -> None:
    master, clock, table = _listening_master(tmp_path, "8s")
    try:
        first = _register(master, 1)
        captured = [
            heartbeat_datagram(first.heartbeat_slot, n, first.heartbeat_key) for n in (1, 2, 3)
        ]
        assert all(table.accept(d) for d in captured)
        # The worker is restarted with the same id: a new registration, a new key.
        second = _register(master, 2)
        assert second.heartbeat_key != first.heartbeat_key
        clock.advance(5.0)
        heard = master.workers["w1"].last_heartbeat
        # An eavesdropper replays what it captured, with sequences past any seen.
        for data in [*captured, heartbeat_datagram(first.heartbeat_slot, 99, bytes(32))]:
            assert not table.accept(data)
        assert master.workers["w1"].last_heartbeat == heard
        assert table.dropped["unknown"] >= 3
        # A datagram of this registration replayed: taken once, then refused.
        fresh = heartbeat_datagram(second.heartbeat_slot, 1, second.heartbeat_key)
        assert table.accept(fresh) and not table.accept(fresh)
        assert table.dropped["replayed"] == 1
    finally:
        master._listener.stop()


_FLOOD = """
import os, socket, struct, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
slots = [int(s) for s in sys.argv[3:]]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect(("127.0.0.1", port))
tag = os.urandom(32)
forged = [struct.pack("!BIQ", 1, s, 2**40 + i) + tag for i, s in enumerate(slots * 20)]
junk = [os.urandom(n) for n in range(0, 120, 3)]
end = time.monotonic() + secs
while time.monotonic() < end:
    for data in forged + junk:
        try:
            sock.send(data)
        except OSError:
            pass
"""


def test_a_flood_while_the_master_is_busy_kills_no_live_worker(tmp_path: pathlib.Path) -> None:
    timeout_s, flood_s = 4.0, 6.0
    conf = Conf({"spark.worker.timeout": f"{timeout_s}s"})
    master = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    workers = []
    floods: list[subprocess.Popen[bytes]] = []
    busy = threading.Event()
    try:
        for n in range(3):
            workers.append(
                start_worker(conf, [master.url], 1, 256, "127.0.0.1", 0, tmp_path / f"w{n}")
            )
        assert all(w.wait_registered(10.0) for w in workers)
        table = master.endpoint.datagrams
        listener = master.endpoint._listener
        assert table is not None and listener is not None
        wait_until(lambda: len(table.enrollments()) == 3, 10.0, "three UDP workers")
        slots = [str(e.slot) for e in table.enrollments()]

        def burn() -> None:  # the Master's process busy in Python: the GIL is contended
            while not busy.is_set():
                sum(range(10_000))

        threading.Thread(target=burn, name="busy", daemon=True).start()
        for _ in range(2):
            floods.append(
                subprocess.Popen(
                    [sys.executable, "-c", _FLOOD, str(listener.port), str(flood_s), *slots],
                    stdin=subprocess.DEVNULL,
                )
            )
        started = time.monotonic()
        slowest = 0.0
        while time.monotonic() - started < flood_s + timeout_s:
            asked = time.monotonic()
            master.ref.ask_sync(api.GetClusterStateRequest(), 10.0)
            slowest = max(slowest, time.monotonic() - asked)
            dead = [w.worker_id for w in master.endpoint.workers.values() if not w.alive]
            assert not dead, f"live workers declared DEAD under a flood: {dead}"
            time.sleep(0.1)
        assert sum(table.dropped.values()) > 10_000  # the flood did arrive
        assert slowest < timeout_s
    finally:
        busy.set()
        for flood in floods:
            flood.kill()
            flood.wait(10)
        for w in workers:
            w.stop()
        master.stop()


def test_a_master_killed_and_restarted_on_its_port_gets_its_workers_back_on_udp(
    tmp_path: pathlib.Path,
) -> None:
    conf = {
        "spark.worker.timeout": "2s",
        "spark.deploy.recoveryMode": "FILESYSTEM",
        "spark.deploy.recoveryDirectory": str(tmp_path / "recovery"),
    }
    with ProcCluster(tmp_path / "cluster", conf, workers=2, cores=1) as c:
        c.restart_master(kill=True)  # workers keep sending to the old port meanwhile

        def alive_workers() -> int:
            return sum(1 for w in c.state().workers if w.state == pb.WORKER_STATE_ALIVE)

        wait_until(lambda: alive_workers() == 2, 30.0, "both workers back")
        time.sleep(3 * 2.0)  # past spark.worker.timeout: they heartbeat, by datagram
        assert alive_workers() == 2
        # ALIVE past the timeout with neither side saying it moved to the stream (a
        # warning either would log): the workers' datagrams reach the new Master.
        logs = {p.name: p.read_text() for p in c.tmp.glob("*.log")}
        assert len([n for n in logs if n.startswith("worker")]) == 2
        for name, text in logs.items():
            assert "heartbeats on" not in text and "stream from now on" not in text, name
            assert "DEAD" not in text, name
        # Each worker's heartbeat socket is the one it was given by the new Master.
        for worker in c.workers:
            udp = psutil.Process(worker.pid).net_connections(kind="udp")
            assert [u.raddr.port for u in udp if u.raddr] == [c.master_port], udp


def test_a_master_frozen_past_the_timeout_kills_no_worker_on_resume(
    tmp_path: pathlib.Path,
) -> None:
    """A Master whose process was frozen (SIGSTOP, swapped out, a long pause) found
    every worker silent on resume: its timer's late check ran before the heartbeats
    the kernel held for it (datagrams and stream alike) were read. Measured with
    processes: 59 'DEAD: no heartbeat' in three 4 s stops of a Master with a 2 s
    timeout and 20 workers, on either heartbeat path. A check whose timer fired
    late is now judged as of when it was due."""
    master, clock, _ = _listening_master(tmp_path, "2s")
    try:
        answer = _register(master, 1)
        interval = master.liveness.check_interval
        table = master.datagrams
        assert table is not None
        sequence = 0

        def beat() -> None:
            nonlocal sequence
            sequence += 1
            data = heartbeat_datagram(answer.heartbeat_slot, sequence, answer.heartbeat_key)
            assert table.accept(data)

        def tick() -> None:  # what the "master-timeouts" timer does, then the inbox
            master._issue_timeout_check()
            master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)

        for _ in range(4):  # running normally
            clock.advance(interval)
            beat()
            tick()
        clock.advance(5 * 2.0)  # frozen: no timer, no reads, for 2.5 timeouts
        tick()  # the timer's late tick runs first...
        assert master.workers["w1"].alive, "a live worker declared DEAD by the Master's freeze"
        beat()  # ...then the datagrams the kernel kept
        clock.advance(interval)
        tick()
        assert master.workers["w1"].alive
        # Real silence still kills, a timeout after the last heartbeat.
        for _ in range(int(2.0 / interval) + 2):
            clock.advance(interval)
            tick()
        assert not master.workers["w1"].alive
    finally:
        master._listener.stop()


@pytest.mark.parametrize("udp_off_on", ["master", "worker"])
def test_a_udp_heartbeats_mismatch_keeps_the_worker_alive_on_its_stream(
    tmp_path: pathlib.Path, udp_off_on: str
) -> None:
    off = {"spark.sparkctl.worker.udpHeartbeats": "false"}
    base = {"spark.worker.timeout": "1s"}
    master_conf = Conf({**base, **(off if udp_off_on == "master" else {})})
    worker_conf = Conf({**base, **(off if udp_off_on == "worker" else {})})
    master = start_master(master_conf, "127.0.0.1", 0, tmp_path / "master")
    try:
        worker = start_worker(
            worker_conf, [master.url], 1, 256, "127.0.0.1", 0, tmp_path / "worker"
        )
        try:
            assert worker.wait_registered(10.0)
            time.sleep(2.5)  # past spark.worker.timeout, heartbeating on its stream
            (info,) = master.endpoint.workers.values()
            assert info.alive
            assert worker.endpoint._datagrams is None
            table = master.endpoint.datagrams
            assert (table is None) == (udp_off_on == "master")
            assert table is None or (table.accepted == 0 and len(table) == 0)
        finally:
            worker.stop()
    finally:
        master.stop()


def test_a_worker_moved_to_its_stream_comes_back_when_udp_gets_through(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood (or an outage) for half a timeout moved workers to their streams for
    good: anyone able to send UDP to the Master could take its CPU saving away at
    will. Now the worker probes with a datagram now and then, and the Master that
    hears one moves it back."""
    real_accept = HeartbeatDatagrams.accept
    blocked = threading.Event()
    blocked.set()

    def lossy(self: HeartbeatDatagrams, data: bytes) -> bool:
        return False if blocked.is_set() else real_accept(self, data)

    monkeypatch.setattr(HeartbeatDatagrams, "accept", lossy)
    conf = Conf({"spark.worker.timeout": "1s"})  # heartbeats every 0.25 s
    master = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    try:
        worker = start_worker(conf, [master.url], 1, 256, "127.0.0.1", 0, tmp_path / "worker")
        try:
            assert worker.wait_registered(10.0)
            endpoint = worker.endpoint
            wait_until(lambda: endpoint._on_stream, 10.0, "the move to the stream")
            blocked.clear()  # the flood is over
            table = master.endpoint.datagrams
            assert table is not None
            wait_until(lambda: not endpoint._on_stream, 10.0, "the move back to datagrams")
            entry = table.get(endpoint.worker_id)
            assert entry is not None and not entry.parked
            taken = table.accepted
            time.sleep(1.5)  # past the timeout, by datagram alone
            assert table.accepted > taken + 3
            assert master.endpoint.workers[endpoint.worker_id].alive
        finally:
            worker.stop()
    finally:
        master.stop()


def test_probes_go_ever_less_often_and_a_probe_heard_brings_the_worker_back(
    tmp_path: pathlib.Path,
) -> None:
    master, clock, table = _listening_master(tmp_path, "8s")
    try:
        answer = _register(master, 1)
        ref = master.workers["w1"].ref
        assert isinstance(ref, FakeRef)

        def check() -> None:
            master.liveness.issue()
            master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)

        clock.advance(4.1)  # two intervals and no datagram: moved, key kept
        check()
        assert len(ref.of(pb.UseStreamHeartbeats)) == 1
        entry = table.get("w1")
        assert entry is not None and entry.parked
        check()
        assert len(ref.of(pb.UseStreamHeartbeats)) == 1  # parked: told once
        # Its probe: the next sequence under the same key.
        assert table.accept(heartbeat_datagram(answer.heartbeat_slot, 5, answer.heartbeat_key))
        check()
        assert len(ref.of(pb.UseDatagramHeartbeats)) == 1 and not entry.parked
        clock.advance(4.1)  # silent again for half the timeout: moved again
        check()
        assert len(ref.of(pb.UseStreamHeartbeats)) == 2 and entry.parked
        assert master.workers["w1"].alive
    finally:
        master._listener.stop()

    # The worker's side, over a real socket: a probe every 4, then every 8 heartbeats.
    from cluster.worker import Worker

    worker = Worker(Conf({}), "w1", ["spark://127.0.0.1:7077"], 1, 64, tmp_path / "w")
    worker._self_ref = FakeRef("Worker", 7201)
    master_ref = FakeRef("Master", 7077)
    worker.master_ref = master_ref
    worker.registered.set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        offer = pb.RegisterWorkerResponse(
            accepted=True,
            heartbeat_udp_port=sock.getsockname()[1],
            heartbeat_slot=7,
            heartbeat_key=b"k" * 32,
        )
        worker._start_datagrams(offer, master_ref)
        assert sock.recv(64)  # the first one, at registration

        def datagrams_in(beats: int) -> int:
            for _ in range(beats):
                worker._on_send_heartbeat(pb.SendHeartbeat(), None)
            got = 0
            with contextlib.suppress(TimeoutError):
                while sock.recv(64):
                    got += 1
            return got

        worker._on_use_stream_heartbeats(pb.UseStreamHeartbeats(reason="t"), None)
        assert datagrams_in(8) == 2 and worker._on_stream
        worker._on_use_datagram_heartbeats(pb.UseDatagramHeartbeats(), None)
        assert not worker._on_stream
        assert datagrams_in(3) == 4  # one at once, then one per heartbeat
        worker._on_use_stream_heartbeats(pb.UseStreamHeartbeats(reason="t"), None)
        assert datagrams_in(16) == 2  # half as often after a second move
        worker._stop_datagrams()
