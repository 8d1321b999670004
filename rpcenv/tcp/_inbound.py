"""Inbound connections until their handshake is judged: accepting, reading, bounding.

The listening socket and every accepted socket that has not yet presented a
valid handshake are channels of the I/O loop: waiting costs a descriptor, never
a thread. Bounds, so that a flood cannot lock out a peer with the secret: an
inbound connection has spark.rpc.io.connectionTimeout in all to send its
handshake (one that says nothing, or trickles bytes, is closed then, as gRPC's
server_handshake_timeout_ms is); at most `_MAX_HANDSHAKES` wait at once, and a
newcomer past that closes the oldest of them that has sent nothing (a real peer
sends its handshake as it connects, so it is not the one closed). Every refusal
is a warning naming the peer and what was wrong, at most one a second (a flood
must not flood the log). Judging a complete handshake is the env's (`Judge`).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable

from rpcenv.tcp._loop import READ, IoLoop
from rpcenv.tcp._sockets import describe_peer, readable_bytes
from rpcenv.tcp._wire import HEADER, MAX_HELLO, frame

__all__ = ["Gate", "Greeting"]

log = logging.getLogger(__name__)

#: Inbound connections waiting for their handshake at once; a newcomer past it closes
#: the oldest silent one, so a flood of silent connections can neither use up
#: descriptors nor keep a real peer out. Read at each accept.
_MAX_HANDSHAKES = 256
#: Waiting handshakes examined for one that has sent nothing, oldest first.
_EVICTION_SCAN = 32
#: Seconds between two warnings about refused connections.
_REFUSAL_LOG_INTERVAL = 1.0
#: accept() errors that mean "try again soon", not "the listener is gone".
_ACCEPT_RETRY = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO}
)
#: Seconds accepting pauses after such an error (the loop serves everyone else meanwhile).
_ACCEPT_PAUSE = 0.1
#: Connections one readable event of the listener accepts before the loop turns.
_ACCEPTS_PER_EVENT = 64


class Greeting:
    """An accepted socket reading its peer's handshake record, without blocking."""

    def __init__(self, sock: socket.socket, where: str, gate: Gate) -> None:
        self.sock = sock
        self._fd = sock.fileno()
        self.where = where
        self._gate = gate
        self.interest = READ
        self.accepted_at = time.monotonic()
        #: Whether it has sent anything (a silent one is the first closed to make room).
        self.heard = False
        #: Closed by the watchdog for want of a handshake (already logged).
        self.expired = False
        self._buffer = bytearray()
        self._need = HEADER.size

    def __repr__(self) -> str:
        return f"handshake with {self.where}"

    def fileno(self) -> int:
        return self._fd

    def on_event(self, mask: int) -> None:
        try:
            self._read()
        except Exception:  # a bug on our side: say so, and end only this connection
            log.exception("handshake with %s failed", self.where)
            self._gate.drop(self)

    def _read(self) -> None:
        try:
            data = self.sock.recv(self._need - len(self._buffer))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # it went away (or the watchdog closed it): nothing more to report
            self._gate.drop(self)
            return
        self.heard = True
        self._buffer += data
        if len(self._buffer) < self._need:
            return
        if self._need == HEADER.size:
            (size,) = HEADER.unpack(self._buffer)
            if size > MAX_HELLO:
                self._gate.refuse(
                    self,
                    "a bad handshake (not a sparkctl tcp peer?): a record of "
                    f"{size} bytes exceeds the limit of {MAX_HELLO}",
                )
                return
            self._need += size
            if size:
                return
        self._gate.judge(self, bytes(self._buffer[HEADER.size :]))


#: What the env does with a complete handshake: refuse it or take the socket over.
Judge = Callable[[Greeting, bytes], None]


