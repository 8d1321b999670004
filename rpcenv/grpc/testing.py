"""Test helpers for the gRPC backend: many idle peer streams held from one loop.

`IdlePeerStreams` opens N Connect streams to a server, each on a connection of
its own, completes the handshake (peer metadata, the shared-secret token when
one is given, the server's hello) and then keeps them open and silent. It is
what a cluster of idle workers looks like to a master's transport, without N
processes or N threads, so a test or benchmark can check that connections do
not cost the server a thread.
"""

from __future__ import annotations

import asyncio
import uuid
from types import TracebackType
from typing import Any

import grpc
import grpc.aio

from rpcenv._security import make_auth_token
from rpcenv.grpc._loop import IoLoop
from rpcenv.grpc._server import AUTH_METADATA, CONNECT_METHOD, PEER_METADATA
from sparkctl.v1 import rpc_pb2

__all__ = ["IdlePeerStreams"]

#: Streams being opened at once: enough to be quick, few enough for any listen backlog.
_OPENING_AT_ONCE = 64


class IdlePeerStreams:
    """`count` idle client-mode peer streams to `target` (host:port)."""

    def __init__(
        self,
        target: str,
        count: int,
        secret: bytes | None = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be at least 0, not {count}")
        self.target = target
        self.count = count
        self._secret = secret
        self._credentials = credentials
        self._io: IoLoop | None = None
        self._channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []
        #: Streams whose handshake finished and that have not ended since.
        self.open_streams = 0
        #: Why streams ended (status names), for a failing test to show.
        self.endings: list[str] = []

    def open(self, timeout: float) -> None:
        """Open every stream and wait for each server hello.

        Raises:
            TimeoutError: not all handshakes finished within `timeout` seconds.
            RuntimeError: a stream was refused (its status says why).
        """
        self._io = IoLoop.shared()
        self._io.run(self._open_all(), timeout)

    async def _open_all(self) -> None:
        gate = asyncio.Semaphore(_OPENING_AT_ONCE)
        ready: list[asyncio.Future[None]] = []
        loop = asyncio.get_running_loop()
        for index in range(self.count):
            future: asyncio.Future[None] = loop.create_future()
            ready.append(future)
            self._tasks.append(loop.create_task(self._hold(index, gate, future)))
        for future in ready:
            await future

    async def _hold(self, index: int, gate: asyncio.Semaphore, ready: asyncio.Future[None]) -> None:
        env_id = uuid.uuid4().hex
        metadata = [(PEER_METADATA, f"{env_id};idle-{index};127.0.0.1;0")]
        if self._secret is not None:
            metadata.append((AUTH_METADATA, make_auth_token(self._secret, env_id)))
        options: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
        async with gate:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(self.target, self._credentials, options)
            else:
                channel = grpc.aio.insecure_channel(self.target, options)
            self._channels.append(channel)
            call = channel.stream_stream(CONNECT_METHOD)(metadata=metadata)
            try:
                first = await call.read()
                if first is grpc.aio.EOF:
                    raise RuntimeError(f"stream {index} ended before the server's hello")
                frame = rpc_pb2.ConnectResponse.FromString(first).frame
                if not frame.HasField("hello"):
                    raise RuntimeError(f"stream {index}: the first frame has no hello")
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(
                        RuntimeError(f"stream {index} refused: {_describe(exc)}")
                        if isinstance(exc, grpc.RpcError)
                        else exc
                    )
                return
        self.open_streams += 1
        ready.set_result(None)
        try:
            while await call.read() is not grpc.aio.EOF:
                pass  # idle peers ignore what they are sent
            self.endings.append("EOF")
        except grpc.RpcError as exc:
            self.endings.append(_describe(exc))
        finally:
            self.open_streams -= 1

    def close(self) -> None:
        """End every stream and channel."""
        io, self._io = self._io, None
        if io is None:
            return

        async def close_all() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in self._channels), return_exceptions=True)
            # A closed aio channel keeps its socket until the object is freed.
            self._channels.clear()
            self._tasks.clear()

        io.run(close_all(), timeout=30.0)

    def __enter__(self) -> IdlePeerStreams:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code is not None else 'UNKNOWN'}: {details}"
