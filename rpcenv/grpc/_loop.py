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

A hub coalesces its wake-ups. Every message a peer sends costs the loop a
turn (an epoll wake, grpc's completion hand-off, a hand-off to the dispatcher),
and at 2,000 heartbeats a second, one arriving every 500 µs, those turns cost
four times what the messages do. So once the process holds `COALESCE_FROM`
streams and its recent turns came faster than one per `COALESCE_WINDOW`, a
turn first waits out the window, and then takes everything that arrived
meanwhile in one go. A hub that is large but quiet (idle streams, an
occasional ask) still answers at once; a busy hub adds at most the window to
a message's latency. Processes with few
peers (a driver and its executors trading asks) never wait: their latency is
worth more than their CPU.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
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

__all__ = ["COALESCE_FROM", "COALESCE_WINDOW", "IoLoop"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a busy loop lets events gather before its next turn, in seconds.
COALESCE_WINDOW = 0.002
#: Open streams from which the process counts as a hub and coalesces its turns.
COALESCE_FROM = 128
#: Turns a hub looks back over to tell a stream of wake-ups from an occasional one.
_BUSY_TURNS = 16


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
        self._selector = _CoalescingSelector(self)
        self.loop = _Loop(self._selector)
        self._pending: collections.deque[tuple[Callable[..., object], tuple[object, ...]]] = (
            collections.deque()
        )
        self._pending_lock = threading.Lock()
        self._wake_scheduled = False
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

    def add_reader(  # type: ignore[override]  # the wrapped reader takes no arguments
        self, fd: Any, callback: Callable[..., object], *args: Any
    ) -> None:
        if _is_grpc_poller_reader(callback) and isinstance(fd, socket.socket):
            callback = _draining(fd, callback)
            self.grpc_drained = True
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
    """The default selector, made to let events gather for a window on a busy hub."""

    def __init__(self, io: IoLoop) -> None:
        super().__init__()
        self._io = io
        #: Monotonic times of the last `_BUSY_TURNS` polls that returned events.
        self._turns: collections.deque[float] = collections.deque(maxlen=_BUSY_TURNS)

    def _busy(self) -> bool:
        """Turns came faster than one per window (with slack, so coalesced turns stay busy).

        A hub that is merely large (idle streams, an occasional ask) is not busy: it
        answers at once, and only a stream of wake-ups is made to wait for company.
        """
        turns = self._turns
        if len(turns) < _BUSY_TURNS:
            return False
        return turns[-1] - turns[0] < _BUSY_TURNS * COALESCE_WINDOW * 1.5

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if (timeout is None or timeout > 0) and self._io.coalescing and self._busy():
            wait = self._turns[-1] + COALESCE_WINDOW - time.monotonic()
            if wait > 0:
                if timeout is not None:
                    wait = min(wait, timeout)
                    timeout -= wait
                time.sleep(wait)
        events: list[tuple[selectors.SelectorKey, int]] = super().select(timeout)
        if events:
            self._turns.append(time.monotonic())
        return events


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, (asyncio.CancelledError, ConnectionError)):
        return
    log.error("I/O loop error: %s", context.get("message"), exc_info=exc)
