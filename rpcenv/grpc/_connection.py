"""One Connect stream with a peer, shared by every endpoint, in both directions.

The dialling side passes `frames()` as its request iterator and reads the
responses; the listening side returns `frames()` from its handler and reads the
requests on a thread of its own. Either way `read()` delivers envelopes in the
order the peer sent them, and `close()` tells the env exactly once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

from google.protobuf.message import DecodeError

from rpcenv._address import RpcAddress
from rpcenv._errors import RpcError, RpcProtocolError
from rpcenv.grpc._framing import encode_frame
from rpcenv.grpc._outbox import Outbox, QueuedEnvelope
from sparkctl.v1 import rpc_pb2

__all__ = ["Connection"]

log = logging.getLogger(__name__)


class Connection:
    """The state of one stream: its outbox, whether the handshake is done."""

    def __init__(
        self,
        peer: RpcAddress,
        outbound: bool,
        deliver: Callable[[RpcAddress, Iterable[rpc_pb2.Envelope]], None],
        on_hello: Callable[[Connection, rpc_pb2.PeerHello], None],
        on_close: Callable[[Connection, list[QueuedEnvelope], RpcError | None], None],
    ) -> None:
        self.peer = peer
        self.outbound = outbound
        self.outbox = Outbox()
        self.connected = False
        self.finished = threading.Event()
        self._deliver = deliver
        self._on_hello = on_hello
        self._on_close = on_close
        self._close_lock = threading.Lock()
        self._closed = False
        #: Why the stream ended, when it ended badly.
        self.error: RpcError | None = None

    def put(self, item: QueuedEnvelope) -> bool:
        """Queue a serialized envelope; False when the stream is closing."""
        return self.outbox.put(item)

    def frames(self, hello: bytes = b"") -> Iterator[bytes]:
        """Serialized frames to write: the hello (if any), then batches from the outbox."""
        if hello:
            yield encode_frame((), hello)
        take = self.outbox.take
        while True:
            items = take()
            if items is None:
                return
            yield encode_frame([item[0] for item in items])

    def read(self, frames: Iterable[bytes]) -> None:
        """Deliver every frame the peer sends until the stream ends.

        Raises:
            RpcProtocolError: a frame that does not parse.
        """
        parse = rpc_pb2.ConnectRequest.FromString
        deliver = self._deliver
        peer = self.peer
        for data in frames:
            try:
                frame = parse(data).frame
            except DecodeError as exc:
                raise RpcProtocolError(f"malformed frame from {peer}: {exc}") from None
            if frame.HasField("hello"):
                self._on_hello(self, frame.hello)
            if frame.envelopes:
                deliver(peer, frame.envelopes)

    def close(self, error: RpcError | None, drain: bool = False) -> None:
        """End the stream; the env hears of it once. With `drain`, queued frames go out first."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self.error = error
        leftover = self.outbox.close(drain=drain)
        try:
            self._on_close(self, leftover, error)
        finally:
            self.finished.set()
