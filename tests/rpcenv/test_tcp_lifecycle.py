"""The tcp backend's lifecycle edges: a failed construction, a dial that finishes as
the env shuts down, a failing loop turn, shutdown after a hand-over.

Each leaked a descriptor or a thread, or let shutdown return with sockets still open;
the tests count the process's descriptors and threads around them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message
from tcp_records import record as _record
from tcp_records import recv_record as _recv_record

import rpcenv.tcp._env as tcp_env
import rpcenv.tcp._loop as tcp_loop
from rpcenv import RpcAddress, RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv._base import BaseRpcEnv
from rpcenv._errors import RpcEndpointStoppedError

WAIT = 10.0
CONF = {
    "spark.rpc.backend": "tcp",
    "spark.authenticate.secret": "tcp-lifecycle-secret",
    "spark.rpc.dispatcher.numThreads": "2",
}

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd"
)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return threading.active_count()


def _settles(count: Callable[[], int], target: int) -> int:
    """`count()` once it is back at most at `target`, or after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    value = count()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.02)
        value = count()
    return value


@pytest.fixture(autouse=True)
def _no_secret_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)


class _Injected(RuntimeError):
    pass


def _raise(*args: Any, **kwargs: Any) -> None:
    raise _Injected("injected")


def _start_then_raise(self: tcp_loop.IoLoop) -> None:
    self._thread.start()
    self._started = True
    raise _Injected("injected after the loop's thread started")


class _ThreadingWithoutWatchdog:
    """`threading` as `rpcenv.tcp._env` sees it, whose watchdog thread cannot start."""

    class Thread(threading.Thread):
        def start(self) -> None:
            if self.name.endswith("-tcp-watch"):
                raise _Injected("injected: cannot start the watchdog")
            super().start()

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)


_FAILURES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "base_init": lambda mp: mp.setattr(BaseRpcEnv, "__init__", _raise),
    "after_base_init": lambda mp: mp.setattr(tcp_env, "make_verifier", _raise),
    "gate": lambda mp: mp.setattr(tcp_env, "Gate", _raise),
    "loop_start": lambda mp: mp.setattr(tcp_loop.IoLoop, "start", _raise),
    "after_loop_start": lambda mp: mp.setattr(tcp_loop.IoLoop, "start", _start_then_raise),
    "watchdog_start": lambda mp: mp.setattr(tcp_env, "threading", _ThreadingWithoutWatchdog()),
}


@pytest.mark.parametrize("where", list(_FAILURES))
@pytest.mark.parametrize("client_mode", [False, True], ids=["server", "client"])
def test_a_failed_construction_leaves_no_descriptor_nor_thread(
    where: str, client_mode: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if client_mode and where == "gate":
        pytest.skip("a client-mode env has no listener, hence no Gate")
    fds, threads = _fds(), _threads()
    _FAILURES[where](monkeypatch)
    with pytest.raises(_Injected):
        RpcEnv.create("broken", "127.0.0.1", 0, CONF, client_mode=client_mode)
    monkeypatch.undo()
    assert _settles(_fds, fds) <= fds, "descriptors leaked"
    assert _settles(_threads, threads) <= threads, [t.name for t in threading.enumerate()]
    # And the next env is made and serves as usual.
    env = RpcEnv.create("fine", "127.0.0.1", 0, CONF)
    env.shutdown()


def test_a_dial_completing_as_the_env_shuts_down_leaves_no_descriptor() -> None:
    """A peer answers the handshake only once the env has shut down: the dial must close
    its own socket (before, it was handed to a loop that had ended, and stayed open)."""
    fds = _fds()
    peer = socket.create_server(("127.0.0.1", 0))
    peer.settimeout(WAIT)
    heard, shut_down = threading.Event(), threading.Event()
    accepted: list[socket.socket] = []

    def answer_late() -> None:
        sock, _ = peer.accept()
        accepted.append(sock)
        sock.settimeout(WAIT)
        _recv_record(sock)
        heard.set()
        if shut_down.wait(WAIT):
            sock.sendall(_record(json.dumps({"env_id": "late-peer", "error": ""}).encode()))

    env = RpcEnv.create("dialer", "127.0.0.1", 0, CONF, client_mode=True)
    outcome: list[BaseException | None] = []

    def dial() -> None:
        try:
            env._dial(RpcAddress("127.0.0.1", peer.getsockname()[1]))  # type: ignore[attr-defined]
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    answering = threading.Thread(target=answer_late, daemon=True)
    dialling = threading.Thread(target=dial, daemon=True)
    answering.start()
    dialling.start()
    try:
        assert heard.wait(WAIT)
        env.shutdown()
        shut_down.set()
        dialling.join(WAIT)
        answering.join(WAIT)
        assert not dialling.is_alive() and not answering.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], RpcEndpointStoppedError), outcome
        for sock in accepted:
            sock.close()
        peer.close()
        assert _settles(_fds, fds) <= fds, "the late dial's descriptor leaked"
        assert env._connections == {}  # type: ignore[attr-defined]
    finally:
        shut_down.set()
        for sock in accepted:
            sock.close()
        peer.close()


