"""Heartbeats by UDP datagram (issue 9): taken when good, dropped cheaply when not,
and never the only thing keeping a worker ALIVE.

The Master's table and its fallback rules run on a `FakeClock` with `FakeRef`s
(no env, no sleep); the worker's side and the whole path run over real UDP
sockets on 127.0.0.1.
"""

from __future__ import annotations

import pathlib
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cluster.heartbeat_datagrams import (
    DATAGRAM_SIZE,
    DatagramListener,
    HeartbeatDatagrams,
    heartbeat_datagram,
)
from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker
from cluster.master import Master
from cluster.testing import FakeClock, FakeContext, FakeRef, wait_until
from cluster.ui import MasterWebUI
from cluster.ui._metrics import master_registry
from cluster.worker import Worker
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

TIMEOUT_S = 8.0  # heartbeat interval 2 s; a UDP worker is moved after 4 s unheard


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def master(tmp_path: pathlib.Path, clock: FakeClock) -> Iterator[Master]:
    m = Master(Conf({"spark.worker.timeout": str(TIMEOUT_S)}), tmp_path, clock=clock)
    m._self_ref = FakeRef("Master", 7077)
    m.url = "spark://127.0.0.1:7077"
    assert m.datagrams is not None  # on by default
    # A bound socket to advertise; the test hands datagrams to the table itself.
    m._listener = DatagramListener(m.datagrams, "127.0.0.1", 0)
    yield m
    m._listener.stop()


def register(
    master: Master, worker_id: str = "w1", port: int = 7101, udp: bool = True
) -> tuple[FakeRef, pb.RegisterWorkerResponse]:
    ref = FakeRef("Worker", port)
    request = pb.RegisterWorkerRequest(
        worker_id=worker_id,
        host="127.0.0.1",
        port=port,
        cores=2,
        memory_mb=1024,
        incarnation=1,
        udp_heartbeats=udp,
    )
    context = FakeContext(ref)
    master._on_register_worker(request, context)
    answer = context.answer
    assert isinstance(answer, pb.RegisterWorkerResponse) and answer.accepted
    return ref, answer


def check(master: Master) -> None:
    master.liveness.issue()
    master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)


def test_a_good_datagram_is_a_heartbeat(master: Master, clock: FakeClock) -> None:
    _ref, answer = register(master)
    assert answer.heartbeat_udp_port > 0 and len(answer.heartbeat_key) == 32
    assert master.datagrams is not None
    worker = master.workers["w1"]
    clock.advance(3.0)
    assert master.datagrams.accept(
        heartbeat_datagram(answer.heartbeat_slot, 1, answer.heartbeat_key)
    )
    assert worker.last_heartbeat == clock.now
    clock.advance(TIMEOUT_S - 1)  # a heartbeat every 2 s would follow; one suffices here
    check(master)
    assert worker.alive


def test_bad_datagrams_are_dropped_counted_and_cheap(master: Master, clock: FakeClock) -> None:
    _ref, answer = register(master)
    table = master.datagrams
    assert table is not None
    slot, key = answer.heartbeat_slot, answer.heartbeat_key
    worker = master.workers["w1"]
    first = heartbeat_datagram(slot, 5, key)
    assert table.accept(first)
    heard = worker.last_heartbeat
    clock.advance(1.0)
    bad = {
        "replayed": [first, heartbeat_datagram(slot, 4, key)],
        "forged": [
            heartbeat_datagram(slot, 6, bytes(32)),
            first[:-1] + bytes([first[-1] ^ 1]),
            first[:5] + (7).to_bytes(8, "big") + first[13:],  # a sequence not signed
        ],
        "unknown": [heartbeat_datagram(slot ^ 0x5A5A, 6, key)],
        "size": [b"", first[:-1], first + b"\0", b"x" * 1500],
        "version": [bytes([2]) + first[1:]],
    }
    for reason, datagrams in bad.items():
        for data in datagrams:
            assert not table.accept(data), reason
    assert worker.last_heartbeat == heard  # none of them counted as a sign of life
    assert table.take_drops() == {reason: len(d) for reason, d in bad.items()}
    # Cheap: a forged datagram (the dearest to refuse: it is hashed) costs microseconds.
    forged = heartbeat_datagram(slot, 6, bytes(32))
    rounds = 20_000
    started = time.process_time()
    for _ in range(rounds):
        table.accept(forged)
    per_datagram_us = (time.process_time() - started) / rounds * 1e6
    assert per_datagram_us < 40, per_datagram_us  # ~2-3 µs on an idle core
    assert table.accept(heartbeat_datagram(slot, 6, key))  # the worker is still taken
    # The log line reports what is new since the last; the /metrics counters never reset.
    assert table.take_drops() == {"forged": rounds}
    assert table.take_drops() == {}
    totals = table.counts()
    assert totals.accepted == 2
    assert totals.dropped == {
        "size": 4,
        "version": 1,
        "unknown": 1,
        "forged": 3 + rounds,
        "replayed": 2,
        "error": 0,
    }


