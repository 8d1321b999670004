"""The one I/O thread of the gRPC backend: an asyncio event loop that owns every stream.

Every gRPC object of every gRPC env in the process (aio servers, aio channels,
their calls) is made and used on this loop only; other threads reach it through
`submit` and `call_soon`. A stream is a pair of coroutines, so connections cost
memory, never a thread. Code that may block (endpoint code, public handlers)
must never run here: the dispatcher's pool and the server's handler pool take it.

One loop per process, not per env: grpc.aio hands every completion to whichever
loop polls first, which forwards it to the owner's loop; a loop closed while
gRPC still had an event for it made that hand-off raise ("Event loop is closed")
for the envs still running. The shared loop lives as long as the process (a
forked child makes its own).

A hub coalesces its wake-ups, but only a flood of them. Every message a peer
sends costs the loop a turn (an epoll wake, grpc's completion hand-off, a
hand-off to the dispatcher), and at 2,000 heartbeats a second, one arriving
every 500 µs, those turns cost four times what the messages do. So once the
process holds `COALESCE_FROM` streams and its recent turns came faster than one
per `COALESCE_WINDOW`, a turn woken by grpc completions alone first lets the
window run out (since the previous turn), then takes everything that arrived
meanwhile in one go. A turn never waits when it continues work the loop is
doing:

- callbacks are ready (asyncio then polls without blocking);
- another thread woke the loop (a reply from the dispatcher's pool, a send): the
  self-pipe is readable, or becomes readable during the wait, which ends it;
- the loop wrote to a stream within `CONVERSATION_HORIZON` or a few turns: the
  completion is likely that write's, or the peer's answer to it (an ask's reply,
  the next of back-to-back asks).

So a master taking one-way heartbeats coalesces, while an ask to it pays at
most one window (its arrival); a hub that is large but quiet, or busy with
conversations, answers at once. Processes with few peers (a driver and its
executors trading asks) never wait.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fcntl
import functools
import logging
import os
import selectors
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["COALESCE_FROM", "COALESCE_WINDOW", "CONVERSATION_HORIZON", "IoLoop"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a busy loop lets events gather before its next turn, in seconds.
COALESCE_WINDOW = 0.002
#: Open streams from which the process counts as a hub and coalesces its turns.
COALESCE_FROM = 128
#: Turns a hub looks back over to tell a stream of wake-ups from an occasional one.
_BUSY_TURNS = 16
#: How long, and for how many turns, after the loop wrote to a stream its wake-ups
#: count as that exchange's continuation (a write completion, the peer's answer),
#: which never waits. Turns as well as time: on a loaded machine the peer's answer
#: may come later than the horizon, but still within a few turns.
CONVERSATION_HORIZON = 0.005
_CONVERSATION_TURNS = 4


_shared: IoLoop | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


class IoLoop:
    """An event loop running on a daemon thread of its own."""

    @staticmethod
    def shared() -> IoLoop:
        """The process's I/O loop, started on first use (again in a forked child)."""
        global _shared, _shared_pid
        pid = os.getpid()
        loop = _shared
        if loop is not None and _shared_pid == pid:
            return loop
        with _shared_lock:
            if _shared is None or _shared_pid != pid:
                _shared = IoLoop("grpc")
                _shared_pid = pid
            return _shared

    def __init__(self, name: str) -> None:
        #: Streams open on this loop (all envs of the process); written on the loop only.
        self.streams = 0
        #: Envs of the process closing their streams now: a shutdown is a chain of many
        #: turns, each of which would wait out the window (loop thread only).
        self.closing = 0
        #: Monotonic time and turn at which the loop last wrote to a stream (`wrote`).
        self.wrote_at = 0.0
        self.wrote_turn = -_CONVERSATION_TURNS
        self._selector = _CoalescingSelector(self)
        self.loop = _Loop(self._selector)
        self._pending: collections.deque[tuple[Callable[..., object], tuple[object, ...]]] = (
            collections.deque()
        )
        self._pending_lock = threading.Lock()
        self._wake_scheduled = False
        #: Made at the first large frame (`offload`).
        self._decoder: concurrent.futures.ThreadPoolExecutor | None = None
        self.loop.set_exception_handler(_log_loop_error)
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=f"rpc-io-{name}", daemon=True
        )
        self._thread.start()
        started.wait()
        #: The loop thread's id, to tell "already on the loop" cheaply.
        self.thread_id = self._thread.ident

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(started.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            finally:
                self.loop.close()

    @property
    def coalescing(self) -> bool:
        """True while turns are coalesced (a hub, with grpc's wake-ups drained in bulk)."""
        return self.streams >= COALESCE_FROM and not self.closing and self.loop.grpc_drained

    def wrote(self) -> None:
        """Note a write to a stream (on the loop): the exchange it starts is not delayed."""
        self.wrote_at = time.monotonic()
        self.wrote_turn = self._selector.turns

    def in_loop(self) -> bool:
        """True on the loop's own thread."""
        return threading.get_ident() == self.thread_id

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Run `callback(*args)` on the loop, from any thread, in the order of the calls.

        Calls from other threads are queued and run by one wake-up of the loop:
        `call_soon_threadsafe` writes to the loop's self-pipe and, on a loaded
        machine, cost ~160 µs a call; a burst of sends to many peers pays it once.
        """
        if threading.get_ident() == self.thread_id:
            self.loop.call_soon(callback, *args)
            return
        with self._pending_lock:
            self._pending.append((callback, args))
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._run_pending)
        except RuntimeError:  # the loop is closed (interpreter exit): nothing runs now
            with self._pending_lock:
                self._wake_scheduled = False
            raise

    def _run_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, collections.deque()
            self._wake_scheduled = False
        for callback, args in pending:
            try:
                callback(*args)
            except Exception as exc:  # one bad callback must not starve the rest
                self.loop.call_exception_handler(
                    {"message": f"exception in callback {callback!r}", "exception": exc}
                )

    def offload(
        self,
        work: Callable[[bytes], T],
        data: bytes,
        then: Callable[[concurrent.futures.Future[T]], object],
    ) -> None:
        """Run `work(data)` on the decoder thread, then `then(future)` on the loop.

        One thread, so works finish, and their `then`s run, in the order given. A
        large frame is parsed there: its copies would otherwise stall every stream.
        """
        if self._decoder is None:
            self._decoder = concurrent.futures.ThreadPoolExecutor(1, "rpc-decode")
        future = self._decoder.submit(work, data)
        future.add_done_callback(lambda done: self.call_soon(then, done))

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coro` on the loop; its result as a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the loop and wait for its result (never call this on the loop).

        Raises:
            TimeoutError: it took longer than `timeout` seconds (it is cancelled).
        """
        if self.in_loop():
            coro.close()
            raise RuntimeError("IoLoop.run called on the loop's own thread")
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the I/O loop did not finish within {timeout:g}s") from None


class _Loop(asyncio.SelectorEventLoop):
    """The I/O loop: drains grpc.aio's wake-up socket in bulk, so turns may be coalesced.

    grpc.aio's poller thread writes one byte to a socket per completion and its
    reader takes one byte per turn (draining all queued completions each time).
    A turn that waits out the coalescing window leaves many bytes behind; taken
    one per turn, they would fill the socket until the poller thread blocks in
    `write` and completions back up for seconds. So that reader first takes all
    but one pending byte.
    """

    #: True once grpc's poller reader was found and wrapped (coalescing is safe).
    grpc_drained = False

    def __init__(self, selector: _CoalescingSelector) -> None:
        super().__init__(selector)
        self._coalescer = selector

    def add_reader(  # type: ignore[override]  # the wrapped reader takes no arguments
        self, fd: Any, callback: Callable[..., object], *args: Any
    ) -> None:
        if _is_grpc_poller_reader(callback) and isinstance(fd, socket.socket):
            callback = _draining(fd, callback)
            self.grpc_drained = True
            self._coalescer.grpc_fds.add(fd.fileno())  # before it is registered below
        super().add_reader(fd, callback, *args)


def _is_grpc_poller_reader(callback: Callable[..., object]) -> bool:
    # grpcio binds it as functools.partial(PollerCompletionQueue._handle_events, loop).
    method = callback.func if isinstance(callback, functools.partial) else callback
    owner = getattr(method, "__self__", None)
    return (
        getattr(method, "__name__", "") == "_handle_events"
        and type(owner).__name__ == "PollerCompletionQueue"
    )


def _draining(sock: socket.socket, handle_events: Callable[..., object]) -> Callable[[], None]:
    fd = sock.fileno()
    size = struct.Struct("i")

    def on_readable() -> None:
        try:
            (pending,) = size.unpack(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * size.size))
            if pending > 1:
                # Bytes come after their events are queued: the reader drains every queued
                # event, so each byte taken here stands for an event it handles.
                sock.recv(pending - 1)
        except OSError:
            pass
        handle_events()  # takes the last byte (never blocking: one is left) and the events

    return on_readable


