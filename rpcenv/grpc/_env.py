"""GrpcRpcEnv: the default backend, one bidirectional stream per pair of processes.

A connection is keyed by the peer's advertised address; whichever side dialled,
both reuse it for every endpoint and both directions. A client-mode env has no
server: peers reach it over the stream it opened.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import grpc
from google.protobuf import descriptor as pb_descriptor

from rpcenv._address import RpcAddress
from rpcenv._base import BaseRpcEnv
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
from rpcenv._security import AuthVerifier, check_bind_allowed, make_auth_token, resolve_secret
from rpcenv.grpc._connection import Connection
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


class GrpcRpcEnv(BaseRpcEnv):
    """An RpcEnv on gRPC."""

    def __init__(self, name: str, host: str, port: int, conf: Conf, client_mode: bool) -> None:
        self._secret = resolve_secret(conf)
        self._tls = tls_enabled(conf)
        # Read now, so that a bad file fails RpcEnv.create, not each dial in its thread
        # (where it left the first ask waiting for its whole timeout).
        self._channel_credentials = channel_credentials(conf) if self._tls else None
        env_id = uuid.uuid4().hex
        self._server: GrpcServer | None = None
        if client_mode:
            address = RpcAddress(host, 0, env_id)
        else:
            check_bind_allowed(host, self._secret, conf)
            address = RpcAddress(host, port)
        super().__init__(name, address, conf)
        self.env_id = env_id
        limit = min(self._max_message_bytes + _OVERHEAD, 2**31 - 1)  # gRPC sizes are int32
        keepalive_ms = int((conf.get_duration("spark.rpc.keepalive.interval") or 20.0) * 1000)
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
        ]
        self._connections: dict[RpcAddress, Connection] = {}
        self._connections_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._hello = rpc_pb2.PeerHello(env_id=env_id, name=name, host=host, port=0)
        if not client_mode:
            server_options: list[tuple[str, Any]] = [
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
                ("grpc.keepalive_time_ms", keepalive_ms),
                ("grpc.keepalive_timeout_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.http2.max_ping_strikes", 0),
                ("grpc.so_reuseport", 0),
            ]
            try:
                self._server = GrpcServer(
                    host,
                    port,
                    server_options,
                    server_credentials(conf) if self._tls else None,
                    AuthVerifier(self._secret) if self._secret is not None else None,
                    threads=conf.get_int("spark.rpc.io.serverThreads") or 256,
                )
            except BaseException:
                # A taken port or bad TLS files: leave no deadline thread behind, since
                # callers may try the next port (an executor's spark.blockManager.port).
                self._deadlines.stop()
                raise
            self._address = RpcAddress(host, self._server.port)
            self._hello.port = self._server.port
            self._server.add_stream(CONNECT_METHOD, self._serve_connect)
            self._server.start()
        self._hello_bytes = self._hello.SerializeToString()
        self._peer_metadata = f"{env_id};{name};{host};{self._hello.port}"

    # -- public typed services -------------------------------------------------

    def serve_service(
        self, service: pb_descriptor.ServiceDescriptor, implementation: object
    ) -> None:
        """Serve a typed gRPC service on this env's port (the public MasterService)."""
        if self._server is None:
            raise RpcConfigError(f"RpcEnv {self._name!r} runs in client mode and serves nothing")
        self._server.add_service(service, implementation)

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

    def _dial(self, address: RpcAddress) -> Connection:
        with self._connections_lock:
            existing = self._connections.get(address)
            if existing is not None:
                return existing
            if self._stopped.is_set():
                raise RpcEndpointStoppedError(f"RpcEnv {self._name!r} is stopped")
            connection = Connection(
                address, True, self._receive_envelopes, self._on_hello, self._on_connection_closed
            )
            self._connections[address] = connection
        thread = threading.Thread(
            target=self._run_outbound, args=(connection,), name=f"rpc-out-{address}", daemon=True
        )
        with self._connections_lock:
            self._threads.append(thread)
        thread.start()
        return connection

    def _run_outbound(self, connection: Connection) -> None:
        address = connection.peer
        target = address.host_port
        metadata = [(PEER_METADATA, self._peer_metadata)]
        if self._secret is not None:
            metadata.append((AUTH_METADATA, make_auth_token(self._secret, self.env_id)))
        error: RpcError | None = None
        channel: grpc.Channel | None = None
        try:
            # Inside the try: a channel that cannot be made must fail the connection's
            # asks at once, not leave them to their timeouts.
            if self._channel_credentials is not None:
                channel = grpc.secure_channel(
                    target, self._channel_credentials, self._channel_options
                )
            else:
                channel = grpc.insecure_channel(target, self._channel_options)
            call = channel.stream_stream(CONNECT_METHOD)
            responses = call(connection.frames(), metadata=metadata)
            connection.read(responses)
        except grpc.RpcError as exc:
            error = _error_from_status(exc, address)
        except RpcProtocolError as exc:
            error = exc
        except Exception as exc:  # never let a transport thread die silently
            log.exception("connection to %s failed", address)
            error = RpcConnectionError(f"connection to {address} failed: {exc!r}")
        finally:
            connection.close(error)
            if channel is not None:
                channel.close()
            self._threads.remove(threading.current_thread())

    # -- inbound -----------------------------------------------------------------

    def _serve_connect(self, requests: Any, context: grpc.ServicerContext) -> Any:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        peer = _peer_address(metadata.get(PEER_METADATA, ""))
        if peer is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"missing or malformed {PEER_METADATA}")
            raise AssertionError("unreachable: abort raises")
        if self._stopped.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"RpcEnv {self._name!r} is stopping")
        connection = Connection(
            peer, False, self._receive_envelopes, self._on_hello, self._on_connection_closed
        )
        with self._connections_lock:
            self._connections[peer] = connection
        context.add_callback(lambda: connection.close(None))
        connection.connected = True
        self._peer_connected(peer)

        def read() -> None:
            error: RpcError | None = None
            try:
                connection.read(requests)
            except grpc.RpcError:
                pass  # the peer went away: close() below says so
            except RpcProtocolError as exc:
                log.warning("closing the stream from %s: %s", peer, exc)
                error = exc
            except Exception:
                log.exception("reading from %s failed", peer)
            finally:
                connection.close(error)

        threading.Thread(target=read, name=f"rpc-in-{peer}", daemon=True).start()

        def respond() -> Any:
            yield from connection.frames(self._hello_bytes)
            if connection.error is not None:
                context.abort(status_for(connection.error), status_details(str(connection.error)))

        return respond()

    def _on_hello(self, connection: Connection, hello: rpc_pb2.PeerHello) -> None:
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
        with self._connections_lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close(None, drain=True)
        if self._server is not None:
            self._server.stop(grace=1.0)
        deadline = time.monotonic() + 2.0  # one bound for all streams, however many
        for thread in list(self._threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


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
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return RpcAuthenticationError(f"{address} refused the connection: {details}")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return RpcMessageTooLargeError(f"{address} refused a message: {details}")
    name = code.name if code is not None else "UNKNOWN"
    return RpcConnectionError(f"connection to {address} failed: {name}: {details}")
