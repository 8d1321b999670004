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
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["IoLoop"]

log = logging.getLogger(__name__)

T = TypeVar("T")


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
        self.loop = asyncio.new_event_loop()
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


def _log_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, (asyncio.CancelledError, ConnectionError)):
        return
    log.error("I/O loop error: %s", context.get("message"), exc_info=exc)