class Gate:
    """The listening socket (a channel of the loop) and the handshakes it waits for."""

    def __init__(
        self,
        name: str,
        listener: socket.socket,
        loop: IoLoop,
        judge: Judge,
        handshake_seconds: float,
    ) -> None:
        self._name = name
        self.listener = listener
        self._fd = listener.fileno()
        self._loop = loop
        self.judge = judge
        self._handshake_seconds = handshake_seconds
        self.interest = READ
        #: Greetings waiting for their handshake, oldest first.
        self._waiting: dict[Greeting, None] = {}
        self._lock = threading.Lock()
        self._refusal_lock = threading.Lock()
        self._next_refusal_log = 0.0
        self._unlogged_refusals = 0
        self._closed = False
        listener.setblocking(False)

    def __repr__(self) -> str:
        return f"listener of {self._name!r}"

    def fileno(self) -> int:
        return self._fd

    def waiting(self) -> int:
        """Connections waiting for their handshake now."""
        return len(self._waiting)

    # -- loop thread -----------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        """Accept what is queued (a bounded number per turn)."""
        for _ in range(_ACCEPTS_PER_EVENT):
            try:
                sock, where = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if self._closed or exc.errno not in _ACCEPT_RETRY:
                    return  # closed by shutdown
                # Out of descriptors (a flood of connections?): keep serving once they go.
                self.log_refusal(None, f"cannot accept connections for now: {exc}")
                self.interest = 0
                self._loop.update(self)
                self._loop.call_later(_ACCEPT_PAUSE, self._resume)
                return
            try:
                sock.setblocking(False)
            except OSError:
                _close_quietly(sock)
                continue
            self._admit(Greeting(sock, describe_peer(where), self))

    def _resume(self) -> None:
        if not self._closed:
            self.interest = READ
            self._loop.update(self)

    def _admit(self, greeting: Greeting) -> None:
        """Count `greeting` among those waiting, making room if they are full.

        The one closed to make room is the oldest that has sent nothing: closing the
        newcomer instead kept a real peer out, for up to the handshake timeout.
        """
        victim: Greeting | None = None
        with self._lock:
            if len(self._waiting) >= _MAX_HANDSHAKES:
                victim = _oldest_silent(list(itertools.islice(self._waiting, _EVICTION_SCAN)))
                del self._waiting[victim]
            self._waiting[greeting] = None
        self._loop.add(greeting)
        if victim is not None:
            self._loop.remove(victim, lambda: _close_quietly(victim.sock))
            self.log_refusal(
                victim.where,
                f"closed without a handshake: {_MAX_HANDSHAKES} connections were waiting for "
                "theirs and a new one came",
            )

    def stop_waiting(self, greeting: Greeting) -> bool:
        """It is judged (or gone): no longer waiting. False if it was not waiting."""
        with self._lock:
            return self._waiting.pop(greeting, False) is None

    def drop(self, greeting: Greeting) -> None:
        """Close `greeting` without a word (it went away, or was reported already)."""
        self.stop_waiting(greeting)
        self._loop.remove(greeting, lambda: _close_quietly(greeting.sock))

    def refuse(self, greeting: Greeting, reason: str, answer: bytes | None = None) -> None:
        """Send `answer` if any, close `greeting`, and warn naming `reason`."""
        self.stop_waiting(greeting)
        if answer is not None:
            with contextlib.suppress(OSError):
                greeting.sock.send(frame(answer))
        self.log_refusal(greeting.where, reason)
        with contextlib.suppress(OSError):
            greeting.sock.shutdown(socket.SHUT_RDWR)
        self._loop.remove(greeting, lambda: _close_quietly(greeting.sock))

    def close(self) -> None:
        """Close the listener and every waiting handshake (loop thread, at shutdown)."""
        self._closed = True
        with self._lock:
            waiting, self._waiting = list(self._waiting), {}
        for greeting in waiting:
            self._loop.remove(greeting, lambda g=greeting: _close_quietly(g.sock))  # type: ignore[misc]
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self._loop.remove(self, lambda: _close_quietly(self.listener))

    # -- watchdog --------------------------------------------------------------------

    def expire_overdue(self, now: float) -> None:
        """Close the handshakes that have waited past spark.rpc.io.connectionTimeout."""
        limit = self._handshake_seconds
        with self._lock:
            overdue = [g for g in self._waiting if now - g.accepted_at > limit and not g.expired]
        for greeting in overdue:
            if readable_bytes(greeting.sock):
                continue  # its bytes wait for the loop (held?): the delay is ours
            greeting.expired = True
            self.log_refusal(greeting.where, "no handshake in time (not a sparkctl tcp peer?)")
            # The loop sees the end of the stream and lets it go.
            with contextlib.suppress(OSError):
                greeting.sock.shutdown(socket.SHUT_RDWR)

    # -- any thread ------------------------------------------------------------------

    def log_refusal(self, peer: str | None, reason: str) -> None:
        """Warn about a refused connection (`peer`), or a failed accept, at most once a second."""
        now = time.monotonic()
        with self._refusal_lock:
            if now < self._next_refusal_log:
                self._unlogged_refusals += 1
                return
            unlogged, self._unlogged_refusals = self._unlogged_refusals, 0
            self._next_refusal_log = now + _REFUSAL_LOG_INTERVAL
        more = f" ({unlogged} more refused since the last report)" if unlogged else ""
        if peer is None:
            log.warning("RpcEnv %r %s%s", self._name, reason, more)
        else:
            log.warning(
                "RpcEnv %r refused a connection from %s: %s%s", self._name, peer, reason, more
            )


def _oldest_silent(candidates: list[Greeting]) -> Greeting:
    """The first of `candidates` that has sent nothing (nor has bytes waiting), else
    the first."""
    for greeting in candidates:
        if not greeting.heard and not readable_bytes(greeting.sock):
            return greeting
    return candidates[0]


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
