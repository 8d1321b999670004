"""One authenticated connection with a peer: writes that never block, reads on the loop.

A write goes straight into the kernel's buffer when it fits, on the sender's own
thread; what does not (the peer's reader is behind) waits in a backlog that the
I/O loop drains when the socket is writable, and later writes queue behind it,
in order. So no thread ever blocks on a peer: two endpoints handling inline
messages that send to each other cannot deadlock on full buffers. Reads happen
on the loop only; the connection turns them into envelopes and hands them to its
owner. It never closes its descriptor itself: its owner does, once the loop has
let it go (`Owner.connection_ended`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from rpcenv._address import RpcAddress
from rpcenv._errors import RpcError, RpcProtocolError
from rpcenv.tcp._loop import READ, WRITE, IoLoop
from rpcenv.tcp._sockets import unacked_bytes
from rpcenv.tcp._wire import HEADER, FrameReader
from sparkctl.v1 import rpc_pb2

__all__ = ["Connection", "Owner"]

log = logging.getLogger(__name__)

#: Records one writable event sends at once (a backlog of small ones in one syscall).
_GATHER = 64
_EVENT_ERRORS = select.POLLERR | select.POLLHUP


class Owner(Protocol):
    """What a connection reports to (its env)."""

    def deliver(self, connection: Connection, envelopes: Sequence[rpc_pb2.Envelope]) -> None:
        """Envelopes arrived, in order (on a loop thread)."""
        ...

    def connection_ended(self, connection: Connection, error: RpcError | None) -> None:
        """It is closed and no longer served (on a loop thread): forget it."""
        ...


class Connection:
    """One socket with a peer, served by the env's I/O loop."""

    def __init__(
        self,
        sock: socket.socket,
        peer: RpcAddress,
        peer_id: str,
        app_id: str,
        outbound: bool,
        loop: IoLoop,
        owner: Owner,
        limit: int,
    ) -> None:
        self.sock = sock
        self._fd = sock.fileno()
        self.peer = peer
        self.peer_id = peer_id
        self.app_id = app_id
        self.outbound = outbound
        self._loop = loop
        self._owner = owner
        self.lock = threading.Lock()
        self._backlog: collections.deque[bytes | memoryview] = collections.deque()
        self.interest = READ
        self.closed = False
        self._ended = False
        #: Why it was closed, when our side closed it with a reason.
        self.error: RpcError | None = None
        self.reader = FrameReader(limit)
        #: Since when (monotonic) the peer has taken none of our backlog; None while
        #: there is none. The watchdog also counts acknowledged bytes (`acked_since`).
        self.write_waiting: float | None = None
        self._unacked: int | None = None
        self._acked_at = 0.0

    def __repr__(self) -> str:
        return f"connection with {self.peer}"

    def fileno(self) -> int:
        return self._fd

    # -- any thread ------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send one record, or queue it behind those waiting (any thread; never blocks).

        Raises:
            OSError: the connection broke or was closed.
        """
        record = HEADER.pack(len(data)) + data
        with self.lock:
            if self.closed:
                raise OSError("connection closed")
            if self._backlog:
                self._backlog.append(record)
                return
            try:
                sent = self.sock.send(record)
            except BlockingIOError:
                sent = 0
            if sent == len(record):
                return
            self._backlog.append(memoryview(record)[sent:])
            self.write_waiting = time.monotonic()
            self.interest = READ | WRITE
        self._loop.update(self)

    def close(self, error: RpcError | None = None) -> None:
        """Shut the socket down: the loop sees the end and reports it."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if error is not None:
                self.error = error
            self._backlog.clear()
            self.write_waiting = None
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def acked_since(self, now: float) -> float:
        """When the peer last took bytes of ours, as the kernel's send queue says; 0.0
        where it cannot be read (called by the watchdog only).

        The socket turns writable again only once much of its buffer is free, which
        takes a slow but reading peer far longer than its first byte taken.
        """
        queued = unacked_bytes(self.sock)
        if queued is None:
            return 0.0
        # Nothing unacknowledged: the peer took all the kernel had; what waits is ours
        # to write (the loop was held), not the peer's to read.
        if queued == 0 or (self._unacked is not None and queued < self._unacked):
            self._acked_at = now
        self._unacked = queued
        return self._acked_at

    def backlog_bytes(self) -> int:
        """Bytes waiting for the peer to take them."""
        with self.lock:
            return sum(len(chunk) for chunk in self._backlog)

    # -- loop thread -----------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        try:
            if mask & WRITE:
                self._flush()
            if mask & (READ | _EVENT_ERRORS) and not self._ended:
                self._read()
        except Exception:  # a bug on our side: say so, and end only this connection
            log.exception("serving the connection with %s failed", self.peer)
            self.end(None)

    def _flush(self) -> None:
        """Send what the backlog holds, as much as the socket takes now."""
        with self.lock:
            backlog = self._backlog
            while backlog:
                chunks = [backlog[i] for i in range(min(len(backlog), _GATHER))]
                try:
                    if len(chunks) > 1:
                        sent = self.sock.sendmsg(chunks)
                    else:
                        sent = self.sock.send(chunks[0])
                except BlockingIOError:
                    break
                except OSError:
                    backlog.clear()
                    break  # broken: the read side sees the end
                if sent:
                    self.write_waiting = time.monotonic()
                while sent and backlog:
                    head = backlog[0]
                    if sent >= len(head):
                        sent -= len(head)
                        backlog.popleft()
                    else:
                        backlog[0] = memoryview(head)[sent:]
                        sent = 0
                if backlog:
                    break  # the socket took what it could
            if backlog and not self.closed:
                return
            self.interest = READ
            self.write_waiting = None
        self._loop.update(self)

    def _read(self) -> None:
        reader = self.reader
        try:
            chunk = self.sock.recv(reader.want())
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.end(None)
            return
        if not chunk:
            self.end(None)
            return
        try:
            envelopes = reader.feed(chunk)
        except RpcProtocolError as exc:
            log.warning("closing the connection with %s: %s", self.peer, exc)
            self.end(exc)
            return
        if envelopes:
            self._owner.deliver(self, envelopes)
        reader.mark_waiting()

    def end(self, error: RpcError | None) -> None:
        """It is over (the peer left, or we closed it): let the loop and the owner go."""
        if self._ended:
            return
        self._ended = True
        self.close()
        self._loop.remove(self, self._close_socket)
        self._owner.connection_ended(self, self.error or error)

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
