"""The I/O loop: one thread serves every socket of a tcp RpcEnv.

Channels (the listening socket, connections in their handshake, established
ones) are registered here; the loop thread polls them all (epoll where there is
one) and calls `on_event` of each ready one. The poller is changed on the loop
thread only: another thread asks with `call_soon`, which wakes the loop through
a pipe. So the number of threads does not grow with the number of peers.

A handler that holds the loop (an endpoint's inline handler waiting for a lock,
a future's callback, a dial) would hold up every peer. The env's watchdog calls
`check_held` several times a second: once the loop has served one channel for
`HANDOFF_SECONDS`, that channel is paused (its later bytes wait in the kernel,
so its order holds) and a new thread takes the loop over; the held thread, once
its handler returns, gives the channel back and ends. At most `MAX_HELD` threads
are held at once: past that the loop waits, as a single thread would, and says so.
This module knows nothing of records or envelopes.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["HANDOFF_SECONDS", "MAX_HELD", "READ", "WRITE", "Channel", "IoLoop", "on_io_thread"]

log = logging.getLogger(__name__)

READ = select.POLLIN
WRITE = select.POLLOUT
#: Seconds one channel's event may hold the loop before another thread takes it over.
HANDOFF_SECONDS = 0.2
#: Threads that may be held by slow handlers at once (the loop's own thread aside).
MAX_HELD = 4

#: Set on the loop's threads: they must never wait for an answer (see `on_io_thread`).
_io_thread = threading.local()


def on_io_thread() -> bool:
    """True on a thread of an I/O loop (where waiting for a peer would deadlock)."""
    return getattr(_io_thread, "active", False)


class Channel(Protocol):
    """A socket the loop serves."""

    #: The events it wants now (READ, WRITE); read by the loop when asked to `update`.
    interest: int

    def fileno(self) -> int:
        """Its descriptor (fixed while it is registered)."""
        ...

    def on_event(self, mask: int) -> None:
        """Serve a ready event (on a loop thread); never raises."""
        ...


class _Poller(Protocol):
    def register(self, fd: int, mask: int) -> None: ...
    def modify(self, fd: int, mask: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def poll(self, timeout: float | None) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


class _PollPoller:
    """`select.poll` with epoll's signature, where there is no epoll (seconds, close)."""

    def __init__(self) -> None:
        self._poll = select.poll()

    def register(self, fd: int, mask: int) -> None:
        self._poll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        self._poll.modify(fd, mask)

    def unregister(self, fd: int) -> None:
        self._poll.unregister(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._poll.poll(None if timeout is None or timeout < 0 else timeout * 1000)

    def close(self) -> None:
        """Nothing to close."""


def _make_poller() -> _Poller:
    if hasattr(select, "epoll"):
        return select.epoll()
    return _PollPoller()


class IoLoop:
    """The poller, its thread, and the hand-over of a held thread's work."""

    def __init__(self, name: str, on_turn: Callable[[], None]) -> None:
        """`on_turn` runs after each round of events (the dispatcher's release)."""
        self._name = name
        self._on_turn = on_turn
        self._poller = _make_poller()
        try:
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            self._poller.close()
            raise
        try:
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._poller.register(self._wake_r, READ)
        except BaseException:
            self._close()
            raise
        self._channels: dict[int, Channel] = {}
        #: What each registered descriptor is registered for (loop thread only).
        self._registered: dict[int, int] = {}
        self._paused: set[Channel] = set()
        self._requests: collections.deque[Callable[[], None]] = collections.deque()
        self._woken = False
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_ids = itertools.count()
        self._lock = threading.Lock()
        #: The running loop's token and thread; the channel it serves and since when.
        self._leader: object = object()
        self._leader_ident: int | None = None
        self._serving: Channel | None = None
        self._serving_since = 0.0
        self._held = 0
        self._held_warned = 0.0
        #: A hand-over's token whose thread could not start (out of threads): retried.
        self._unstarted: object | None = None
        self._exit = False
        self._ended = threading.Event()
        self._wake_lock = threading.Lock()
        #: Held while the poller and `_registered` change: a thread being deposed may be
        #: changing a registration (it passed `on_leader` just before) as the thread
        #: taking over pauses the same channel; unserialized, `_registered` could say
        #: registered where the poller had nothing, and the channel was never polled again.
        self._registry_lock = threading.Lock()
        self._started = False
        self._thread = threading.Thread(
            target=self._run, args=(self._leader,), name=f"{name}-tcp-io", daemon=True
        )

    def start(self) -> None:
        """Start the loop's thread."""
        self._thread.start()
        self._started = True

    def abandon(self, timeout: float) -> None:
        """Undo a loop its env failed to finish making: end its thread, close its descriptors.

        Its channels' descriptors are the caller's to close.
        """
        if self._started:
            self.stop(lambda: None, timeout)
        elif not self._ended.is_set():
            self._close()

    # -- any thread ----------------------------------------------------------------

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop thread, soon (in the order asked)."""
        self._requests.append(callback)
        if not self._woken:
            self._woken = True
            with self._wake_lock:
                if self._ended.is_set():
                    return  # the loop ended: nothing will run it
                with contextlib.suppress(OSError):  # full: it is awake anyway
                    os.write(self._wake_w, b"\0")

    def on_leader(self) -> bool:
        """True on the thread running the loop now (where the poller may be changed)."""
        return self._leader_ident == threading.get_ident()

    def add(self, channel: Channel) -> None:
        """Serve `channel` (it is registered with its `interest`)."""
        self._soon(lambda: self._add(channel))

    def update(self, channel: Channel) -> None:
        """`channel.interest` changed: register it for what it wants now."""
        if self.on_leader():
            self._apply(channel)
        else:
            self.call_soon(lambda: self._apply(channel))

    def remove(self, channel: Channel, close: Callable[[], None]) -> None:
        """Stop serving `channel`, then run `close` (which closes its descriptor)."""
        self._soon(lambda: self._remove(channel, close))

    def replace(self, old: Channel, new: Channel) -> None:
        """Serve `new` in place of `old`, on the same descriptor."""
        self._soon(lambda: self._replace(old, new))

    def stop(self, finish: Callable[[], None], timeout: float) -> None:
        """Run `finish` on the loop thread (it closes what is left), then end the loop.

        Waits up to `timeout` for the loop to end, unless called on a loop thread. (Not
        on the first thread being alive: after a hand-over another thread runs the loop,
        and shutdown returned before it had closed anything.)
        """

        def last() -> None:
            try:
                finish()
            finally:
                self._exit = True

        self.call_soon(last)
        if not on_io_thread() and self._started:
            self._ended.wait(timeout)

    def check_held(self, now: float, describe: Callable[[Channel], str]) -> None:
        """Hand the loop to a new thread if one channel's event has held it too long.

        Called by the env's watchdog. The held thread keeps its channel (paused, so
        that nothing of it is read meanwhile) until its handler returns.
        """
        unstarted = self._unstarted
        if unstarted is not None:  # nobody runs the loop: try again to start its thread
            self._start_leader(unstarted)
            return
        with self._lock:
            channel = self._serving
            if channel is None or self._exit or now - self._serving_since < HANDOFF_SECONDS:
                return
            if self._held >= MAX_HELD:
                if now - self._held_warned < 10.0:
                    return
                self._held_warned = now
                capped = True
            else:
                capped = False
                self._held += 1
                token = object()
                self._leader = token
                self._leader_ident = None
                self._serving = None
                self._requests.appendleft(lambda: self._pause(channel))
                held_for = now - self._serving_since
        if capped:
            log.warning(
                "the tcp I/O loop of %r waits: %d threads are held by slow handlers "
                "(the most it hands over); %s is being served",
                self._name,
                MAX_HELD,
                describe(channel),
            )
            return
        log.info(
            "a handler held the tcp I/O thread of %r for %.2fs (serving %s): another thread "
            "serves the other peers meanwhile",
            self._name,
            held_for,
            describe(channel),
        )
        self._start_leader(token)

    def _start_leader(self, token: object) -> None:
        """Start the thread that takes the loop over with `token`.

        If none can start (the process is out of threads), the loop has no thread until
        one can: each later `check_held` tries again. Before, the error escaped to the
        watchdog, and once the held handler returned nobody served any peer again.
        """
        try:
            threading.Thread(
                target=self._run, args=(token,), name=f"{self._name}-tcp-io", daemon=True
            ).start()
        except RuntimeError as exc:
            if self._unstarted is None:
                log.error(
                    "the tcp I/O loop of %r cannot start a thread to hand over to (%s): "
                    "no peer is served until one starts",
                    self._name,
                    exc,
                )
            self._unstarted = token
            return
        self._unstarted = None

    def held_threads(self) -> int:
        """Threads a slow handler holds now (each ends once its handler returns)."""
        return self._held

    # -- loop thread -----------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop thread after `delay` seconds (from a loop thread)."""
        entry = (time.monotonic() + delay, next(self._timer_ids), callback)
        self._soon(lambda: heapq.heappush(self._timers, entry))

    def _soon(self, callback: Callable[[], None]) -> None:
        if self.on_leader():
            callback()
        else:
            self.call_soon(callback)

    def _add(self, channel: Channel) -> None:
        self._channels[channel.fileno()] = channel
        self._apply(channel)

    def _replace(self, old: Channel, new: Channel) -> None:
        fd = new.fileno()
        if self._channels.get(fd) is old:
            self._channels[fd] = new
            self._paused.discard(old)
            self._apply(new)

    def _remove(self, channel: Channel, close: Callable[[], None]) -> None:
        try:
            fd = channel.fileno()
            with self._registry_lock:
                if self._channels.get(fd) is channel:
                    del self._channels[fd]
                    if self._registered.pop(fd, None) is not None:
                        self._poller.unregister(fd)
        except (OSError, ValueError):
            pass  # closed already
        finally:
            self._paused.discard(channel)
            close()

    def _pause(self, channel: Channel) -> None:
        self._paused.add(channel)
        self._apply(channel)

    def _resume(self, channel: Channel) -> None:
        self._paused.discard(channel)
        self._apply(channel)

    def _apply(self, channel: Channel) -> None:
        """Register `channel` for what it wants now (nothing while paused or removed)."""
        try:
            fd = channel.fileno()
        except (OSError, ValueError):
            return
        with self._registry_lock:
            if fd < 0 or self._channels.get(fd) is not channel:
                return
            wanted = 0 if channel in self._paused else channel.interest
            current = self._registered.get(fd)
            if wanted == (current or 0):
                return
            try:
                if not wanted:
                    del self._registered[fd]
                    self._poller.unregister(fd)
                elif current is None:
                    self._poller.register(fd, wanted)
                    self._registered[fd] = wanted
                else:
                    self._poller.modify(fd, wanted)
                    self._registered[fd] = wanted
            except (OSError, ValueError) as exc:  # closed meanwhile: its end is on the way
                log.debug("poller change for %r failed: %s", channel, exc)

    def _run_requests(self) -> None:
        self._woken = False
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        requests = self._requests
        while requests:
            try:
                callback = requests.popleft()
            except IndexError:
                break
            try:
                callback()
            except Exception:
                log.exception("a request to the tcp I/O loop of %r failed", self._name)

    def _run_timers(self) -> float | None:
        """Run the timers that are due; seconds until the next (None: none left)."""
        timers = self._timers
        while timers:
            now = time.monotonic()
            due, _, callback = timers[0]
            if due > now:
                return due - now
            heapq.heappop(timers)
            try:
                callback()
            except Exception:
                log.exception("a timer of the tcp I/O loop of %r failed", self._name)
        return None

    def _run(self, token: object) -> None:
        _io_thread.active = True
        with self._lock:
            if self._leader is not token:
                return
            self._leader_ident = threading.get_ident()
        poll = self._poller.poll
        channels = self._channels
        wake = self._wake_r
        lock = self._lock
        monotonic = time.monotonic
        try:
            self._run_requests()
            while not self._exit:
                channel: Channel | None = None
                try:
                    timeout = self._run_timers() if self._timers else None
                    events = poll(-1 if timeout is None else timeout)
                    for fd, mask in events:
                        if fd == wake:
                            self._run_requests()
                            if self._exit:
                                return
                            continue
                        channel = channels.get(fd)
                        if channel is None or channel in self._paused:
                            continue
                        self._serving_since = monotonic()
                        self._serving = channel
                        channel.on_event(mask)
                        with lock:
                            if self._leader is token:
                                self._serving = None
                                continue
                        self._handed_over(channel)
                        return
                    self._on_turn()
                except Exception:  # a bug on our side: say so, and keep serving the others
                    log.exception("the tcp I/O loop of %r failed a turn", self._name)
                    with lock:
                        deposed = self._leader is not token
                        if not deposed:
                            self._serving = None
                    if deposed:  # handed over meanwhile: give the channel back, and end
                        if channel is not None:
                            self._handed_over(channel)
                        return
                    time.sleep(0.01)  # no hot spin if it fails every turn
        finally:
            if self._exit and self._leader is token:
                self._close()

    def _handed_over(self, channel: Channel) -> None:
        """This thread was held serving `channel`: give it back to the loop, and end."""
        self._on_turn()
        self.call_soon(lambda: self._resume(channel))
        with self._lock:
            self._held -= 1

    def _close(self) -> None:
        self._leader_ident = None
        with self._wake_lock:
            self._ended.set()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._poller.close()