def test_a_worker_whose_datagrams_never_come_is_moved_to_its_stream(
    master: Master, clock: FakeClock
) -> None:
    ref, _answer = register(master)
    interval = master.liveness.heartbeat_interval
    clock.advance(2 * interval - 0.1)
    check(master)
    assert not ref.of(pb.UseStreamHeartbeats)
    clock.advance(0.2)
    check(master)
    (told,) = ref.of(pb.UseStreamHeartbeats)
    assert "no heartbeat datagram arrived" in told.reason
    entry = master.datagrams.get("w1") if master.datagrams is not None else None
    assert entry is not None and entry.parked  # its key kept, for a probe to come back
    # On its stream from now on: stream heartbeats keep it ALIVE well past the timeout.
    for _ in range(6):
        clock.advance(interval)
        master._on_heartbeat(pb.WorkerHeartbeat(worker_id="w1", incarnation=1), ref)
        check(master)
    assert master.workers["w1"].alive
    assert len(ref.of(pb.UseStreamHeartbeats)) == 1


def test_a_udp_worker_gone_silent_is_moved_before_it_could_be_dead(
    master: Master, clock: FakeClock
) -> None:
    ref, answer = register(master)
    assert master.datagrams is not None
    assert master.datagrams.accept(
        heartbeat_datagram(answer.heartbeat_slot, 1, answer.heartbeat_key)
    )
    clock.advance(TIMEOUT_S / 2 - 0.1)
    check(master)
    assert not ref.of(pb.UseStreamHeartbeats)
    clock.advance(0.2)
    check(master)
    assert "no heartbeat datagram for" in ref.of(pb.UseStreamHeartbeats)[0].reason
    assert master.workers["w1"].alive  # told with half the timeout to spare


def test_a_dead_worker_still_sending_datagrams_is_told_to_reconnect(
    master: Master, clock: FakeClock
) -> None:
    ref, answer = register(master)
    master._remove_worker(master.workers["w1"], "test")
    assert master.datagrams is not None
    assert master.datagrams.accept(
        heartbeat_datagram(answer.heartbeat_slot, 1, answer.heartbeat_key)
    )
    check(master)
    assert len(ref.of(pb.ReconnectWorker)) == 1
    check(master)  # once per datagram heard, not on every check
    assert len(ref.of(pb.ReconnectWorker)) == 1


def test_a_stream_heartbeat_leaves_the_datagram_path_to_the_unheard_rule(
    master: Master, clock: FakeClock
) -> None:
    # A stream heartbeat may be one sent before the worker was told to use datagrams:
    # withdrawing its key then left it sending datagrams nobody took, and DEAD.
    ref, answer = register(master)
    master._on_heartbeat(pb.WorkerHeartbeat(worker_id="w1", incarnation=1), ref)
    assert master.datagrams is not None
    entry = master.datagrams.get("w1")
    assert entry is not None and not entry.parked
    assert master.datagrams.accept(
        heartbeat_datagram(answer.heartbeat_slot, 1, answer.heartbeat_key)
    )


def test_each_registration_gets_a_new_key(master: Master) -> None:
    _ref, first = register(master)
    _ref, second = register(master)
    assert first.heartbeat_key != second.heartbeat_key
    assert master.datagrams is not None and len(master.datagrams) == 1
    assert not master.datagrams.accept(
        heartbeat_datagram(first.heartbeat_slot, 9, first.heartbeat_key)
    )
    assert master.datagrams.accept(
        heartbeat_datagram(second.heartbeat_slot, 1, second.heartbeat_key)
    )


def test_stream_only_when_the_worker_or_the_master_says_so(
    master: Master, tmp_path: pathlib.Path, clock: FakeClock
) -> None:
    _ref, answer = register(master, udp=False)
    assert answer.heartbeat_udp_port == 0 and not answer.heartbeat_key
    off = Master(
        Conf({"spark.sparkctl.worker.udpHeartbeats": "false"}), tmp_path / "off", clock=clock
    )
    off.url = "spark://127.0.0.1:7078"
    assert off.datagrams is None
    _ref, answer = register(off)
    assert answer.heartbeat_udp_port == 0 and not answer.heartbeat_key


# -- the worker's side, over a real UDP socket ---------------------------------------


