"""The tcp backend against a peer that stops reading.

A peer whose process is stopped (SIGSTOP, a debugger, a hung host whose kernel
still ACKs) keeps its connection open: keepalive probes are answered by its
kernel, and the zero receive window only makes our writer wait. What we send
it waits in the connection's backlog. Without a bound the backlog grew for as
long as the peer stayed stopped (every reply, every block), and the writer
thread waited forever. Now a connection whose peer has taken none of our bytes
for spark.network.timeout is closed with a warning naming the key, and its
backlog is dropped; a peer that is slow but reading is not closed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv

SECRET = "tcp-write-stall-secret"
REPLY_BYTES = 1 << 20


class _Big(RpcEndpoint):
    """Answers every ask with 1 MiB, and notes who went away."""

    def __init__(self) -> None:
        self.gone = threading.Event()

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.BytesValue(value=b"b" * REPLY_BYTES))

    def on_disconnected(self, address: object) -> None:
        self.gone.set()


_PEER = textwrap.dedent(
    """
    import os, signal, sys, time
    from google.protobuf import wrappers_pb2
    from rpcenv import RpcAddress, RpcEnv
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": sys.argv[2]}
    env = RpcEnv.create("stops-reading", "127.0.0.1", 0, conf, client_mode=True)
    ref = env.endpoint_ref(RpcAddress("127.0.0.1", int(sys.argv[1])), "big", timeout=10)
    stop_reading = sys.argv[3] == "stop"
    if sys.argv[3] == "slow":  # a reader that keeps up only ~200 KB/s
        import socket
        real_recv = socket.socket.recv
        def slow_recv(self, size, *flags):
            time.sleep(0.01)
            return real_recv(self, min(size, 2048), *flags)
        socket.socket.recv = slow_recv
    for n in range(64):  # 64 MiB of answers: far past what the kernel buffers hold
        ref.ask(wrappers_pb2.StringValue(value=str(n)), timeout=600)
    print("ASKED", flush=True)
    if stop_reading:
        os.kill(os.getpid(), signal.SIGSTOP)
    time.sleep(600)
    """
)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RpcEnv, _Big]]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.network.timeout": "2s",
    }
    env = RpcEnv.create("writer", "127.0.0.1", 0, conf)
    endpoint = _Big()
    env.setup_endpoint("big", endpoint)
    yield env, endpoint
    env.shutdown()


def _peer(port: int, mode: str) -> subprocess.Popen[str]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", _PEER, str(port), SECRET, mode],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert proc.stdout is not None
    assert "ASKED" in proc.stdout.readline()
    return proc


def _end(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.send_signal(signal.SIGCONT) if proc.poll() is None else None
    proc.wait(10)


def test_a_peer_that_stops_reading_is_closed_and_its_backlog_dropped(
    server: tuple[RpcEnv, _Big], caplog: pytest.LogCaptureFixture
) -> None:
    env, endpoint = server
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    proc = _peer(env.address.port, "stop")
    try:
        started = time.monotonic()
        assert endpoint.gone.wait(15.0), "the connection to a stopped reader stayed open"
        assert time.monotonic() - started < 10.0
        assert "spark.network.timeout=2s" in caplog.text
        live = env._live  # type: ignore[attr-defined]
        assert not any(c._backlog for c in live)
    finally:
        _end(proc)


def test_a_slow_reader_that_keeps_reading_is_not_closed(server: tuple[RpcEnv, _Big]) -> None:
    env, endpoint = server
    proc = _peer(env.address.port, "read")
    try:
        stopped_at = time.monotonic()
        # Stopped and continued in turns shorter than the timeout: slow, not gone.
        for _ in range(6):
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(1.0)
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.3)
        assert not endpoint.gone.is_set()
        assert time.monotonic() - stopped_at > 6.0
    finally:
        _end(proc)


def test_a_reader_slower_than_the_send_buffer_wakes_its_writer_is_not_closed(
    server: tuple[RpcEnv, _Big],
) -> None:
    """A blocked send returns only when about a third of the send buffer (4 MiB here)
    is free: ~6 s at ~200 KB/s, past the 2 s limit, though the peer reads all along.
    The watchdog also counts the kernel's acknowledged bytes as progress."""
    env, endpoint = server
    proc = _peer(env.address.port, "slow")
    try:
        time.sleep(7.0)
        assert not endpoint.gone.is_set(), "a slow but reading peer was closed as stalled"
    finally:
        _end(proc)
