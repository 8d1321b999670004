"""The listening side of the gRPC backend: one grpc.aio server per env.

It serves the RpcService stream, any public typed services set up through
`serve_service`, grpc.health.v1 and server reflection, all on the env's I/O
loop. Streams are coroutines; only handlers of public unary methods, which call
into endpoint code that may block, run on a small thread pool of their own. An
interceptor checks the shared secret before any handler runs, so an
unauthenticated caller never reaches an endpoint.
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor as pb_descriptor
from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer as AsyncReflectionServicer

from rpcenv._errors import RpcError
from rpcenv._security import AuthVerifier, current_caller_app, token_app_id
from rpcenv.grpc._loop import IoLoop

__all__ = [
    "AUTH_METADATA",
    "CONNECT_METHOD",
    "PEER_METADATA",
    "GrpcServer",
    "status_details",
    "status_for",
]

log = logging.getLogger(__name__)

CONNECT_METHOD = "/sparkctl.v1.RpcService/Connect"
PEER_METADATA = "x-sparkctl-peer"
AUTH_METADATA = "x-sparkctl-auth"
_UNAUTHENTICATED_OK = ("/grpc.health.v1.Health/",)

_STATUS_BY_NAME = {code.name: code for code in grpc.StatusCode}

#: The longest error message a status carries. The message travels in an HTTP/2
#: trailer, and peers refuse headers over 8-16 KiB: a longer one breaks the whole
#: connection (HPACK COMPRESSION_ERROR), so a Node.js client then waits out its
#: deadline on every call of that channel instead of getting its status.
MAX_DETAILS_CHARS = 1000
#: Seconds between two logged authentication rejections.
_REJECTION_LOG_INTERVAL = 1.0

#: Stream handler of the Connect method: (request iterator, context) -> None.
StreamBehaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]


def status_details(text: str) -> str:
    """`text` cut to MAX_DETAILS_CHARS, saying so, for a gRPC status message."""
    if len(text) <= MAX_DETAILS_CHARS:
        return text
    cut = len(text) - MAX_DETAILS_CHARS
    return f"{text[:MAX_DETAILS_CHARS]}... ({cut} more characters cut)"


def status_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status code that describes `error`."""
    if isinstance(error, RpcError):
        return _STATUS_BY_NAME.get(error.GRPC_STATUS, grpc.StatusCode.INTERNAL)
    if isinstance(error, (KeyError, LookupError)):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, PermissionError):
        return grpc.StatusCode.PERMISSION_DENIED
    if isinstance(error, (ValueError, TypeError)):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


def peer_env_id(metadata: dict[str, str]) -> str:
    """The env id a caller claims in its peer metadata ('' for plain clients)."""
    return metadata.get(PEER_METADATA, "").split(";", 1)[0]


class _AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses every call without a valid token, before any handler runs."""

    def __init__(self, verifier: AuthVerifier) -> None:
        self._verifier = verifier
        # Rejections are logged at most once a second (a flood must not flood the log);
        # the interceptor runs on the I/O loop only, so no lock.
        self._next_log = 0.0
        self._unlogged = 0

    def _log_rejection(self, method: str, peer: str, reason: str) -> None:
        now = time.monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return
        unlogged, self._unlogged = self._unlogged, 0
        self._next_log = now + _REJECTION_LOG_INTERVAL
        more = f" ({unlogged} more rejected since the last report)" if unlogged else ""
        log.warning("rejected unauthenticated call to %s from %s: %s%s", method, peer, reason, more)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        if details.method.startswith(_UNAUTHENTICATED_OK):
            return await continuation(details)
        metadata = {k: v for k, v in details.invocation_metadata if isinstance(v, str)}
        reason = self._verifier.verify(metadata.get(AUTH_METADATA), peer_env_id(metadata))
        if reason is None:
            return await continuation(details)
        method = details.method
        interceptor = self

        # A streaming handler whatever the method: it must not read a request first.
        async def reject(_requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            interceptor._log_rejection(method, context.peer(), reason)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"authentication failed: {reason}")

        return grpc.stream_stream_rpc_method_handler(reject)


class _Methods(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Method table that may grow while the server runs."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, details: Any) -> grpc.RpcMethodHandler | None:
        return self.handlers.get(details.method)


class _LiveReflection(AsyncReflectionServicer):  # type: ignore[misc]
    """Reflection that lists services added after the server started."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        super().__init__([])

    @property
    def _service_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._names))

    @_service_names.setter
    def _service_names(self, _value: object) -> None:
        pass


