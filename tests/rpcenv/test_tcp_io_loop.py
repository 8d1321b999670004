"""The tcp backend's one I/O loop: threads that do not grow with peers, and no peer
that holds up the others.

Before, every connection had a reader thread (and a writer thread once its peer
fell behind): a driver with ~600 executors held ~2,400 threads, the very
complaint that moved the gRPC backend to grpc.aio. Now one loop thread polls
every socket; a handler that holds it for long gets the loop handed to another
thread (`rpcenv.tcp._loop.IoLoop.check_held`), and a peer that stops reading
only grows its own backlog.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from tcp_records import record as _record
from tcp_records import recv_record as _recv_record

import rpcenv.tcp._loop
from rpcenv import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv._codec import pack, unpack
from rpcenv._security import make_auth_token
from rpcenv.tcp._loop import HANDOFF_SECONDS
from sparkctl.v1 import rpc_pb2

WAIT = 10.0
SECRET = "tcp-io-loop-secret"
CONF = {
    "spark.rpc.backend": "tcp",
    "spark.authenticate.secret": SECRET,
    "spark.rpc.dispatcher.numThreads": "4",
}


def _threads() -> int:
    """Threads of this process, native ones included where /proc says."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _raw_peer(env: RpcEnv, name: str) -> socket.socket:
    """A connection that has passed the handshake, as a client-mode peer would."""
    sock = socket.create_connection((env.address.host, env.address.port), WAIT)
    sock.settimeout(WAIT)
    token = make_auth_token(SECRET.encode(), name)
    hello = {"env_id": name, "host": "127.0.0.1", "port": 0, "token": token}
    sock.sendall(_record(json.dumps(hello).encode()))
    answer = json.loads(_recv_record(sock))
    assert answer["error"] == "", answer
    return sock


def _ask_record(request_id: int, receiver: str, message: Message) -> bytes:
    envelope = rpc_pb2.Envelope(
        kind=rpc_pb2.ENVELOPE_KIND_ASK, receiver=receiver, request_id=request_id
    )
    pack(message, 128 << 20, envelope.payload)
    return _record(envelope.SerializeToString())


class _Echo(RpcEndpoint):
    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


