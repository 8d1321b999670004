"""The tcp backend under hostile input: what a stranger on its port can and cannot do.

Anything that is not a sparkctl peer with the right token is closed within a
bounded time with one warning that names what was wrong; no input kills a
thread with a traceback, holds a thread for long, or stops the env accepting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from tcp_records import record as _record

import rpcenv.tcp
import rpcenv.tcp._inbound
from rpcenv import (
    RpcAddress,
    RpcCallContext,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpoint,
    RpcEnv,
)
from rpcenv._security import make_auth_token

WAIT = 10.0
SECRET = "tcp-hostile-secret"


def _hello(**fields: Any) -> bytes:
    return _record(json.dumps(fields).encode())


class _Echo(RpcEndpoint):
    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """Exceptions that ended a thread (they would print a bare traceback)."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RpcEnv]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": SECRET}
    env = RpcEnv.create("hostile", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    yield env
    env.shutdown()


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing `sock`; fails if it stays open `seconds`."""
    sock.settimeout(seconds)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return got
        except TimeoutError:
            break
        if not chunk:
            return got
        got += chunk
    pytest.fail(f"the server kept the connection open for {seconds}s (got {got[:80]!r})")


def _still_serves(server: RpcEnv) -> None:
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": SECRET}
    client = RpcEnv.create("client", "127.0.0.1", 0, conf, client_mode=True)
    try:
        ref = client.endpoint_ref(server.address, "echo", timeout=WAIT)
        answer = ref.ask_sync(wrappers_pb2.StringValue(value="ok"), WAIT)
        assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == "ok"
    finally:
        client.shutdown()


def _valid_hello(env_id: str = "intruder") -> bytes:
    token = make_auth_token(SECRET.encode(), env_id)
    return _hello(env_id=env_id, host="127.0.0.1", port=0, token=token)


BAD_HANDSHAKES = {
    "http": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds the limit"),
    "4GiB-header": (b"\xff\xff\xff\xff", "4294967295 bytes exceeds the limit"),
    "huge-hello": (_record(b"x" * (1 << 20)), "exceeds the limit"),
    "not-json": (_record(b"\x00\x01garbage"), "not JSON"),
    "deeply-nested": (_record(b"[" * 50_000), "nested too deeply"),
    "not-an-object": (_record(b"[1, 2]"), "not a JSON object"),
    "infinite-port": (
        _record(b'{"env_id": "a", "host": "127.0.0.1", "port": Infinity}'),
        "valid port",
    ),
    "list-host": (_hello(env_id="a", host=["127.0.0.1"], port=0), "valid host"),
    "forged-log-line": (
        _hello(env_id="a", host="h\nWARNING root forged", port=0, token=""),
        "valid host",
    ),
    "no-env-id": (_hello(host="127.0.0.1", port=0), "valid env_id"),
    "numeric-token": (_hello(env_id="a", host="h", port=0, token=5), "token is not a string"),
    "no-token": (_hello(env_id="a", host="127.0.0.1", port=0), "no authentication token"),
    "wrong-token": (
        _hello(env_id="a", host="h", port=0, token="v1:1:00:ab"),
        "expired authentication token",
    ),
    # Made when the test runs: a token made at collection may expire before then.
    "forged-token": (
        lambda: _hello(env_id="a", host="h", port=0, token=make_auth_token(b"not-the-secret", "a")),
        "wrong shared secret",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_HANDSHAKES))
def test_a_bad_handshake_is_closed_with_a_warning_naming_it(
    name: str,
    server: RpcEnv,
    caplog: pytest.LogCaptureFixture,
    thread_errors: list[BaseException | None],
) -> None:
    made, reason = BAD_HANDSHAKES[name]
    data = made() if callable(made) else made
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    with socket.create_connection((server.address.host, server.address.port), WAIT) as sock:
        with contextlib.suppress(OSError):  # the server may close before it read it all
            sock.sendall(data)
        _closed_within(sock, 5.0)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and reason not in caplog.text:
        time.sleep(0.02)
    assert reason in caplog.text
    assert "refused a connection from 127.0.0.1:" in caplog.text
    assert not thread_errors
    _still_serves(server)


def test_a_valid_handshake_then_garbage_ends_that_connection_only(
    server: RpcEnv, caplog: pytest.LogCaptureFixture, thread_errors: list[BaseException | None]
) -> None:
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    # A small malformed envelope, and one larger than a read (parsed on another path).
    for body in (b"\xff" * 16, b"\xff" * (600 << 10)):
        with socket.create_connection((server.address.host, server.address.port), WAIT) as sock:
            sock.sendall(_valid_hello(f"garbage-{len(body)}"))
            sock.sendall(_record(body))
            _closed_within(sock, 5.0)
    assert caplog.text.count("a malformed message") == 2, caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert not thread_errors
    _still_serves(server)


def test_a_silent_or_trickling_connection_is_closed_in_bounded_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.rpc.io.connectionTimeout": "1s",  # as gRPC's server handshake timeout
    }
    server = RpcEnv.create("impatient", "127.0.0.1", 0, conf)
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    address = (server.address.host, server.address.port)
    with socket.create_connection(address, WAIT) as silent:
        started = time.monotonic()
        _closed_within(silent, 5.0)
        assert time.monotonic() - started < 4.0
    # One byte every 0.2 s never lets a per-read timeout expire: the whole handshake
    # has a deadline.
    with socket.create_connection(address, WAIT) as trickle:
        started = time.monotonic()
        hello = _valid_hello("trickle")
        closed = False
        for byte in hello:
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if time.monotonic() - started > 5.0:
                break
            time.sleep(0.2)
        if not closed:
            _closed_within(trickle, 2.0)
        assert time.monotonic() - started < 5.0
    assert "no handshake in time" in caplog.text
    server.shutdown()


def test_a_flood_of_silent_connections_uses_bounded_threads_and_is_logged_once(
    server: RpcEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(rpcenv.tcp._inbound, "_MAX_HANDSHAKES", 8)
    # Read at each accept: the new env below uses the patched bound.
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": SECRET}
    env = RpcEnv.create("flooded", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    before = threading.active_count()
    socks: list[socket.socket] = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection((env.address.host, env.address.port), WAIT))
        time.sleep(0.5)
        assert threading.active_count() - before <= 8 + 2
        assert "closed without a handshake: 8 connections were waiting" in caplog.text
        # Rate-limited: one report for the burst, not 192 lines.
        assert caplog.text.count("refused a connection") < 10
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and threading.active_count() - before > 2:
        time.sleep(0.05)
    _still_serves(env)
    env.shutdown()


def _wait_for(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}")
        time.sleep(0.02)


def test_a_flood_of_silent_connections_does_not_keep_a_real_peer_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: with every handshake slot taken, a real peer was closed at once, for up
    to spark.rpc.io.connectionTimeout (30 s), however fast it spoke."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.setattr(rpcenv.tcp._inbound, "_MAX_HANDSHAKES", 16)
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": SECRET}
    env = RpcEnv.create("flooded", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    assert isinstance(env, rpcenv.tcp.TcpRpcEnv)
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    address = (env.address.host, env.address.port)
    socks: list[socket.socket] = []
    stop = threading.Event()

    def flood() -> None:  # keeps opening silent connections while the peer comes in
        while not stop.is_set() and len(socks) < 400:
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection(address, WAIT))
            time.sleep(0.002)

    gate = env._gate
    assert gate is not None
    before = threading.active_count()
    try:
        for _ in range(16):
            socks.append(socket.create_connection(address, WAIT))
        _wait_for(lambda: gate.waiting() >= 16, "16 waiting handshakes")
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        for _ in range(3):
            started = time.monotonic()
            _still_serves(env)
            assert time.monotonic() - started < 3.0
        stop.set()
        flooder.join(WAIT)
        # Waiting handshakes cost descriptors, not threads.
        assert threading.active_count() - before <= 4
        assert gate.waiting() <= 16
        assert "closed without a handshake" in caplog.text
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        env.shutdown()


def test_authenticated_connections_past_the_limit_are_refused_saying_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.sparkctl.rpc.tcp.maxConnections": "2",
    }
    env = RpcEnv.create("capped", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    address = (env.address.host, env.address.port)
    held: list[socket.socket] = []
    try:
        for n in range(2):
            sock = socket.create_connection(address, WAIT)
            sock.sendall(_valid_hello(f"holder-{n}"))
            sock.settimeout(WAIT)
            assert b'"error": ""' in sock.recv(65536)  # admitted
            held.append(sock)
        client_conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": SECRET}
        client = RpcEnv.create("late", "127.0.0.1", 0, client_conf, client_mode=True)
        try:
            with pytest.raises(
                RpcConnectionError, match=r"spark\.sparkctl\.rpc\.tcp\.maxConnections"
            ):
                client.endpoint_ref(env.address, "echo", timeout=WAIT)
        finally:
            client.shutdown()
        # Logged after the answer went out: the client may hear first.
        _wait_for(lambda: "2 connections are open" in caplog.text, "the refusal logged")
        held.pop().close()  # a slot frees when its reader sees the end
        deadline = time.monotonic() + WAIT
        while True:
            try:
                _still_serves(env)
                break
            except RpcConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
        env.shutdown()


STALLS = {
    # A large record announced, part sent, then nothing (read on the large path).
    "large-record": struct.pack(">I", 8 << 20) + b"\x00" * (300 << 10),
    # A small record's header cut short (read on the small path).
    "half-header": b"\x00\x00",
    "small-record": struct.pack(">I", 1000) + b"\x00" * 10,
}


@pytest.mark.parametrize("name", sorted(STALLS))
def test_a_peer_stalled_partway_through_a_message_is_closed(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    thread_errors: list[BaseException | None],
) -> None:
    """Before: the reader thread waited for the rest of the record forever."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.rpc.io.connectionTimeout": "1s",
    }
    env = RpcEnv.create("stalled", "127.0.0.1", 0, conf)
    env.setup_endpoint("echo", _Echo())
    caplog.set_level(logging.WARNING, logger="rpcenv.tcp")
    try:
        with socket.create_connection((env.address.host, env.address.port), WAIT) as sock:
            sock.sendall(_valid_hello(f"staller-{name}"))
            sock.settimeout(WAIT)
            assert b'"error": ""' in sock.recv(65536)
            started = time.monotonic()
            sock.sendall(STALLS[name])
            _closed_within(sock, 5.0)
            assert time.monotonic() - started < 4.0
        _wait_for(lambda: "for the rest of its bytes" in caplog.text, "the stall logged")
        assert "spark.rpc.io.connectionTimeout=1s" in caplog.text
        assert not thread_errors
        _still_serves(env)
    finally:
        env.shutdown()


