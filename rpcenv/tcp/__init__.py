"""The tcp RpcEnv backend: plain sockets and threads, for a driver and its executors.

gRPC's Python runtime costs every message several thread wake-ups (the sending
thread wakes the I/O loop, grpc's poller thread wakes it again on the other
side, and the loop hands off to the dispatcher), which on a 2-core machine is
most of a tiny job's latency. Here a send is one `sendall` on the sending
thread, and each connection has one reader thread that parses whole envelopes
and hands them to the dispatcher (or to an endpoint that `receives_inline`).

Semantics are the RpcEnv's (the conformance suite runs unchanged): one
connection per pair of envs, reused in both directions and keyed by the peer's
advertised address; per-sender order; asks and their deadlines (`BaseRpcEnv`);
connect and disconnect events; the shared-secret (or application credential)
token of the gRPC backend, checked in a handshake; the loopback rule without a
secret. It has no TLS and serves no typed gRPC services: a setting asking for
TLS fails `RpcEnv.create`, and the Master and Workers stay on gRPC (they refuse
tcp: `cluster.launch`); a cluster's driver talks to its Master from a gRPC env
and to its executors from a tcp one (`scheduler.api.driver`). Idle connections
have kernel keepalives, so a vanished peer is noticed as on gRPC.

Wire format: every record is a 4-byte big-endian length and its bytes. The
first record each way is the handshake (JSON: env id, name, advertised host
and port, token; the answer: env id, or the refusal's reason); every later
record is one serialized `Envelope`.

Bounds, so that no peer holds a thread for long and a flood cannot lock out a
peer with the secret: an inbound connection has spark.rpc.io.connectionTimeout
(30 s) in all to send a valid handshake; at most 256 wait for theirs at once,
and a newcomer past that closes the oldest of them that has sent nothing (a
real peer sends its handshake as it connects, so it is not the one closed);
at most spark.sparkctl.rpc.tcp.maxConnections (256) authenticated inbound
connections are open (more are refused, saying so); and a record that has
started must arrive within spark.rpc.io.connectionTimeout of waiting for its
bytes (a watchdog thread closes a connection stalled mid-record). Every refusal
is a warning naming the peer and what was wrong (at most one a second: a flood
must not flood the log).

A sender never blocks: what does not fit the kernel's socket buffer waits in
the connection's backlog for its writer thread (see `_Connection`). A peer that
takes none of it for spark.network.timeout (120 s: its process stopped, its
host hung while its kernel still ACKs) is closed and the backlog dropped, so
that a stopped reader cannot make us hold its replies and blocks forever.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import itertools
import json
import logging
import select
import socket
import struct
import termios
import threading
import time
import uuid
from collections.abc import Iterable

from rpcenv import settings
from rpcenv._address import RpcAddress
from rpcenv._base import BaseRpcEnv, close_peer_connection
from rpcenv._conf import Conf
from rpcenv._errors import (
    RpcAuthenticationError,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpointStoppedError,
    RpcError,
    RpcProtocolError,
)
from rpcenv._security import (
    check_bind_allowed,
    make_app_auth_token,
    make_auth_token,
    make_verifier,
    resolve_app_credential,
    resolve_secret,
    token_app_id,
)
from sparkctl.v1 import rpc_pb2

__all__ = ["TcpRpcEnv", "create_env"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
#: Room for the envelope's own fields above spark.rpc.message.maxSize.
_OVERHEAD = 1 << 20
#: The largest handshake record a peer may send.
_MAX_HELLO = 64 << 10
#: Bytes one recv asks for: a burst of small envelopes arrives in one call.
_READ_CHUNK = 256 << 10
#: Bytes a receive reserves at a time (see `_recv_exact`).
_RECV_PIECE = 4 << 20
#: Inbound connections waiting for their handshake at once (a thread each); a newcomer
#: past it closes the oldest silent one, so a flood of silent connections can use up
#: neither threads nor descriptors, nor keep a real peer out.
_MAX_HANDSHAKES = 256
#: Waiting handshakes examined for one that has sent nothing, oldest first.
_EVICTION_SCAN = 32
#: Seconds between two warnings about refused connections (a flood must not flood the log).
_REFUSAL_LOG_INTERVAL = 1.0
#: accept() errors that mean "try again soon", not "the listener is gone".
_ACCEPT_RETRY = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO}
)

_parse_envelope = rpc_pb2.Envelope.FromString
#: Set on this backend's reader threads: they must never wait for an answer.
_io_thread = threading.local()


class _Connection:
    """One socket with a peer: writes that never block their caller, one reader thread.

    A write goes straight into the kernel's buffer when it fits; what does not (the
    peer's reader is behind) waits in a backlog that a writer thread of the
    connection drains, and later writes queue behind it, in order. So no thread
    ever blocks on a peer: two readers handling inline messages that send to each
    other cannot deadlock on full buffers.
    """

    def __init__(
        self, sock: socket.socket, peer: RpcAddress, peer_id: str, app_id: str, outbound: bool
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.peer_id = peer_id
        self.app_id = app_id
        self.outbound = outbound
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._backlog: collections.deque[bytes | memoryview] = collections.deque()
        self._writer: threading.Thread | None = None
        self.closed = False
        #: Why it was closed, when our side closed it with a reason.
        self.error: RpcError | None = None
        #: While the reader waits for the rest of a started record: (seconds that record
        #: waited before, monotonic time this wait began); read by the stall watchdog.
        self.stall: tuple[float, float] | None = None
        #: While the writer waits for the peer to take any of the backlog: since when
        #: (monotonic); read by the stall watchdog (a peer that stopped reading).
        self.write_stall: float | None = None
        #: The watchdog's last look at the kernel's unacknowledged bytes, and when they
        #: last went down (a slow reader takes bytes long before our send returns).
        self.unacked: int | None = None
        self.acked_at = 0.0

    def write(self, data: bytes) -> None:
        """Send one record, or queue it behind those waiting (any thread).

        Raises:
            OSError: the connection broke or was closed.
        """
        record = _HEADER.pack(len(data)) + data
        with self.lock:
            if self.closed:
                raise OSError("connection closed")
            if self._backlog:
                self._backlog.append(record)
                return
            try:
                sent = self.sock.send(record, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            if sent == len(record):
                return
            self._backlog.append(memoryview(record)[sent:])
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._drain, name=f"tcp-write-{self.peer}", daemon=True
                )
                self._writer.start()
            else:
                self._wake.notify()

    def _drain(self) -> None:
        """Write the backlog with blocking sends, off every caller's thread."""
        while True:
            with self.lock:
                while not self._backlog and not self.closed:
                    self._wake.wait()
                if self.closed:
                    return
                chunk = self._backlog[0]
            # One send, not sendall: it returns once the peer has taken some bytes, so
            # the watchdog sees progress (or its absence) on the way through a chunk.
            self.write_stall = time.monotonic()
            try:
                sent = self.sock.send(chunk)
            except OSError:
                self.close()
                return
            finally:
                self.write_stall = None
            with self.lock:
                if self.closed or not self._backlog:
                    return  # closed meanwhile (the backlog was dropped)
                if sent >= len(chunk):
                    self._backlog.popleft()
                else:
                    self._backlog[0] = memoryview(chunk)[sent:]

    def close(self, error: RpcError | None = None) -> None:
        """Shut the socket down: the reader thread sees the end and reports it."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            if error is not None:
                self.error = error
            self._backlog.clear()
            self._wake.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def _acked_since(connection: _Connection, now: float) -> float:
    """When the peer last took bytes of ours, as the kernel's send queue says (Linux's
    TIOCOUTQ: bytes not yet acknowledged); 0.0 where it cannot be read.

    A blocked send returns only once about a third of the send buffer is free, which
    takes a slow but reading peer far longer than its first byte taken.
    """
    try:
        queued = struct.unpack(
            "i", fcntl.ioctl(connection.sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        )[0]
    except (OSError, AttributeError, ValueError):
        return 0.0
    if connection.unacked is not None and queued < connection.unacked:
        connection.acked_at = now
    connection.unacked = queued
    return connection.acked_at


def _send_record(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int, deadline: float | None = None) -> bytes:
    """`size` bytes from a blocking socket, all of them by `deadline` (monotonic) if given.

    Memory is taken as the bytes arrive, a piece at a time: a peer that announces a
    large record and sends little of it costs little (a few such connections with a
    preallocated buffer each could exhaust the process's memory).

    Raises:
        EOFError: the peer closed it first.
        TimeoutError: the deadline passed.
    """
    pieces: list[bytes] = []
    missing = size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
        piece = sock.recv(min(missing, _RECV_PIECE))
        if not piece:
            raise EOFError("connection closed")
        pieces.append(piece)
        missing -= len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _recv_record(sock: socket.socket, limit: int, deadline: float | None = None) -> bytes:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if size > limit:
        raise RpcProtocolError(f"a record of {size} bytes exceeds the limit of {limit}")
    return _recv_exact(sock, size, deadline)


def _parse_hello(data: bytes) -> tuple[str, str, int, str | None]:
    """(env id, host, port, token) of an inbound handshake.

    Raises:
        ValueError: naming what is wrong with it.
    """
    try:
        hello = json.loads(data)
    except RecursionError:  # "[[[[...": json recurses per level
        raise ValueError("a handshake nested too deeply") from None
    except ValueError:
        raise ValueError("a handshake that is not JSON (not a sparkctl tcp peer?)") from None
    if not isinstance(hello, dict):
        raise ValueError("a handshake that is not a JSON object")
    env_id, host, port, token = (hello.get(k) for k in ("env_id", "host", "port", "token"))
    # Both reach log lines: printable, without spaces (no forged lines).
    if not isinstance(env_id, str) or not _plain(env_id, 256):
        raise ValueError("a handshake without a valid env_id")
    if not isinstance(host, str) or not _plain(host, 1024):
        raise ValueError("a handshake without a valid host")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError("a handshake without a valid port")
    if token is not None and not isinstance(token, str):
        raise ValueError("a handshake whose token is not a string")
    return env_id, host, port, token or None


class TcpRpcEnv(BaseRpcEnv):
    """An RpcEnv on plain TCP sockets, a reader thread per connection."""

    #: Each connection's reader thread delivers its peer's messages (`_read`).
    delivers_on_peer_threads = True

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        conf: Conf,
        client_mode: bool,
        advertise_host: str | None = None,
    ) -> None:
        """Bind `host` (unless `client_mode`); peers are told `advertise_host`, else `host`.

        Raises:
            RpcConfigError: TLS is asked for, or an unsafe bind.
            OSError: the port cannot be bound.
        """
        if conf.get(settings.SSL_ENABLED):
            raise RpcConfigError(
                "the tcp RpcEnv backend has no TLS (spark.ssl.rpc.enabled): use "
                "spark.rpc.backend=grpc"
            )
        advertise = advertise_host or host
        self._secret = resolve_secret(conf)
        self._app_credential = resolve_app_credential() if self._secret is None else None
        env_id = uuid.uuid4().hex
        self._listener: socket.socket | None = None
        if client_mode:
            address = RpcAddress(advertise, 0, env_id)
        else:
            key = self._app_credential[1] if self._app_credential is not None else None
            check_bind_allowed(host, self._secret or key, conf)
            listener = socket.create_server((host, port), family=_family(host), backlog=128)
            self._listener = listener
            address = RpcAddress(advertise, listener.getsockname()[1])
        super().__init__(name, address, conf)
        self.env_id = env_id
        self._verifier = make_verifier(self._secret, self._app_credential)
        self._limit = self._max_message_bytes + _OVERHEAD
        #: Seconds a dial and its handshake may take; and an inbound connection's time,
        #: in all, to send its handshake (one that says nothing, or trickles bytes, is
        #: closed then), as gRPC's server_handshake_timeout_ms is.
        self._handshake_seconds = min(conf.get(settings.CONNECTION_TIMEOUT), self._ask_timeout)
        self._connections: dict[RpcAddress, _Connection] = {}
        self._connections_lock = threading.Lock()
        #: One lock per address being dialled: a slow peer holds up no other dial.
        self._dial_locks: dict[RpcAddress, threading.Lock] = {}
        #: Seconds a started record may wait, in all, for the rest of its bytes.
        self._record_seconds = conf.get(settings.CONNECTION_TIMEOUT)
        #: Seconds a peer may take none of what we send before its connection is closed.
        self._write_seconds = conf.get(settings.NETWORK_TIMEOUT)
        self._max_inbound = conf.get(settings.TCP_MAX_CONNECTIONS)
        #: Idle seconds before a connection's peer is probed (see `_keep_alive`).
        self._keepalive_seconds = conf.get(settings.KEEPALIVE_INTERVAL)
        #: Authenticated inbound connections open (under `_connections_lock`).
        self._inbound = 0
        #: Every connection with a reader, replaced ones too (under `_connections_lock`).
        self._live: set[_Connection] = set()
        self._watchdog: threading.Thread | None = None
        #: Inbound sockets waiting for their handshake, oldest first, with their peer.
        self._waiting: dict[socket.socket, str] = {}
        self._waiting_lock = threading.Lock()
        self._refusal_lock = threading.Lock()
        self._next_refusal_log = 0.0
        self._unlogged_refusals = 0
        if self._listener is not None:
            threading.Thread(
                target=self._accept_loop, name=f"{name}-tcp-accept", daemon=True
            ).start()

    # -- public ------------------------------------------------------------------

    def accept_app_credentials(self, app_id: str = "") -> None:
        """Let callers in with an application's credential (see the gRPC backend's)."""
        if self._listener is not None and self._verifier is not None:
            self._verifier.accept_app_tokens = True
            self._verifier.only_app = app_id

    def disconnect(self, address: RpcAddress, reason: str = "") -> bool:
        """Close the connection with `address`; both sides hear of it."""
        return close_peer_connection(
            self._address, self._connections, self._connections_lock, address, reason
        )

    # -- outbound ----------------------------------------------------------------

    def _transmit(self, address: RpcAddress, envelope: rpc_pb2.Envelope) -> None:
        data = envelope.SerializeToString()
        for _ in range(2):
            connection = self._connections.get(address)
            if connection is None:
                if address.is_client:
                    raise RpcConnectionError(
                        f"client {address} is not connected to {self._address}"
                    )
                connection = self._dial(address)
            try:
                connection.write(data)
                return
            except OSError:
                connection.close()
                with self._connections_lock:  # broken: forget it and dial again
                    if self._connections.get(address) is connection:
                        del self._connections[address]
                if address.is_client:
                    break
        raise RpcConnectionError(f"cannot deliver to {address}: the connection keeps closing")

    def _dial(self, address: RpcAddress) -> _Connection:
        with self._connections_lock:
            lock = self._dial_locks.setdefault(address, threading.Lock())
        with lock:
            existing = self._connections.get(address)
            if existing is not None and not existing.closed:
                return existing
            if self._stopped.is_set():
                raise RpcEndpointStoppedError(f"RpcEnv {self._name!r} is stopped")
            timeout = self._handshake_seconds
            try:
                sock = socket.create_connection((address.host, address.port), timeout=timeout)
            except OSError as exc:
                raise RpcConnectionError(f"cannot connect to {address}: {exc}") from None
            try:
                peer_id = self._client_handshake(sock, address)
            except BaseException:
                sock.close()
                raise
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keep_alive(sock, self._keepalive_seconds)
            connection = _Connection(sock, address, peer_id, "", True)
            with self._connections_lock:
                self._connections[address] = connection
                self._live.add(connection)
                self._dial_locks.pop(address, None)  # later dials find the connection
                stopped = self._stopped.is_set()
        if stopped:  # shut down while we dialled: `_close_transport` did not see it
            connection.close()
        self._start_watchdog()
        self._start_reader(connection)
        return connection

    def _client_handshake(self, sock: socket.socket, address: RpcAddress) -> str:
        """Present ourselves (and our token); the peer's env id.

        Raises:
            RpcAuthenticationError: the peer refused our credentials.
            RpcConnectionError: the peer closed or spoke no handshake.
        """
        token = ""
        if self._secret is not None:
            token = make_auth_token(self._secret, self.env_id)
        elif self._app_credential is not None:
            app_id, credential = self._app_credential
            token = make_app_auth_token(credential, app_id, self.env_id)
        hello = {
            "env_id": self.env_id,
            "name": self._name,
            "host": self._address.host,
            "port": self._address.port,
            "token": token,
        }
        try:
            _send_record(sock, json.dumps(hello).encode())
            answer = json.loads(_recv_record(sock, _MAX_HELLO))
        except (OSError, EOFError, ValueError, RecursionError, RpcProtocolError) as exc:
            raise RpcConnectionError(f"connection to {address} failed: {exc}") from None
        if not isinstance(answer, dict):
            raise RpcConnectionError(f"connection to {address} failed: a malformed handshake")
        refusal = answer.get("error")
        if refusal and answer.get("busy"):
            raise RpcConnectionError(f"{address} refused the connection: {refusal}")
        if refusal:
            raise RpcAuthenticationError(f"{address} refused the connection: {refusal}")
        return str(answer.get("env_id", ""))

    # -- inbound -----------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopped.is_set():
            try:
                sock, where = listener.accept()
            except OSError as exc:
                if self._stopped.is_set() or exc.errno not in _ACCEPT_RETRY:
                    return  # closed by shutdown
                # Out of descriptors (a flood of connections?): keep serving once they go.
                self._log_refusal(None, f"cannot accept connections for now: {exc}")
                time.sleep(0.1)
                continue
            peer = _describe_peer(where)
            self._admit(sock, peer)
            try:
                threading.Thread(
                    target=self._serve,
                    args=(sock, peer),
                    name=f"{self._name}-tcp-in",
                    daemon=True,
                ).start()
            except RuntimeError as exc:  # can't start new thread
                self._stop_waiting(sock)
                self._log_refusal(peer, f"closed: {exc}")
                _close_quietly(sock)

    def _admit(self, sock: socket.socket, peer: str) -> None:
        """Count `sock` among those waiting for a handshake, making room if they are full.

        The one closed to make room is the oldest that has sent nothing: a real peer
        sends its handshake as it connects, so a flood of silent connections cannot
        keep it out (closing the newcomer instead did, for up to the handshake timeout).
        """
        victim: socket.socket | None = None
        with self._waiting_lock:
            if len(self._waiting) >= _MAX_HANDSHAKES:
                victim = _oldest_silent(list(itertools.islice(self._waiting, _EVICTION_SCAN)))
                victim_peer = self._waiting.pop(victim)
            self._waiting[sock] = peer
        if victim is not None:
            # Its thread sees the end of the stream and leaves; the descriptor is closed there.
            with contextlib.suppress(OSError):
                victim.shutdown(socket.SHUT_RDWR)
            self._log_refusal(
                victim_peer,
                f"closed without a handshake: {_MAX_HANDSHAKES} connections were waiting for "
                "theirs and a new one came",
            )

    def _stop_waiting(self, sock: socket.socket) -> None:
        with self._waiting_lock:
            self._waiting.pop(sock, None)

    def _log_refusal(self, peer: str | None, reason: str) -> None:
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

    def _serve(self, sock: socket.socket, where: str) -> None:
        """Check an inbound connection's handshake, then read it on this thread."""
        try:
            connection = self._handshake(sock, where)
        except Exception:  # a bug on our side: say so, and end only this connection
            log.exception("handshake with %s failed", where)
            connection = None
        finally:
            self._stop_waiting(sock)
        if connection is None:
            _close_quietly(sock)
            return
        self._read(connection)

    def _handshake(self, sock: socket.socket, where: str) -> _Connection | None:
        """The connection, once its peer proved itself; None when refused (and logged)."""
        deadline = time.monotonic() + self._handshake_seconds
        try:
            try:
                hello = _recv_record(sock, _MAX_HELLO, deadline)
            finally:
                self._stop_waiting(sock)  # it has spoken: no longer one to make room with
            env_id, host, port, token = _parse_hello(hello)
        except TimeoutError:
            self._log_refusal(where, "no handshake in time (not a sparkctl tcp peer?)")
            return None
        except (OSError, EOFError):
            return None  # it went away: nothing to report
        except (ValueError, RpcProtocolError) as exc:
            self._log_refusal(where, f"a bad handshake (not a sparkctl tcp peer?): {exc}")
            return None
        refusal = self._verifier.verify(token, env_id) if self._verifier is not None else None
        if refusal is None and self._stopped.is_set():
            refusal = f"RpcEnv {self._name!r} is stopping"
        busy = False
        if refusal is None:
            with self._connections_lock:
                if self._inbound >= self._max_inbound:
                    busy = True
                    refusal = (
                        f"{self._inbound} connections are open, the most "
                        f"spark.sparkctl.rpc.tcp.maxConnections allows"
                    )
                else:
                    self._inbound += 1  # given back when its reader ends
        answer = {"env_id": self.env_id, "error": refusal or "", "busy": busy}
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            _send_record(sock, json.dumps(answer).encode())
        except OSError:
            if refusal is None:
                with self._connections_lock:
                    self._inbound -= 1
                return None  # it went away: nothing to report
        if refusal is not None:
            self._log_refusal(where, refusal)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return None
        app_id = token_app_id(token)
        peer = RpcAddress(host, port, env_id if port == 0 else "")
        if app_id and not peer.is_client:
            # As on gRPC: a caller with an application's credential may not claim a
            # listening address (what we send there must not go over its stream).
            peer = RpcAddress(host, 0, env_id)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keep_alive(sock, self._keepalive_seconds)
        connection = _Connection(sock, peer, env_id, app_id, False)
        with self._connections_lock:
            self._connections[peer] = connection
            self._live.add(connection)
            stopped = self._stopped.is_set()
        self._start_watchdog()
        if stopped:  # shut down meanwhile: `_close_transport` did not see it
            connection.close()
        return connection

    def _start_watchdog(self) -> None:
        with self._connections_lock:
            if self._watchdog is not None:
                return
            self._watchdog = threading.Thread(
                target=self._watch_stalls, name=f"{self._name}-tcp-stalls", daemon=True
            )
        self._watchdog.start()

    def _watch_stalls(self) -> None:
        """Close connections whose started record has waited too long for its bytes,
        and those whose peer has taken none of our backlog for spark.network.timeout.

        Only time spent waiting on the socket counts (not our own handling of what
        came before), so a busy reader never condemns its peer; a slow reader taking
        any bytes at all resets its wait.
        """
        limit = self._record_seconds
        write_limit = self._write_seconds
        while not self._stopped.wait(min(1.0, limit / 4, write_limit / 4)):
            now = time.monotonic()
            with self._connections_lock:
                live = list(self._live)
            for connection in live:
                waiting = connection.write_stall
                if waiting is not None:
                    waiting = max(waiting, _acked_since(connection, now))
                if waiting is not None and now - waiting > write_limit:
                    reason = (
                        f"it has taken none of what we send for {now - waiting:.1f}s "
                        f"(spark.network.timeout={write_limit:g}s): stopped reading"
                    )
                    log.warning("closing the connection with %s: %s", connection.peer, reason)
                    connection.close(RpcConnectionError(f"{connection.peer}: {reason}"))
                    continue
                stall = connection.stall
                if stall is None or stall[0] + now - stall[1] <= limit:
                    continue
                reason = (
                    f"a message it started has waited {stall[0] + now - stall[1]:.1f}s for the "
                    f"rest of its bytes (spark.rpc.io.connectionTimeout={limit:g}s)"
                )
                log.warning("closing the connection with %s: %s", connection.peer, reason)
                connection.close(RpcProtocolError(f"{connection.peer} stalled: {reason}"))

    def _start_reader(self, connection: _Connection) -> None:
        threading.Thread(
            target=self._read, args=(connection,), name=f"{self._name}-tcp-read", daemon=True
        ).start()

    def _read(self, connection: _Connection) -> None:
        """Deliver what the peer sends, in order, until the connection ends."""
        _io_thread.active = True
        self._peer_connected(connection.peer)
        error: RpcError | None = None
        sock = connection.sock
        limit = self._limit
        pending = bytearray()
        waited = 0.0  # seconds the record begun in `pending` has waited for its bytes
        try:
            while True:
                if pending:
                    since = time.monotonic()
                    connection.stall = (waited, since)
                    chunk = sock.recv(_READ_CHUNK)
                    connection.stall = None
                    waited += time.monotonic() - since
                else:
                    chunk = sock.recv(_READ_CHUNK)
                if not chunk:
                    break
                if pending:
                    pending += chunk
                    data: bytes | bytearray = pending
                else:
                    data = chunk
                envelopes, used, wanted = _parse(data, limit)
                if wanted:  # one large envelope: read the rest of it in one go
                    connection.stall = (0.0 if used else waited, time.monotonic())
                    rest = _recv_exact(sock, wanted)
                    connection.stall = None
                    try:
                        envelopes.append(_parse_envelope(bytes(data[used + _HEADER.size :]) + rest))
                    except Exception as exc:  # DecodeError
                        raise RpcProtocolError(f"a malformed message: {exc}") from None
                    used = len(data)
                pending = bytearray(data[used:]) if used < len(data) else bytearray()
                if used or not pending:
                    waited = 0.0  # what is left, if anything, is a record begun now
                if envelopes:
                    self._deliver(connection, envelopes)
        except RpcProtocolError as exc:
            log.warning("closing the connection with %s: %s", connection.peer, exc)
            error = exc
        except (OSError, EOFError):
            pass  # the peer or our side closed it
        except Exception:  # a bug on our side: say so, and end only this connection
            log.exception("handling data from %s failed", connection.peer)
        finally:
            connection.close()
            with contextlib.suppress(OSError):
                sock.close()
            with self._connections_lock:
                if self._connections.get(connection.peer) is connection:
                    del self._connections[connection.peer]
                self._live.discard(connection)
                if not connection.outbound:
                    self._inbound -= 1
            self._peer_disconnected(connection.peer, connection.error or error)

    def _deliver(self, connection: _Connection, envelopes: Iterable[rpc_pb2.Envelope]) -> None:
        # Posts are held and released once per read: a burst costs one hand-off.
        self._receive_envelopes(
            connection.peer,
            envelopes,
            peer_id=connection.peer_id,
            hold=True,
            app_id=connection.app_id,
        )
        self._dispatcher.release()

    def _check_may_block(self, what: str) -> None:
        if getattr(_io_thread, "active", False):
            raise RuntimeError(
                f"{what} called on a tcp RpcEnv reader thread (from an ask future's callback "
                "or an inline handler?): it would deadlock; use ask() and add_done_callback"
            )

    def _close_transport(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._connections_lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close()


def _plain(text: str, limit: int) -> bool:
    """Non-empty, at most `limit` characters, printable and without whitespace."""
    return 0 < len(text) <= limit and text.isprintable() and not any(c.isspace() for c in text)


#: Unanswered keepalive probes, this many seconds apart, after which a peer is gone.
_PROBES, _PROBE_SECONDS = 2, 5


def _keep_alive(sock: socket.socket, idle: float) -> None:
    """Have the kernel probe an idle peer, as gRPC pings an idle stream.

    A peer whose host vanished or whose link was cut sends no FIN: without probes its
    connection stayed open for hours, and neither side heard of the loss (a driver
    kept a dead executor's tasks until its heartbeat timeout). With them an idle
    connection ends about `idle` + 10 seconds after its peer went silent. No bound on
    unacknowledged data (TCP_USER_TIMEOUT): Linux applies it to a full receive window
    too, and a reader busy with a large message is not a dead peer. Options a
    platform lacks are skipped.
    """
    seconds = max(1, int(idle))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", seconds),
        ("TCP_KEEPINTVL", _PROBE_SECONDS),
        ("TCP_KEEPCNT", _PROBES),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _family(host: str) -> socket.AddressFamily:
    """The address family to listen with on `host`: IPv6 for an IPv6 address or name.

    `socket.create_server` takes IPv4 unless told, and failed on an IPv6 address (a
    driver reaching its Master over IPv6 binds one), where the gRPC backend listens.
    """
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return socket.AF_INET  # create_server says what is wrong with the name
    families = {info[0] for info in found}
    return socket.AF_INET if socket.AF_INET in families else socket.AF_INET6


def _describe_peer(where: object) -> str:
    """`host:port` of an accepted socket's peer, for log lines."""
    if isinstance(where, tuple) and len(where) >= 2:
        host = f"[{where[0]}]" if ":" in str(where[0]) else str(where[0])
        return f"{host}:{where[1]}"
    return str(where)


def _oldest_silent(candidates: list[socket.socket]) -> socket.socket:
    """The first of `candidates` with nothing to read (nor an end), else the first."""
    poller = select.poll()
    for sock in candidates:
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile
            poller.register(sock, select.POLLIN)
    ready = {fd for fd, _ in poller.poll(0)}
    for sock in candidates:
        with contextlib.suppress(OSError, ValueError):
            if sock.fileno() not in ready:
                return sock
    return candidates[0]


def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def _parse(data: bytes | bytearray, limit: int) -> tuple[list[rpc_pb2.Envelope], int, int]:
    """The whole envelopes at the start of `data`, the bytes they used, and how many
    more bytes the next one needs when it is larger than what one read brings (else 0).

    Raises:
        RpcProtocolError: a record over `limit` or one that does not parse.
    """
    envelopes: list[rpc_pb2.Envelope] = []
    view = memoryview(data)
    end = len(data)
    pos = 0
    header = _HEADER.size
    try:
        while end - pos >= header:
            (size,) = _HEADER.unpack_from(view, pos)
            if size > limit:
                raise RpcProtocolError(f"a message of {size} bytes exceeds the limit of {limit}")
            if end - pos - header < size:
                missing = size - (end - pos - header)
                return envelopes, pos, missing if size > _READ_CHUNK else 0
            envelopes.append(_parse_envelope(bytes(view[pos + header : pos + header + size])))
            pos += header + size
    except RpcProtocolError:
        raise
    except Exception as exc:  # DecodeError
        raise RpcProtocolError(f"a malformed message: {exc}") from None
    return envelopes, pos, 0


def create_env(
    name: str,
    host: str,
    port: int,
    conf: Conf,
    client_mode: bool,
    advertise_host: str | None = None,
) -> TcpRpcEnv:
    """Backend factory for `spark.rpc.backend=tcp`."""
    return TcpRpcEnv(name, host, port, conf, client_mode, advertise_host=advertise_host)