class _Big(RpcEndpoint):
    """Answers every ask with 1 MiB."""

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.BytesValue(value=b"b" * (1 << 20)))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RpcEnv]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    env = RpcEnv.create("loop", "127.0.0.1", 0, CONF)
    env.setup_endpoint("echo", _Echo())
    env.setup_endpoint("big", _Big())
    yield env
    env.shutdown()


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEADDR"), reason="needs a POSIX socket API")
def test_three_hundred_peers_cost_no_thread_each(
    tcp_poller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a reader thread per peer, 300+ threads here."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    before = _threads()
    # As a cluster application's driver takes (scheduler.api.driver): 4,096 peers.
    conf = {**CONF, "spark.sparkctl.rpc.tcp.maxConnections": "4096"}
    env = RpcEnv.create("many", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    peers: list[socket.socket] = []
    try:
        for n in range(300):
            peers.append(_raw_peer(env, f"peer-{n}"))
        # Every peer asks at once, then reads its answer: the env reads and writes all.
        for n, sock in enumerate(peers):
            sock.sendall(_ask_record(1, "echo", wrappers_pb2.StringValue(value=f"v{n}")))
        for n, sock in enumerate(peers):
            reply = rpc_pb2.Envelope.FromString(_recv_record(sock))
            assert reply.kind == rpc_pb2.ENVELOPE_KIND_REPLY and reply.request_id == 1
            assert unpack(reply.payload) == wrappers_pb2.StringValue(value=f"v{n}")
        grown = _threads() - before
        # The dispatcher's 4, the loop, its watchdog, the ask deadlines: none per peer.
        assert grown <= 4 + 3 + 2, f"{grown} threads for 300 peers"
    finally:
        for sock in peers:
            sock.close()
        env.shutdown()


class _Holding(RpcEndpoint):
    """Handles its sends on the I/O thread, holding it until `go` is set."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.held = threading.Event()
        self.values: list[str] = []

    def receives_inline(self, message: Message) -> bool:
        return True

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        assert isinstance(message, wrappers_pb2.StringValue)
        self.held.set()
        self.go.wait(30.0)
        self.values.append(message.value)


def test_a_handler_holding_the_loop_holds_up_no_other_peer(tcp_poller: str, server: RpcEnv) -> None:
    holding = _Holding()
    server.setup_endpoint("holding", holding)
    slow = RpcEnv.create("slow-peer", "127.0.0.1", 0, CONF, client_mode=True)
    quick = RpcEnv.create("quick-peer", "127.0.0.1", 0, CONF, client_mode=True)
    try:
        held_ref = slow.endpoint_ref(server.address, "holding", timeout=WAIT)
        for n in range(50):  # the first holds the loop; the rest wait behind it, in order
            held_ref.send(wrappers_pb2.StringValue(value=str(n)))
        assert holding.held.wait(WAIT)
        threads = _threads()
        echo = quick.endpoint_ref(server.address, "echo", timeout=WAIT)
        for n in range(5):
            started = time.monotonic()
            answer = echo.ask_sync(wrappers_pb2.StringValue(value=f"q{n}"), WAIT)
            assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == f"q{n}"
            assert time.monotonic() - started < HANDOFF_SECONDS + 2.0
        assert holding.values == []  # still held: the quick peer went around it
        assert _threads() - threads <= 2  # one thread took the loop over
        holding.go.set()
        deadline = time.monotonic() + WAIT
        while len(holding.values) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert holding.values == [str(n) for n in range(50)]
        # The held thread gave its peer back and ended.
        while _threads() > threads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _threads() <= threads
        assert server._loop.held_threads() == 0  # type: ignore[attr-defined]
        held_ref.send(wrappers_pb2.StringValue(value="after"))  # its peer is read again
        while len(holding.values) < 51 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert holding.values[-1] == "after"
    finally:
        holding.go.set()
        quick.shutdown()
        slow.shutdown()


def test_a_peer_that_stops_reading_holds_up_no_other_peer(server: RpcEnv) -> None:
    stalled = _raw_peer(server, "never-reads")
    quick = RpcEnv.create("quick-peer", "127.0.0.1", 0, CONF, client_mode=True)
    try:
        # 64 MiB of answers to a peer that reads none: the env's backlog for it grows.
        stalled.sendall(
            b"".join(_ask_record(n, "big", wrappers_pb2.StringValue()) for n in range(64))
        )
        connections = server._connections  # type: ignore[attr-defined]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            backlog = sum(c.backlog_bytes() for c in list(connections.values()))
            if backlog > 32 << 20:
                break
            time.sleep(0.05)
        assert backlog > 32 << 20, f"only {backlog} bytes waiting"
        echo = quick.endpoint_ref(server.address, "echo", timeout=WAIT)
        for n in range(20):
            started = time.monotonic()
            answer = echo.ask_sync(wrappers_pb2.StringValue(value=f"q{n}"), WAIT)
            assert answer == wrappers_pb2.StringValue(value=f"q{n}")
            assert time.monotonic() - started < 2.0
    finally:
        quick.shutdown()
        stalled.close()


def test_shutdown_closes_every_socket_and_ends_its_threads(
    tcp_poller: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    env = RpcEnv.create("closing", "127.0.0.1", 0, CONF)
    env.setup_endpoint("echo", _Echo())
    peers = [_raw_peer(env, f"p{n}") for n in range(5)]
    try:
        port = env.address.port
        env.shutdown()
        for sock in peers:  # each sees the end of its stream
            assert sock.recv(1) == b""
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), 1.0).close()
        names = [t.name for t in threading.enumerate() if t.is_alive()]
        deadline = time.monotonic() + WAIT
        while any(n.startswith("closing-tcp") for n in names) and time.monotonic() < deadline:
            time.sleep(0.02)
            names = [t.name for t in threading.enumerate() if t.is_alive()]
        assert not [n for n in names if n.startswith("closing-tcp")], names
    finally:
        for sock in peers:
            sock.close()


def test_held_threads_are_capped_and_the_loop_says_it_waits(
    server: RpcEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rpcenv.tcp._loop, "MAX_HELD", 1)
    caplog.set_level(logging.INFO, logger="rpcenv.tcp")
    first, second = _Holding(), _Holding()
    server.setup_endpoint("first", first)
    server.setup_endpoint("second", second)
    peers = [RpcEnv.create(f"p{n}", "127.0.0.1", 0, CONF, client_mode=True) for n in range(3)]
    try:
        refs = [
            peer.endpoint_ref(server.address, name, timeout=WAIT)
            for peer, name in zip(peers, ("first", "second", "echo"), strict=True)
        ]
        threads = _threads()
        refs[0].send(wrappers_pb2.StringValue(value="a"))
        assert first.held.wait(WAIT)
        _wait_for(lambda: "another thread serves the other peers" in caplog.text, "a hand-over")
        refs[1].send(wrappers_pb2.StringValue(value="b"))
        assert second.held.wait(WAIT)  # the thread that took over is held too: no third
        _wait_for(lambda: "threads are held by slow handlers" in caplog.text, "the cap's warning")
        assert _threads() - threads <= 2
        late = refs[2].ask(wrappers_pb2.StringValue(value="late"), WAIT)
        time.sleep(0.5)
        assert not late.done()  # the loop waits, as one thread would
        first.go.set()
        second.go.set()
        assert late.result(WAIT) == wrappers_pb2.StringValue(value="late")
        assert first.values == ["a"] and second.values == ["b"]
        assert server._watchdog.is_alive()  # type: ignore[attr-defined]
    finally:
        first.go.set()
        second.go.set()
        for peer in peers:
            peer.shutdown()


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}")
        time.sleep(0.02)