def test_a_large_message_trickled_in_is_closed_when_its_wait_adds_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bytes every 0.1 s never let a per-read timeout expire: the record's wait adds up."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.rpc.io.connectionTimeout": "1s",
    }
    env = RpcEnv.create("trickled", "127.0.0.1", 0, conf)
    try:
        with socket.create_connection((env.address.host, env.address.port), WAIT) as sock:
            sock.sendall(_valid_hello("trickler"))
            sock.settimeout(WAIT)
            sock.recv(65536)
            started = time.monotonic()
            sock.sendall(struct.pack(">I", 4 << 20))
            closed = False
            while time.monotonic() - started < 6.0:
                try:
                    sock.sendall(b"\x00" * 1024)
                except OSError:
                    closed = True
                    break
                time.sleep(0.1)
            if not closed:
                _closed_within(sock, 1.0)
            assert time.monotonic() - started < 4.0
    finally:
        env.shutdown()


def test_a_busy_but_steady_peer_is_not_closed_as_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many messages, each in several pieces, over longer than the stall bound."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {
        "spark.rpc.backend": "tcp",
        "spark.authenticate.secret": SECRET,
        "spark.rpc.io.connectionTimeout": "1s",
    }
    server = RpcEnv.create("steady", "127.0.0.1", 0, conf)
    server.setup_endpoint("echo", _Echo())
    client = RpcEnv.create("steady-client", "127.0.0.1", 0, conf, client_mode=True)
    try:
        ref = client.endpoint_ref(server.address, "echo", timeout=WAIT)
        started = time.monotonic()
        payload = "x" * (2 << 20)
        while time.monotonic() - started < 2.5:
            answer = ref.ask_sync(wrappers_pb2.StringValue(value=payload), WAIT)
            assert isinstance(answer, wrappers_pb2.StringValue) and len(answer.value) == len(
                payload
            )
            time.sleep(0.3)  # idle between messages does not count
    finally:
        client.shutdown()
        server.shutdown()