class _Echo(RpcEndpoint):
    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


@pytest.fixture
def server() -> Iterator[RpcEnv]:
    env = RpcEnv.create("lifecycle", "127.0.0.1", 0, CONF)
    env.setup_endpoint("echo", _Echo())
    yield env
    env.shutdown()


class _FailsOnce:
    """A channel whose first event raises (a bug of ours, as the loop sees it)."""

    interest = tcp_loop.READ

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.events = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_event(self, mask: int) -> None:
        self.events += 1
        if self.events == 1:
            raise _Injected("a turn that fails")
        self.sock.recv(4096)


def test_a_failing_turn_is_logged_once_and_the_loop_serves_on(
    tcp_poller: str, server: RpcEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rpcenv.tcp")
    client = RpcEnv.create("client", "127.0.0.1", 0, CONF, client_mode=True)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    channel = _FailsOnce(ours)
    loop: tcp_loop.IoLoop = server._loop  # type: ignore[attr-defined]
    try:
        echo = client.endpoint_ref(server.address, "echo", timeout=WAIT)
        loop.add(channel)
        theirs.sendall(b"x")
        deadline = time.monotonic() + WAIT
        while channel.events < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert channel.events == 2  # served again on a later turn, its byte read
        for n in range(3):
            answer = echo.ask_sync(wrappers_pb2.StringValue(value=f"after-{n}"), WAIT)
            assert answer == wrappers_pb2.StringValue(value=f"after-{n}")
        failures = [r for r in caplog.records if "failed a turn" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]
        assert failures[0].exc_info is not None and failures[0].exc_info[0] is _Injected
        assert loop._serving is None and loop.held_threads() == 0
    finally:
        loop.remove(channel, ours.close)
        theirs.close()
        client.shutdown()


class _Holding(RpcEndpoint):
    """Handles its sends on the I/O thread, holding it for `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.done = threading.Event()

    def receives_inline(self, message: Message) -> bool:
        return True

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        time.sleep(self.seconds)
        self.done.set()


def test_shutdown_after_a_hand_over_returns_once_every_socket_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shutdown waited only while the loop's first thread lived: once a hand-over had
    ended it, shutdown returned before the thread now running the loop closed anything."""
    env = RpcEnv.create("handed", "127.0.0.1", 0, CONF)
    holding = _Holding(tcp_loop.HANDOFF_SECONDS * 3)
    env.setup_endpoint("holding", holding)
    client = RpcEnv.create("client", "127.0.0.1", 0, CONF, client_mode=True)
    loop: tcp_loop.IoLoop = env._loop  # type: ignore[attr-defined]
    try:
        ref = client.endpoint_ref(env.address, "holding", timeout=WAIT)
        ref.send(wrappers_pb2.StringValue(value="hold"))
        assert holding.done.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while loop._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not loop._thread.is_alive(), "no hand-over happened"
        finish = env._finish_loop  # type: ignore[attr-defined]

        def slow_finish() -> None:
            time.sleep(0.3)  # the loop takes a moment to close what is left
            finish()

        monkeypatch.setattr(env, "_finish_loop", slow_finish)
        listener = env._listener  # type: ignore[attr-defined]
        env.shutdown()
        assert loop._ended.is_set(), "shutdown returned before the loop ended"
        assert listener.fileno() == -1  # closed
    finally:
        client.shutdown()
        env.shutdown()


class _Pipe:
    """A registered socketpair end, as the loop sees a connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.interest = tcp_loop.READ

    def fileno(self) -> int:
        return self.sock.fileno()

    def on_event(self, mask: int) -> None:
        """Not served here: the test polls the poller itself."""


def test_a_poller_change_racing_a_hand_over_leaves_the_channel_registered(
    tcp_poller: str,
) -> None:
    """The held thread may be changing a registration (a reply's partial write) just as
    the thread taking over pauses that channel: both then edited the poller and its
    record of it at once; the record could say "registered" where the poller had
    nothing, and the channel, once resumed, was never polled again."""
    loop = tcp_loop.IoLoop("race", lambda: None)
    ours, theirs = socket.socketpair()
    channel = _Pipe(ours)
    modified, paused = threading.Event(), threading.Event()
    real_modify = loop._poller.modify

    def modify_then_yield(fd: int, mask: int) -> None:
        real_modify(fd, mask)
        if threading.current_thread().name == "held":
            modified.set()
            paused.wait(0.5)  # the thread taking over pauses the channel meanwhile

    try:
        loop._add(channel)
        loop._poller = _ModifyHook(loop._poller, modify_then_yield)
        channel.interest = tcp_loop.READ | tcp_loop.WRITE
        held = threading.Thread(target=loop._apply, args=(channel,), name="held")
        held.start()
        assert modified.wait(WAIT)
        taking_over = threading.Thread(target=loop._pause, args=(channel,), name="taking-over")
        taking_over.start()
        taking_over.join(0.2)
        paused.set()
        held.join(WAIT)
        taking_over.join(WAIT)
        channel.interest = tcp_loop.READ
        loop._resume(channel)  # the held thread's handler returned: the channel is back
        theirs.sendall(b"x")
        ready = dict(loop._poller.poll(1.0))
        assert ready.get(ours.fileno(), 0) & tcp_loop.READ, (ready, loop._registered)
    finally:
        loop._close()
        ours.close()
        theirs.close()


class _ModifyHook:
    """A poller whose `modify` runs `hook` (which calls the real one)."""

    def __init__(self, poller: Any, hook: Callable[[int, int], None]) -> None:
        self._poller = poller
        self.modify = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._poller, name)


class _Gated(RpcEndpoint):
    """Handles its sends on the I/O thread, holding it until `go` is set."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.go = threading.Event()

    def receives_inline(self, message: Message) -> bool:
        return True

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        self.held.set()
        self.go.wait(WAIT)


class _ThreadingThatFailsTwice:
    """`threading` as `rpcenv.tcp._loop` sees it: its next two loop threads cannot start."""

    def __init__(self) -> None:
        self.failures = 0
        shim = self

        class Thread(threading.Thread):
            def start(self) -> None:
                if self.name.endswith("-tcp-io") and shim.failures < 2:
                    shim.failures += 1
                    raise RuntimeError("can't start new thread (injected)")
                super().start()

        self.Thread = Thread

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)


def test_a_hand_over_whose_thread_cannot_start_is_retried(
    server: RpcEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of threads at a hand-over: the error escaped to the watchdog, the loop was
    left to a thread that never ran, and once the held handler returned no peer was
    served again. Now the watchdog retries the start, and says so once."""
    caplog.set_level(logging.INFO, logger="rpcenv.tcp")
    holding = _Gated()
    server.setup_endpoint("holding", holding)
    client = RpcEnv.create("client", "127.0.0.1", 0, CONF, client_mode=True)
    other = RpcEnv.create("other", "127.0.0.1", 0, CONF, client_mode=True)
    shim = _ThreadingThatFailsTwice()
    try:
        ref = client.endpoint_ref(server.address, "holding", timeout=WAIT)
        echo = other.endpoint_ref(server.address, "echo", timeout=WAIT)
        monkeypatch.setattr(tcp_loop, "threading", shim)
        ref.send(wrappers_pb2.StringValue(value="hold"))
        assert holding.held.wait(WAIT)
        answer = echo.ask_sync(wrappers_pb2.StringValue(value="around"), 5.0)
        assert answer == wrappers_pb2.StringValue(value="around")  # while still held
        assert shim.failures == 2
        holding.go.set()
        answer = echo.ask_sync(wrappers_pb2.StringValue(value="after"), 3.0)
        assert answer == wrappers_pb2.StringValue(value="after")
        errors = [r for r in caplog.records if "cannot start a thread" in r.getMessage()]
        assert len(errors) == 1
    finally:
        holding.go.set()
        other.shutdown()
        client.shutdown()