class GrpcServer:
    """A grpc.aio server with our method table, health and reflection, on `io`'s loop."""

    def __init__(
        self,
        io: IoLoop,
        host: str,
        port: int,
        options: list[tuple[str, Any]],
        credentials: grpc.ServerCredentials | None,
        verifier: AuthVerifier | None,
        handler_threads: int,
    ) -> None:
        self._io = io
        self._methods = _Methods()
        self._service_names: list[str] = [
            "sparkctl.v1.RpcService",
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        self._lock = threading.Lock()
        # Only public unary handlers run here (they may wait on an endpoint's answer);
        # streams never take a thread.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            handler_threads, thread_name_prefix="rpc-handler"
        )
        self.health = health.aio.HealthServicer()
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.verifier = verifier
        interceptors = [_AuthInterceptor(verifier)] if verifier is not None else []

        async def make() -> tuple[grpc.aio.Server, int]:
            server = grpc.aio.server(
                migration_thread_pool=self._pool,
                handlers=[self._methods],
                interceptors=interceptors,
                options=options,
            )
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
                _LiveReflection(self._service_names), server
            )
            try:
                if credentials is None:
                    bound = server.add_insecure_port(target)
                else:
                    bound = server.add_secure_port(target, credentials)
            except RuntimeError:  # newer grpcio raises "Failed to bind" instead of returning 0
                bound = 0
            return server, bound

        self.server, self.port = io.run(make(), timeout=30.0)
        if self.port == 0:
            self._pool.shutdown(wait=False)
            tls = "" if credentials is None else ", or its TLS certificate and key do not match"
            raise OSError(
                errno.EADDRINUSE,
                f"cannot listen on {target}: address in use or not available{tls}",
            )

    def start(self) -> None:
        """Start serving; health says SERVING."""

        async def start() -> None:
            await self.server.start()
            for name in ["", *self._service_names]:
                await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

        self._io.run(start(), timeout=30.0)

    def add_stream(self, path: str, behaviour: StreamBehaviour) -> None:
        """Serve a raw-bytes bidirectional stream at `path` by a coroutine on the loop."""
        self._methods.handlers[path] = grpc.stream_stream_rpc_method_handler(behaviour)

    def add_service(self, service: pb_descriptor.ServiceDescriptor, implementation: object) -> None:
        """Serve every unary method of `service` by the same-named method of `implementation`.

        The methods run on the handler pool, so they may block.
        """
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                raise ValueError(f"{method.full_name}: only unary methods can be served")
            handler = getattr(implementation, method.name, None)
            if handler is None:
                raise ValueError(f"{type(implementation).__name__} has no method {method.name}")
            request_class = message_factory.GetMessageClass(method.input_type)
            self._methods.handlers[f"/{service.full_name}/{method.name}"] = (
                grpc.unary_unary_rpc_method_handler(_unary(handler, request_class))
            )
        with self._lock:
            if service.full_name not in self._service_names:
                self._service_names.append(service.full_name)
        serving = self.health.set(service.full_name, health_pb2.HealthCheckResponse.SERVING)
        if self._io.in_loop():
            self._io.loop.create_task(serving)
        else:
            self._io.run(serving, timeout=30.0)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let running ones finish for `grace` seconds (on the loop)."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _unary(
    handler: Callable[[Message], Message], request_class: type[Message]
) -> Callable[[bytes, grpc.ServicerContext], bytes]:
    name = request_class.DESCRIPTOR.full_name

    def behaviour(data: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            request = request_class.FromString(data)
        except DecodeError as exc:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, status_details(f"malformed {name}: {exc}")
            )
        # The interceptor checked the token: a caller with an application's credential
        # stays limited to it in whatever the handler asks of the endpoints.
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        try:
            with current_caller_app(token_app_id(metadata.get(AUTH_METADATA))):
                response = handler(request)
        except Exception as exc:  # mapped onto a status code; never a bare traceback
            log.debug("public call with %s failed", name, exc_info=True)
            context.abort(status_for(exc), status_details(str(exc) or type(exc).__name__))
        return response.SerializeToString()

    return behaviour