_FD_LIMITED_SERVER = """
import resource, sys, time, os
from rpcenv import RpcEnv, RpcEndpoint
class Echo(RpcEndpoint):
    def receive_and_reply(self, message, context):
        context.reply(message)
env = RpcEnv.create("fdlimited", "127.0.0.1", 0, {"spark.rpc.backend": "tcp"})
env.setup_endpoint("echo", Echo())
used = len(os.listdir("/proc/self/fd"))
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
print(env.address.port, flush=True)
sys.stdin.read()
env.shutdown()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc and RLIMIT_NOFILE")
def test_running_out_of_descriptors_does_not_stop_accepting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    child = subprocess.Popen(
        [sys.executable, "-c", _FD_LIMITED_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        # More connections than the server has descriptors left: accept() fails (EMFILE).
        socks = [socket.create_connection(("127.0.0.1", port), WAIT) for _ in range(30)]
        time.sleep(0.5)
        for sock in socks:
            sock.close()
        conf = {"spark.rpc.backend": "tcp"}
        client = RpcEnv.create("client", "127.0.0.1", 0, conf, client_mode=True)
        try:
            deadline = time.monotonic() + WAIT
            while True:
                try:
                    ref = client.endpoint_ref(RpcAddress("127.0.0.1", port), "echo", timeout=2.0)
                    answer = ref.ask_sync(wrappers_pb2.StringValue(value="back"), 2.0)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == "back"
        finally:
            client.shutdown()
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=WAIT)
    assert "Traceback" not in stderr, stderr
    assert "cannot accept connections for now" in stderr, stderr


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_announcing_large_messages_and_stalling_costs_little_memory(server: RpcEnv) -> None:
    announced = 100 << 20  # under the 128 MiB limit: a legal size
    socks: list[socket.socket] = []
    before = _rss()
    try:
        for n in range(4):
            sock = socket.create_connection((server.address.host, server.address.port), WAIT)
            sock.sendall(_valid_hello(f"stall-{n}"))
            sock.sendall(struct.pack(">I", announced) + b"\x00" * (300 << 10))
            socks.append(sock)
        time.sleep(1.0)
        grown = _rss() - before
        assert grown < 100 << 20, f"4 stalled announcements of 100 MiB took {grown >> 20} MiB"
    finally:
        for sock in socks:
            sock.close()
    _still_serves(server)


def test_without_a_secret_it_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    with pytest.raises(RpcConfigError, match="refusing to listen on non-loopback address"):
        RpcEnv.create("open", "0.0.0.0", 0, {"spark.rpc.backend": "tcp"})
    env = RpcEnv.create("closed", "127.0.0.1", 0, {"spark.rpc.backend": "tcp"})
    try:
        assert isinstance(env, rpcenv.tcp.TcpRpcEnv)
        listener = env._listener
        assert listener is not None and listener.getsockname()[0] == "127.0.0.1"
    finally:
        env.shutdown()
