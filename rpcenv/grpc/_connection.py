"""One Connect stream with a peer, shared by every endpoint, in both directions.

Either side runs the stream as coroutines on the env's I/O loop: a writer that
drains the outbox (`write_frames`) and a reader that hands each frame to
`receive`. No thread is held per stream. `receive` delivers envelopes in the
order the peer sent them, and `close()` tells the env exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable

from google.protobuf.message import DecodeError

from rpcenv._address import RpcAddress
from rpcenv._errors import RpcError, RpcProtocolError
from rpcenv.grpc._framing import encode_frame
from rpcenv.grpc._loop import IoLoop
from rpcenv.grpc._outbox import Outbox, QueuedEnvelope
from sparkctl.v1 import rpc_pb2

__all__ = ["Connection"]

log = logging.getLogger(__name__)

_parse_frame = rpc_pb2.ConnectRequest.FromString


class Connection:
    """The state of one stream: its outbox, whether the handshake is done."""

    def __init__(
        self,
        io: IoLoop,
        peer: RpcAddress,
        outbound: bool,
        deliver: Callable[[RpcAddress, Iterable[rpc_pb2.Envelope], str, str], None],
        on_hello: Callable[[Connection, rpc_pb2.PeerHello], None],
        on_close: Callable[[Connection, list[QueuedEnvelope], RpcError | None], None],
    ) -> None:
        self.peer = peer
        self.outbound = outbound
        self.outbox = Outbox(io)
        self._io = io
        self.connected = False
        #: The env id the peer gave (its metadata when it dialled us, else its hello).
        self.peer_id = ""
        #: The application the peer authenticated as ("" for the secret's holders).
        self.app_id = ""
        self._deliver = deliver
        self._on_hello = on_hello
        self._on_close = on_close
        self._close_lock = threading.Lock()
        self._closed = False
        #: Why the stream ended, when it ended badly.
        self.error: RpcError | None = None

    def put(self, item: QueuedEnvelope) -> bool:
        """Queue a serialized envelope (from any thread); False when the stream is closing."""
        return self.outbox.put(item)

    async def write_frames(
        self, write: Callable[[bytes], Awaitable[None]], hello: bytes = b""
    ) -> None:
        """Write the hello (if any), then batches from the outbox until it closes."""
        # Each write is noted: the loop's next wake-ups are likely its completion or
        # the peer's answer, which a coalescing hub must not delay.
        wrote = self._io.wrote
        if hello:
            wrote()
            await write(encode_frame((), hello))
        take = self.outbox.take
        while True:
            items = await take()
            if items is None:
                return
            wrote()
            await write(encode_frame([item[0] for item in items]))

    def receive(self, data: bytes) -> None:
        """Deliver one frame the peer sent.

        Raises:
            RpcProtocolError: a frame that does not parse.
        """
        try:
            frame = _parse_frame(data).frame
        except DecodeError as exc:
            raise RpcProtocolError(f"malformed frame from {self.peer}: {exc}") from None
        if frame.HasField("hello"):
            self._on_hello(self, frame.hello)
        if frame.envelopes:
            self._deliver(self.peer, frame.envelopes, self.peer_id, self.app_id)

    def close(self, error: RpcError | None, drain: bool = False) -> None:
        """End the stream; the env hears of it once. With `drain`, queued frames go out first."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self.error = error
        leftover = self.outbox.close(drain=drain)
        self._on_close(self, leftover, error)