class _CoalescingSelector(selectors.DefaultSelector):
    """The default selector, made to let grpc completions gather for a window on a busy hub.

    Every fd but grpc's poller socket is also watched by a second selector, so a
    coalescing wait ends as soon as anything else is ready (the loop's self-pipe:
    another thread has work for it).
    """

    def __init__(self, io: IoLoop) -> None:
        super().__init__()
        self._io = io
        #: grpc.aio's poller sockets (fds): their wake-ups alone may be delayed.
        self.grpc_fds: set[int] = set()
        self._others = selectors.DefaultSelector()
        #: Monotonic times of the last `_BUSY_TURNS` polls that returned events.
        self._turns: collections.deque[float] = collections.deque(maxlen=_BUSY_TURNS)
        #: Turns that waited for company, those whose wait another fd ended early, and
        #: all turns: what tests and benchmarks count.
        self.waits = 0
        self.cut_short = 0
        self.turns = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        if key.fd not in self.grpc_fds:
            self._others.register(fileobj, events)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self.grpc_fds.discard(key.fd)
        with contextlib.suppress(KeyError):  # grpc's poller socket is not watched there
            self._others.unregister(fileobj)
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().modify(fileobj, events, data)
        if key.fd not in self.grpc_fds:
            self._others.modify(fileobj, events)
        return key

    def close(self) -> None:
        self._others.close()
        super().close()

    def _busy(self) -> bool:
        """Turns came faster than one per window (with slack, so coalesced turns stay busy).

        A hub that is merely large (idle streams, an occasional ask) is not busy: it
        answers at once, and only a stream of wake-ups is made to wait for company.
        """
        turns = self._turns
        if len(turns) < _BUSY_TURNS:
            return False
        return turns[-1] - turns[0] < _BUSY_TURNS * COALESCE_WINDOW * 1.5

    def _may_wait(self, events: list[tuple[selectors.SelectorKey, int]], now: float) -> bool:
        """Only grpc completions woke the loop, on a busy hub, and no exchange is under way."""
        io = self._io
        if (
            not io.coalescing
            or self.turns - io.wrote_turn <= _CONVERSATION_TURNS
            or now - io.wrote_at < CONVERSATION_HORIZON
            or not self._busy()
        ):
            return False
        grpc_fds = self.grpc_fds
        return all(key.fd in grpc_fds for key, _ in events)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        if not events:
            return events
        now = time.monotonic()
        if (timeout is None or timeout > 0) and self._may_wait(events, now):
            wait = self._turns[-1] + COALESCE_WINDOW - now
            if timeout is not None:
                wait = min(wait, timeout)
            if wait > 0:
                self.waits += 1
                # Ends early when anything but grpc is ready, and then takes that too; else
                # grpc's socket, still readable, stands for all it queued meanwhile.
                if self._others.select(wait):
                    self.cut_short += 1
                    events = super().select(0)
                now = time.monotonic()
        self.turns += 1
        self._turns.append(now)
        return events


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, (asyncio.CancelledError, ConnectionError)):
        return
    log.error("I/O loop error: %s", context.get("message"), exc_info=exc)
