"""GrpcRpcEnv: the default backend, one bidirectional stream per pair of processes.

A connection is keyed by the peer's advertised address; whichever side dialled,
both reuse it for every endpoint and both directions. A client-mode env has no
server: peers reach it over the stream it opened.

Every stream, inbound or outbound, runs as coroutines on the process's one I/O
loop thread (`IoLoop.shared()`), so a connection costs no thread: the server
serves thousands of peers with a fixed handful. Envelopes reach the dispatcher from that loop,
in order per peer; endpoint code never runs on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor as pb_descriptor
from google.protobuf.message import Message

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
    RpcMessageTooLargeError,
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
from rpcenv.grpc._connection import Connection
from rpcenv.grpc._loop import IoLoop
from rpcenv.grpc._outbox import QueuedEnvelope
from rpcenv.grpc._server import (
    AUTH_METADATA,
    CONNECT_METHOD,
    PEER_METADATA,
    GrpcServer,
    status_details,
    status_for,
)
from rpcenv.grpc._tls import channel_credentials, server_credentials, tls_enabled
from sparkctl.v1 import rpc_pb2

__all__ = ["GrpcRpcEnv"]

log = logging.getLogger(__name__)

_OVERHEAD = 1 << 20  # room for envelope and frame headers above the message limit

#: Default of spark.rpc.io.connectionTimeout: how long a connection may sit without
#: finishing its handshake or without any call open before the server closes it.
DEFAULT_CONNECTION_TIMEOUT = 30.0
#: Default of spark.rpc.io.serverThreads: threads for public unary handlers only.
DEFAULT_HANDLER_THREADS = 16
#: Pings closer together than this (on a connection with no data) are strikes; a few
#: strikes and the server sends GOAWAY too_many_pings. Our own keepalive stays wider.
_MIN_PING_INTERVAL_MS = 5_000
_MAX_PING_STRIKES = 2
#: Seconds open streams get to end by themselves at shutdown before they are cancelled.
_STOP_GRACE = 1.0
#: The bound on closing the transport at shutdown, whatever the number of peers.
_STOP_BOUND = 3.0
#: No BDP probing: with it, the receiver of every small message answered with a PING
#: and two WINDOW_UPDATEs (one more syscall, one more wake-up on each side), which
#: doubled the C core's cost of a heartbeat. The static window it leaves is sized
#: for bulk transfers instead.
_FLOW_CONTROL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.lookahead_bytes", 4 << 20),
]


class GrpcRpcEnv(BaseRpcEnv):
    """An RpcEnv on gRPC."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        conf: Conf,
        client_mode: bool,
        advertise_host: str | None = None,
    ) -> None:
        """Bind `host` (unless `client_mode`); peers are told `advertise_host`, else `host`."""
        advertise = advertise_host or host
        self._secret = resolve_secret(conf)
        # Without the secret, an application's credential (from the environment) may
        # still let this env call the Master, limited to that application.
        self._app_credential = resolve_app_credential() if self._secret is None else None
        self._tls = tls_enabled(conf)
        # Read now, so that a bad file fails RpcEnv.create, not each dial on the loop
        # (where it left the first ask waiting for its whole timeout).
        self._channel_credentials = channel_credentials(conf) if self._tls else None
        env_id = uuid.uuid4().hex
        self._server: GrpcServer | None = None
        if client_mode:
            address = RpcAddress(advertise, 0, env_id)
        else:
            # An executor holding only its application's credential checks callers too.
            key = self._app_credential[1] if self._app_credential is not None else None
            check_bind_allowed(host, self._secret or key, conf)
            address = RpcAddress(advertise, port)
        super().__init__(name, address, conf)
        self.env_id = env_id
        limit = min(self._max_message_bytes + _OVERHEAD, 2**31 - 1)  # gRPC sizes are int32
        keepalive_ms = max(1, int(conf.get(settings.KEEPALIVE_INTERVAL) * 1000))
        connection_timeout = conf.get(settings.CONNECTION_TIMEOUT)
        handler_threads = conf.get(settings.SERVER_THREADS) or DEFAULT_HANDLER_THREADS
        self._channel_options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.enable_retries", 0),
            ("grpc.so_reuseport", 0),
            # A channel of its own per peer: never share a subchannel between envs.
            ("grpc.use_local_subchannel_pool", 1),
            *_FLOW_CONTROL_OPTIONS,
        ]
        self._connections: dict[RpcAddress, Connection] = {}
        self._connections_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._release_scheduled = False  # loop thread only
        self._hello = rpc_pb2.PeerHello(env_id=env_id, name=name, host=advertise, port=0)
        self._io = IoLoop.shared()
        if not client_mode:
            idle_ms = max(1, int(connection_timeout * 1000))
            server_options: list[tuple[str, Any]] = [
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.keepalive_time_ms", keepalive_ms),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                # Our peers ping every keepalive interval: allow twice that rate and no
                # more, so a client's ping flood earns GOAWAY while ours never does.
                (
                    "grpc.http2.min_ping_interval_without_data_ms",
                    max(1, min(_MIN_PING_INTERVAL_MS, keepalive_ms // 2)),
                ),
                ("grpc.http2.max_ping_strikes", _MAX_PING_STRIKES),
                # Hygiene: a socket that never finishes its TLS/HTTP/2 handshake, or a
                # connection with no call open (never authenticated, or a public client
                # gone quiet), is closed after spark.rpc.io.connectionTimeout.
                ("grpc.server_handshake_timeout_ms", idle_ms),
                ("grpc.max_connection_idle_ms", idle_ms),
                ("grpc.so_reuseport", 0),
                *_FLOW_CONTROL_OPTIONS,
            ]
            try:
                self._server = GrpcServer(
                    self._io,
                    host,
                    port,
                    server_options,
                    server_credentials(conf) if self._tls else None,
                    make_verifier(self._secret, self._app_credential),
                    handler_threads=handler_threads,
                )
            except BaseException:
                # A taken port or bad TLS files: leave no thread behind, since callers
                # may try the next port (an executor's spark.blockManager.port).
                self._deadlines.stop()
                raise
            self._address = RpcAddress(advertise, self._server.port)
            self._hello.port = self._server.port
            self._server.add_stream(CONNECT_METHOD, self._serve_connect)
            self._server.start()
        self._hello_bytes = self._hello.SerializeToString()
        self._peer_metadata = f"{env_id};{name};{advertise};{self._hello.port}"

    # -- public typed services -------------------------------------------------

    def serve_service(
        self, service: pb_descriptor.ServiceDescriptor, implementation: object
    ) -> None:
        """Serve a typed gRPC service on this env's port (the public MasterService)."""
        if self._server is None:
            raise RpcConfigError(f"RpcEnv {self._name!r} runs in client mode and serves nothing")
        self._server.add_service(service, implementation)

    def accept_app_credentials(self, app_id: str = "") -> None:
        """Let callers in with an application's credential instead of the secret.

        Only for an env whose endpoints limit such callers to their application
        (`MessageOrigin.app_id` names it); `app_id`: that application's only (a driver).
        """
        if self._server is not None and self._server.verifier is not None:
            self._server.verifier.accept_app_tokens = True
            self._server.verifier.only_app = app_id

    def disconnect(self, address: RpcAddress, reason: str = "") -> bool:
        """Close the stream with `address` (either direction); queued envelopes fail."""
        return close_peer_connection(
            self._address, self._connections, self._connections_lock, address, reason
        )

    # -- outbound ----------------------------------------------------------------

    def _transmit(self, address: RpcAddress, envelope: rpc_pb2.Envelope) -> None:
        item: QueuedEnvelope = (envelope.SerializeToString(), envelope.kind, envelope.request_id)
        for _ in range(2):
            connection = self._connections.get(address)
            if connection is None:
                if address.is_client:
                    raise RpcConnectionError(
                        f"client {address} is not connected to {self._address}"
                    )
                connection = self._dial(address)
            if connection.put(item):
                return
            with self._connections_lock:  # it was closing: forget it and dial again
                if self._connections.get(address) is connection:
                    del self._connections[address]
        raise RpcConnectionError(f"cannot deliver to {address}: the connection keeps closing")

    def _new_connection(self, peer: RpcAddress, outbound: bool) -> Connection:
        return Connection(
            self._io,
            peer,
            outbound,
            self._receive_from_connection,
            self._on_hello,
            self._on_connection_closed,
        )

    def _dial(self, address: RpcAddress) -> Connection:
        with self._connections_lock:
            existing = self._connections.get(address)
            if existing is not None:
                return existing
            if self._stopped.is_set():
                raise RpcEndpointStoppedError(f"RpcEnv {self._name!r} is stopped")
            connection = self._new_connection(address, True)
            self._connections[address] = connection
        self._io.call_soon(self._start_task, self._run_outbound(connection))
        return connection

    def _start_task(self, coro: Any) -> None:
        task = self._io.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_outbound(self, connection: Connection) -> None:
        address = connection.peer
        target = address.host_port
        metadata = [(PEER_METADATA, self._peer_metadata)]
        if self._secret is not None:
            metadata.append((AUTH_METADATA, make_auth_token(self._secret, self.env_id)))
        elif self._app_credential is not None:
            app_id, credential = self._app_credential
            token = make_app_auth_token(credential, app_id, self.env_id)
            metadata.append((AUTH_METADATA, token))
        error: RpcError | None = None
        channel: grpc.aio.Channel | None = None
        writer: asyncio.Task[None] | None = None
        self._io.streams += 1
        try:
            # Inside the try: a channel that cannot be made must fail the connection's
            # asks at once, not leave them to their timeouts.
            if self._channel_credentials is not None:
                channel = grpc.aio.secure_channel(
                    target, self._channel_credentials, self._channel_options
                )
            else:
                channel = grpc.aio.insecure_channel(target, self._channel_options)
            call = channel.stream_stream(CONNECT_METHOD)(metadata=metadata)
            receive = connection.receive
            eof = grpc.aio.EOF
            while True:
                data = await call.read()
                if data is eof:
                    break
                receive(data)
                if writer is None:
                    # Only once the server's first frame (its hello) came: a write racing
                    # a refusal (a wrong secret) turned its status into INTERNAL.
                    writer = asyncio.get_running_loop().create_task(
                        self._write_outbound(connection, call)
                    )
            code = await call.code()
            if code != grpc.StatusCode.OK:
                error = _error_from_status_parts(code, await call.details(), address)
        except grpc.RpcError as exc:
            error = _error_from_status(exc, address)
        except RpcProtocolError as exc:
            error = exc
        except asyncio.CancelledError:
            error = None  # the env is shutting down
        except Exception as exc:  # never let a stream end silently
            log.exception("connection to %s failed", address)
            error = RpcConnectionError(f"connection to {address} failed: {exc!r}")
        finally:
            self._io.streams -= 1
            connection.close(error)
            if writer is not None:
                writer.cancel()
            if channel is not None:
                await channel.close()

    async def _write_outbound(self, connection: Connection, call: Any) -> None:
        try:
            await connection.write_frames(call.write)
            await call.done_writing()
        except asyncio.CancelledError:
            raise
        except Exception:  # the call ended: the reader reports why
            log.debug("writing to %s stopped", connection.peer, exc_info=True)

    # -- inbound -----------------------------------------------------------------

    async def _serve_connect(
        self, _requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        peer = _peer_address(metadata.get(PEER_METADATA, ""))
        if peer is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"missing or malformed {PEER_METADATA}"
            )
            return
        if self._stopped.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"RpcEnv {self._name!r} is stopping")
            return
        # The interceptor has checked the token: an application's names its application.
        app_id = token_app_id(metadata.get(AUTH_METADATA))
        if app_id and not peer.is_client:
            # It may not claim a listening address: what we send a Worker or a driver
            # there must not go over its stream instead (Workers' commands carry other
            # applications' credentials). It is a client, known by its env id.
            peer = RpcAddress(peer.host, 0, metadata[PEER_METADATA].split(";", 1)[0])
        connection = self._new_connection(peer, False)
        connection.peer_id = metadata.get(PEER_METADATA, "").split(";", 1)[0]
        connection.app_id = app_id
        with self._connections_lock:
            self._connections[peer] = connection
        connection.connected = True
        self._peer_connected(peer)
        reader = asyncio.get_running_loop().create_task(self._read_inbound(connection, context))
        try:
            await connection.write_frames(context.write, self._hello_bytes)
        except asyncio.CancelledError:
            raise  # the peer went away; finally says so
        except Exception:
            log.debug("writing to %s stopped", peer, exc_info=True)
        finally:
            connection.close(None)
            reader.cancel()
        if connection.error is not None:
            await context.abort(status_for(connection.error), status_details(str(connection.error)))

    async def _read_inbound(
        self, connection: Connection, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        error: RpcError | None = None
        receive = connection.receive
        eof = grpc.aio.EOF
        self._io.streams += 1
        try:
            while True:
                try:
                    data = await context.read()
                except asyncio.CancelledError:
                    raise
                except Exception:  # the peer went away (a read on a dead call raises)
                    log.debug("reading from %s stopped", connection.peer, exc_info=True)
                    break
                if data is eof:
                    break
                receive(data)
        except asyncio.CancelledError:
            pass  # the stream ended first
        except RpcProtocolError as exc:
            log.warning("closing the stream from %s: %s", connection.peer, exc)
            error = exc
        except Exception:  # a bug on our side: say so, and end only this stream
            log.exception("handling a frame from %s failed", connection.peer)
        finally:
            self._io.streams -= 1
            connection.close(error)

    def _check_may_block(self, what: str) -> None:
        # Ask futures complete on the I/O loop, so their callbacks run there: one that
        # waited for another answer would wait forever, the loop being the one to read it.
        if self._io.in_loop():
            raise RuntimeError(
                f"{what} called on the gRPC I/O loop thread (from an ask future's callback?): "
                "it would deadlock; use ask() and add_done_callback, or post to an endpoint"
            )

    def _receive_from_connection(
        self,
        peer: RpcAddress,
        envelopes: Iterable[rpc_pb2.Envelope],
        peer_id: str,
        app_id: str,
        messages: Sequence[Message | RpcProtocolError | None] | None = None,
    ) -> None:
        # On the loop only. What arrives in one turn of the loop, from any number of
        # peers, reaches each endpoint's inbox in order but is handed to the pool once,
        # at the end of the turn: a thread wake-up per message cost more than the rest.
        self._receive_envelopes(
            peer, envelopes, peer_id=peer_id, hold=True, app_id=app_id, messages=messages
        )
        if not self._release_scheduled:
            self._release_scheduled = True
            self._io.loop.call_soon(self._release_held)

    def _release_held(self) -> None:
        self._release_scheduled = False
        self._dispatcher.release()

    def _on_hello(self, connection: Connection, hello: rpc_pb2.PeerHello) -> None:
        if connection.outbound and not connection.peer_id:
            connection.peer_id = hello.env_id
        if connection.outbound and not connection.connected:
            connection.connected = True
            self._peer_connected(connection.peer)

    def _on_connection_closed(
        self, connection: Connection, leftover: list[QueuedEnvelope], error: RpcError | None
    ) -> None:
        with self._connections_lock:
            if self._connections.get(connection.peer) is connection:
                del self._connections[connection.peer]
        if leftover:
            reason = error or RpcConnectionError(f"connection to {connection.peer} closed")
            self._transmit_failed(
                connection.peer, [(kind, rid) for _, kind, rid in leftover], reason
            )
        self._peer_disconnected(connection.peer, error, notify=connection.connected)

    def _close_transport(self) -> None:
        async def finish() -> None:
            # All on the loop and all at once, however many peers: the listener stops
            # first (no peer dials back in meanwhile), every stream is closed (queued
            # frames still go out), and whatever has not ended after the grace is
            # cancelled, so the whole shutdown takes about _STOP_GRACE, not a bound
            # per stream.
            started = time.monotonic()
            self._io.closing += 1
            try:
                await close_all(started)
            finally:
                self._io.closing -= 1

        async def close_all(started: float) -> None:
            waits: set[asyncio.Future[None]] = set(self._tasks)
            if self._server is not None:
                waits.add(asyncio.ensure_future(self._server.stop(grace=_STOP_GRACE)))
            with self._connections_lock:
                connections = list(self._connections.values())
            for connection in connections:
                connection.close(None, drain=True)
            if waits:
                _, pending = await asyncio.wait(waits, timeout=_STOP_GRACE + 0.5)
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending, timeout=0.5)
            log.debug(
                "RpcEnv %r: %d stream(s) closed in %.2fs",
                self._name,
                len(connections),
                time.monotonic() - started,
            )

        if self._io.in_loop():  # shutdown() from a future's callback: cannot wait here
            self._io.loop.create_task(finish())
            return
        try:
            self._io.run(finish(), timeout=_STOP_BOUND)
        except TimeoutError:
            log.warning("RpcEnv %r: streams did not close in time", self._name)


def _peer_address(text: str) -> RpcAddress | None:
    parts = text.split(";")
    if len(parts) != 4:
        return None
    env_id, _name, host, port_text = parts
    try:
        port = int(port_text)
    except ValueError:
        return None
    if not env_id or not host or not 0 <= port < 65536:
        return None
    return RpcAddress(host, port, env_id if port == 0 else "")


def _error_from_status(exc: grpc.RpcError, address: RpcAddress) -> RpcError:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return _error_from_status_parts(code, details, address)


def _error_from_status_parts(
    code: grpc.StatusCode | None, details: str | None, address: RpcAddress
) -> RpcError:
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return RpcAuthenticationError(f"{address} refused the connection: {details}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RpcMessageTooLargeError(f"{address} refused a message: {details}")
    name = code.name if code is not None else "UNKNOWN"
    return RpcConnectionError(f"connection to {address} failed: {name}: {details}")