def make_worker(tmp_path: pathlib.Path, conf: dict[str, str] | None = None) -> Worker:
    worker = Worker(Conf(conf or {}), "w1", ["spark://127.0.0.1:7077"], 1, 64, tmp_path / "w")
    worker._self_ref = FakeRef("Worker", 7201)
    worker.master_ref = FakeRef("Master", 7077)
    worker.registered.set()
    return worker


def offer(port: int, slot: int = 7, key: bytes = b"k" * 32) -> pb.RegisterWorkerResponse:
    return pb.RegisterWorkerResponse(
        accepted=True, heartbeat_udp_port=port, heartbeat_slot=slot, heartbeat_key=key
    )


def test_the_worker_sends_signed_datagrams_and_honours_use_stream(tmp_path: pathlib.Path) -> None:
    worker = make_worker(tmp_path)
    master_ref = worker.master_ref
    assert isinstance(master_ref, FakeRef)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5.0)
        worker._start_datagrams(offer(sock.getsockname()[1]), master_ref)
        worker._on_send_heartbeat(pb.SendHeartbeat(), None)
        received = [sock.recv(2048), sock.recv(2048)]  # one at registration, one on the tick
    assert received == [heartbeat_datagram(7, 1, b"k" * 32), heartbeat_datagram(7, 2, b"k" * 32)]
    assert len(received[0]) == DATAGRAM_SIZE
    assert not master_ref.of(pb.WorkerHeartbeat)
    worker._on_use_stream_heartbeats(pb.UseStreamHeartbeats(reason="test"), None)
    assert worker._on_stream and worker._datagrams is not None  # kept, to probe with
    assert len(master_ref.of(pb.WorkerHeartbeat)) == 1  # at once, then on every tick
    worker._on_send_heartbeat(pb.SendHeartbeat(), None)
    assert len(master_ref.of(pb.WorkerHeartbeat)) == 2


