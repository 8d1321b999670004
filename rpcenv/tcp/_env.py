"""`TcpRpcEnv`: connections by peer address, dialling, judging handshakes, the watchdog.

The transport's moving parts live apart: the I/O loop (`_loop`), one connection
(`_connection`), accepting and reading handshakes (`_inbound`), the wire format
(`_wire`). This module ties them to `BaseRpcEnv`: which connection reaches which
address, who may connect, and what a stalled peer costs. Its threads are fixed:
the loop's, the watchdog's (`_watch`), and while a handler holds the loop for
long, a few more (`IoLoop.check_held`); none per peer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Sequence

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
from rpcenv.tcp._connection import Connection
from rpcenv.tcp._inbound import Gate, Greeting
from rpcenv.tcp._loop import IoLoop, on_io_thread
from rpcenv.tcp._sockets import family_for, prepare, readable_bytes
from rpcenv.tcp._wire import MAX_HELLO, OVERHEAD, parse_hello, recv_record, send_record
from sparkctl.v1 import rpc_pb2

__all__ = ["TcpRpcEnv", "create_env"]

log = logging.getLogger(__name__)

#: Seconds between two looks of the watchdog for a held loop (see `IoLoop.check_held`).
_HELD_CHECK = 0.05
#: Seconds `shutdown` waits for the loop to close every socket.
_STOP_WAIT = 5.0


class TcpRpcEnv(BaseRpcEnv):
    """An RpcEnv on plain TCP sockets, all served by one I/O loop."""

    #: Each peer's messages are delivered in order on the I/O loop's thread; a handler
    #: that holds it past `HANDOFF_SECONDS` holds up only its own peer after that.
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
        # All or nothing: a failure past this point closes what was made (the listener,
        # the loop's descriptors and thread, the base's threads), then is raised.
        try:
            if client_mode:
                address = RpcAddress(advertise, 0, env_id)
            else:
                key = self._app_credential[1] if self._app_credential is not None else None
                check_bind_allowed(host, self._secret or key, conf)
                listener = socket.create_server((host, port), family=family_for(host), backlog=128)
                self._listener = listener
                address = RpcAddress(advertise, listener.getsockname()[1])
            super().__init__(name, address, conf)
            self.env_id = env_id
            self._verifier = make_verifier(self._secret, self._app_credential)
            self._limit = self._max_message_bytes + OVERHEAD
            #: Seconds a dial and its handshake may take; and an inbound connection's time,
            #: in all, to send its handshake.
            self._handshake_seconds = min(conf.get(settings.CONNECTION_TIMEOUT), self._ask_timeout)
            self._connections: dict[RpcAddress, Connection] = {}
            self._connections_lock = threading.Lock()
            #: One lock per address being dialled: a slow peer holds up no other dial.
            self._dial_locks: dict[RpcAddress, threading.Lock] = {}
            #: Seconds a started record may wait, in all, for the rest of its bytes.
            self._record_seconds = conf.get(settings.CONNECTION_TIMEOUT)
            #: Seconds a peer may take none of what we send before its connection is closed.
            self._write_seconds = conf.get(settings.NETWORK_TIMEOUT)
            self._max_inbound = conf.get(settings.TCP_MAX_CONNECTIONS)
            #: Idle seconds before a connection's peer is probed (see `keep_alive`).
            self._keepalive_seconds = conf.get(settings.KEEPALIVE_INTERVAL)
            #: Authenticated inbound connections open (under `_connections_lock`).
            self._inbound = 0
            #: Every connection the loop serves, replaced ones too (under `_connections_lock`).
            self._live: set[Connection] = set()
            self._loop = IoLoop(name, self._dispatcher.release)
            self._gate: Gate | None = None
            if self._listener is not None:
                self._gate = Gate(
                    name, self._listener, self._loop, self._judge, self._handshake_seconds
                )
                self._loop.add(self._gate)
            self._loop.start()
            self._watchdog = threading.Thread(
                target=self._watch, name=f"{name}-tcp-watch", daemon=True
            )
            self._watchdog.start()
        except BaseException:
            self._undo_init()
            raise

    def _undo_init(self) -> None:
        """Close what a failed `__init__` made, so that nothing of it leaks."""
        stopped: threading.Event | None = getattr(self, "_stopped", None)
        if stopped is not None:
            stopped.set()  # the watchdog, if it started, ends
        loop: IoLoop | None = getattr(self, "_loop", None)
        if loop is not None:
            loop.abandon(_STOP_WAIT)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        dispatcher = getattr(self, "_dispatcher", None)
        if dispatcher is not None:
            dispatcher.close(timeout=1.0)
        deadlines = getattr(self, "_deadlines", None)
        if deadlines is not None:
            deadlines.stop()

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

    def _dial(self, address: RpcAddress) -> Connection:
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
                prepare(sock, self._keepalive_seconds)
            except BaseException:
                sock.close()
                raise
            connection = Connection(sock, address, peer_id, "", True, self._loop, self, self._limit)
            with self._connections_lock:
                # Checked under the lock `_finish_loop` reads `_live` with: either shutdown
                # sees this connection and closes it, or this dial sees it stopped.
                stopped = self._stopped.is_set()
                if not stopped:
                    self._connections[address] = connection
                    self._live.add(connection)
                self._dial_locks.pop(address, None)  # later dials find the connection
        if stopped:  # shut down while we dialled: the loop may be gone, so close it here
            with contextlib.suppress(OSError):
                sock.close()
            raise RpcEndpointStoppedError(f"RpcEnv {self._name!r} is stopped")
        # Connected before anything of it is delivered (the loop reads it once added).
        self._peer_connected(address)
        self._loop.add(connection)
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
            send_record(sock, json.dumps(hello).encode())
            answer = json.loads(recv_record(sock, MAX_HELLO))
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

    # -- inbound (on the loop) ---------------------------------------------------

    def _judge(self, greeting: Greeting, hello: bytes) -> None:
        """Admit `greeting`'s peer as a connection, or refuse it saying why."""
        gate = self._gate
        assert gate is not None
        if greeting.expired:
            gate.drop(greeting)  # reported by the watchdog already
            return
        try:
            env_id, host, port, token = parse_hello(hello)
        except ValueError as exc:
            gate.refuse(greeting, f"a bad handshake (not a sparkctl tcp peer?): {exc}")
            return
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
                    self._inbound += 1  # given back when it ends
        answer = json.dumps({"env_id": self.env_id, "error": refusal or "", "busy": busy})
        if refusal is not None:
            gate.refuse(greeting, refusal, answer.encode())
            return
        gate.stop_waiting(greeting)
        app_id = token_app_id(token)
        peer = RpcAddress(host, port, env_id if port == 0 else "")
        if app_id and not peer.is_client:
            # As on gRPC: a caller with an application's credential may not claim a
            # listening address (what we send there must not go over its stream).
            peer = RpcAddress(host, 0, env_id)
        sock = greeting.sock
        prepare(sock, self._keepalive_seconds)
        connection = Connection(sock, peer, env_id, app_id, False, self._loop, self, self._limit)
        try:
            connection.write(answer.encode())
        except OSError:  # it went away: nothing to report
            with self._connections_lock:
                self._inbound -= 1
            gate.drop(greeting)
            return
        with self._connections_lock:
            self._connections[peer] = connection
            self._live.add(connection)
            stopped = self._stopped.is_set()
        self._peer_connected(peer)
        self._loop.replace(greeting, connection)
        if stopped:  # shut down meanwhile: `_close_transport` did not see it
            connection.close()

    # -- connection events (on the loop) -------------------------------------------

    def deliver(self, connection: Connection, envelopes: Sequence[rpc_pb2.Envelope]) -> None:
        """Hand what `connection` read to the dispatcher (released once per loop turn)."""
        self._receive_envelopes(
            connection.peer,
            envelopes,
            peer_id=connection.peer_id,
            hold=True,
            app_id=connection.app_id,
        )

    def connection_ended(self, connection: Connection, error: RpcError | None) -> None:
        """Forget `connection`, fail what waited on it, and tell the endpoints."""
        with self._connections_lock:
            if self._connections.get(connection.peer) is connection:
                del self._connections[connection.peer]
            self._live.discard(connection)
            if not connection.outbound:
                self._inbound -= 1
        self._peer_disconnected(connection.peer, error)

    # -- watchdog ------------------------------------------------------------------

    def _watch(self) -> None:
        """Hand a held loop over, and close peers that stall (see `_check_stalls`)."""
        stall_every = min(1.0, self._record_seconds / 4, self._write_seconds / 4)
        next_stall_check = time.monotonic() + stall_every
        while not self._stopped.wait(_HELD_CHECK):
            now = time.monotonic()
            try:
                self._loop.check_held(now, repr)
                if now >= next_stall_check:
                    next_stall_check = now + stall_every
                    self._check_stalls(now)
            except Exception:  # a bug on our side: say so, keep watching
                log.exception("the tcp watchdog of %r failed", self._name)

    def _check_stalls(self, now: float) -> None:
        """Close handshakes past their time, connections whose started record has waited
        too long for its bytes, and those whose peer has taken none of our backlog for
        spark.network.timeout (its process stopped, its host hung while its kernel
        still ACKs): a stopped reader must not make us hold its replies forever.

        Only time spent waiting for the peer counts: a record's wait stops while we
        handle what came before it, or while its bytes wait in our kernel for the
        loop; a slow reader taking any bytes at all resets its wait.
        """
        if self._gate is not None:
            self._gate.expire_overdue(now)
        limit = self._record_seconds
        write_limit = self._write_seconds
        with self._connections_lock:
            live = list(self._live)
        for connection in live:
            if connection.closed:
                continue
            waiting = connection.write_waiting
            if waiting is not None:
                waiting = max(waiting, connection.acked_since(now))
                if now - waiting > write_limit:
                    reason = (
                        f"it has taken none of what we send for {now - waiting:.1f}s "
                        f"(spark.network.timeout={write_limit:g}s): stopped reading"
                    )
                    log.warning("closing the connection with %s: %s", connection.peer, reason)
                    connection.close(RpcConnectionError(f"{connection.peer}: {reason}"))
                    continue
            stalled = connection.reader.stalled_for(now)
            if stalled <= limit or readable_bytes(connection.sock):
                continue  # bytes in our kernel: the wait is the loop's, not the peer's
            reason = (
                f"a message it started has waited {stalled:.1f}s for the rest of its bytes "
                f"(spark.rpc.io.connectionTimeout={limit:g}s)"
            )
            log.warning("closing the connection with %s: %s", connection.peer, reason)
            connection.close(RpcProtocolError(f"{connection.peer} stalled: {reason}"))

    # -- shutdown ------------------------------------------------------------------

    def _check_may_block(self, what: str) -> None:
        if on_io_thread():
            raise RuntimeError(
                f"{what} called on a tcp RpcEnv I/O thread, the reader thread of every "
                "peer (from an ask future's callback or an inline handler?): it would "
                "deadlock; use ask() and add_done_callback"
            )

    def _close_transport(self) -> None:
        with self._connections_lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close()
        self._loop.stop(self._finish_loop, _STOP_WAIT)

    def _finish_loop(self) -> None:
        """Close the listener and every connection left (the loop's last request)."""
        if self._gate is not None:
            self._gate.close()
        with self._connections_lock:
            live = list(self._live)
        for connection in live:
            connection.end(None)


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
