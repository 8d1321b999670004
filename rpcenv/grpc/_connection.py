"""One Connect stream with a peer, shared by every endpoint, in both directions.

Either side runs the stream as coroutines on the env's I/O loop: a writer that
drains the outbox (`write_frames`) and a reader that hands each frame to
`receive`. No thread is held per stream. `receive` delivers envelopes in the
order the peer sent them, and `close()` tells the env exactly once.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from google.protobuf.message import DecodeError, Message

from rpcenv._address import RpcAddress
from rpcenv._errors import RpcError, RpcProtocolError
from rpcenv.grpc._framing import DecodedFrame, decode_frame, encode_frame
from rpcenv.grpc._loop import IoLoop
from rpcenv.grpc._outbox import Outbox, QueuedEnvelope
from sparkctl.v1 import rpc_pb2

__all__ = ["Connection"]

log = logging.getLogger(__name__)

_parse_frame = rpc_pb2.ConnectRequest.FromString

#: A frame this large is parsed off the loop: its copies (tens of ms at 64 MiB) would
#: stall every other stream meanwhile.
OFFLOAD_BYTES = 1 << 20


class Deliver(Protocol):
    """Hands envelopes from a peer to the env (on the loop), payloads maybe unpacked."""

    def __call__(
        self,
        peer: RpcAddress,
        envelopes: Iterable[rpc_pb2.Envelope],
        peer_id: str,
        app_id: str,
        messages: Sequence[Message | RpcProtocolError | None] | None = None,
    ) -> None: ...


class Connection:
    """The state of one stream: its outbox, whether the handshake is done."""

    def __init__(
        self,
        io: IoLoop,
        peer: RpcAddress,
        outbound: bool,
        deliver: Deliver,
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
        #: Frames of this stream on the decoder thread (loop only): later ones queue behind.
        self._decoding = 0
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

        A large one is parsed and unpacked on the decoder thread, and the frames that
        follow it from this peer wait behind it, so order holds.

        Raises:
            RpcProtocolError: a frame that does not parse.
        """
        if self._decoding or len(data) >= OFFLOAD_BYTES:
            self._decoding += 1
            self._io.offload(decode_frame, data, self._decoded)
            return
        try:
            frame = _parse_frame(data).frame
        except DecodeError as exc:
            raise RpcProtocolError(f"malformed frame from {self.peer}: {exc}") from None
        if frame.HasField("hello"):
            self._on_hello(self, frame.hello)
        if frame.envelopes:
            self._deliver(self.peer, frame.envelopes, self.peer_id, self.app_id)

    def _decoded(self, done: concurrent.futures.Future[DecodedFrame]) -> None:
        """Deliver a frame the decoder thread parsed (on the loop, in arrival order)."""
        self._decoding -= 1
        if self._closed:
            return
        try:
            frame = done.result()
        except RpcProtocolError as exc:
            error = RpcProtocolError(f"malformed frame from {self.peer}: {exc}")
            log.warning("closing the stream with %s: %s", self.peer, error)
            self.close(error)
            return
        except Exception as exc:  # a bug on our side: say so, and end only this stream
            log.exception("decoding a frame from %s failed", self.peer)
            self.close(RpcProtocolError(f"decoding a frame from {self.peer} failed: {exc!r}"))
            return
        if frame.hello is not None:
            self._on_hello(self, frame.hello)
        if frame.envelopes:
            self._deliver(self.peer, frame.envelopes, self.peer_id, self.app_id, frame.messages)

    def close(self, error: RpcError | None, drain: bool = False) -> None:
        """End the stream; the env hears of it once. With `drain`, queued frames go out first."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self.error = error
        leftover = self.outbox.close(drain=drain)
        self._on_close(self, leftover, error)