def test_a_worker_sending_to_a_closed_port_falls_back_to_its_stream(tmp_path: pathlib.Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    worker = make_worker(tmp_path)
    master_ref = worker.master_ref
    assert isinstance(master_ref, FakeRef)
    worker._start_datagrams(offer(closed), master_ref)

    # The first datagram's ICMP "port unreachable" fails a later send (bounded wait).
    def beat() -> bool:
        worker._on_send_heartbeat(pb.SendHeartbeat(), None)
        return worker._datagrams is None

    wait_until(beat, timeout=5.0)
    assert master_ref.of(pb.WorkerHeartbeat)


def test_a_worker_with_udp_heartbeats_off_never_asks(tmp_path: pathlib.Path) -> None:
    worker = make_worker(tmp_path, {"spark.sparkctl.worker.udpHeartbeats": "false"})
    assert not worker.udp_heartbeats
    worker._start_datagrams(offer(9), FakeRef("Master", 7077))
    assert worker._datagrams is None


# -- the whole path: a Master and a Worker on 127.0.0.1 ------------------------------


def _run_pair(
    tmp_path: pathlib.Path, timeout_s: float, conf: dict[str, str] | None = None
) -> tuple[MasterHandle, WorkerHandle]:
    settings = Conf({"spark.worker.timeout": f"{timeout_s}s", **(conf or {})})
    master = start_master(settings, "127.0.0.1", 0, tmp_path / "master")
    try:
        worker = start_worker(settings, [master.url], 1, 256, "127.0.0.1", 0, tmp_path / "worker")
    except BaseException:
        master.stop()
        raise
    return master, worker


def test_a_real_worker_heartbeats_by_datagram(tmp_path: pathlib.Path) -> None:
    master, worker = _run_pair(tmp_path, 1.0)
    try:
        assert worker.wait_registered(10.0)
        table = master.endpoint.datagrams
        assert table is not None
        wait_until(lambda: table.accepted >= 3, timeout=10.0)  # every 0.25 s
        time.sleep(1.5)  # past spark.worker.timeout: datagrams alone keep it ALIVE
        w = master.endpoint.workers[worker.endpoint.worker_id]
        assert w.alive and worker.endpoint._datagrams is not None
        assert table.get(w.worker_id) is not None
    finally:
        worker.stop()
        master.stop()


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        body = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_the_master_metrics_count_taken_and_dropped_datagrams(tmp_path: pathlib.Path) -> None:
    master, worker = _run_pair(tmp_path, 2.0)
    endpoint = master.endpoint

    def state() -> api.GetClusterStateResponse:
        reply = master.ref.ask_sync(api.GetClusterStateRequest(), 10.0)
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    ui = MasterWebUI(state, "127.0.0.1", 0, datagrams=endpoint.datagram_counts)
    ui.start()
    try:
        assert worker.wait_registered(10.0)
        table = endpoint.datagrams
        assert table is not None
        wait_until(lambda: table.accepted >= 1, timeout=10.0)  # the worker's own, good
        enrollment = table.get(worker.endpoint.worker_id)
        assert enrollment is not None
        listener = endpoint._listener
        assert listener is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            # Its slot, a sequence far ahead, signed with a key that is not its own.
            forged = heartbeat_datagram(enrollment.slot, 2**40, bytes(32))
            sock.sendto(forged, ("127.0.0.1", listener.port))
            sock.sendto(b"short", ("127.0.0.1", listener.port))
        wait_until(lambda: table.counts().dropped["size"] == 1, timeout=10.0)
        samples = _scrape(ui.url)
        dropped = "sparkctl_master_heartbeat_datagrams_dropped_total"
        assert samples[(dropped, (("reason", "forged"),))] == 1
        assert samples[(dropped, (("reason", "size"),))] == 1
        for reason in ("version", "unknown", "replayed"):
            assert samples[(dropped, (("reason", reason),))] == 0, reason
        accepted = samples[("sparkctl_master_heartbeat_datagrams_accepted_total", ())]
        assert accepted >= 1 and enrollment.last_sequence < 2**40  # the forged one not taken
        # Counters: the next scrape never shows fewer (the worker keeps heartbeating).
        wait_until(lambda: table.accepted > accepted, timeout=10.0)
        again = _scrape(ui.url)
        assert again[("sparkctl_master_heartbeat_datagrams_accepted_total", ())] > accepted
        assert again[(dropped, (("reason", "forged"),))] == 1
        assert worker.endpoint._datagrams is not None  # still heartbeating by datagram
    finally:
        ui.stop()
        worker.stop()
        master.stop()


def test_without_datagrams_the_master_metrics_have_no_datagram_counters(
    tmp_path: pathlib.Path,
) -> None:
    settings = Conf({"spark.sparkctl.worker.udpHeartbeats": "false"})
    master = start_master(settings, "127.0.0.1", 0, tmp_path / "master")
    try:
        assert master.endpoint.datagram_counts() is None
        registry = master_registry(
            lambda: api.GetClusterStateResponse(), master.endpoint.datagram_counts
        )
        names = {family.name for family in registry.collect()}
        assert "sparkctl_master_up" in names
        assert not any("datagram" in name for name in names), names
    finally:
        master.stop()


def test_when_the_master_drops_every_datagram_the_worker_moves_and_stays_alive(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(HeartbeatDatagrams, "accept", lambda self, data: False)
    master, worker = _run_pair(tmp_path, 1.0)
    try:
        assert worker.wait_registered(10.0)
        endpoint = worker.endpoint
        wait_until(lambda: endpoint._on_stream, timeout=10.0)  # told after ~0.5 s
        time.sleep(1.5)  # past spark.worker.timeout, on stream heartbeats
        w = master.endpoint.workers[endpoint.worker_id]
        assert w.alive
    finally:
        worker.stop()
        master.stop()


def test_drops_are_reported_once_a_minute_with_their_counts(
    master: Master, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    table = master.datagrams
    assert table is not None
    for _ in range(500):
        table.accept(b"garbage")
    table.accept(heartbeat_datagram(1, 1, bytes(32)))
    check(master)  # within the minute: counted, not logged
    assert "dropped bad heartbeat datagrams" not in caplog.text
    clock.advance(61.0)
    check(master)
    lines = [r.getMessage() for r in caplog.records if "dropped bad" in r.getMessage()]
    assert lines == ["dropped bad heartbeat datagrams in the last minute: 500 size, 1 unknown"]
    clock.advance(61.0)
    check(master)  # nothing new: nothing said
    assert len([r for r in caplog.records if "dropped bad" in r.getMessage()]) == 1


def test_a_flood_on_the_socket_is_dropped_and_the_listener_keeps_going() -> None:
    clock = FakeClock()
    table = HeartbeatDatagrams(clock)
    listener = DatagramListener(table, "127.0.0.1", 0)
    listener.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            target = ("127.0.0.1", listener.port)
            for n in range(3000):
                sender.sendto(b"\xff" * (n % 200), target)
            sender.sendto(b"x" * 1400, target)
            # Everything the kernel queued is read and dropped, none taken.
            wait_until(lambda: sum(table.dropped.values()) >= 1000, timeout=10.0)
            assert table.accepted == 0 and set(table.dropped) <= {"size", "version"}
    finally:
        listener.stop()
    assert not listener._thread.is_alive()
