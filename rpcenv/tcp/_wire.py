"""The tcp backend's wire format: length-prefixed records, the handshake, parsing.

Every record is a 4-byte big-endian length and its bytes. The first record each
way is the handshake (JSON: env id, name, advertised host and port, token; the
answer: env id, or the refusal's reason); every later record is one serialized
`Envelope`. This module only turns bytes into records and records into bytes:
it never touches a socket the I/O loop serves (the dialler's blocking handshake
is the one exception, `send_record` and `recv_record`).
"""

from __future__ import annotations

import json
import socket
import struct
import time

from rpcenv._errors import RpcProtocolError
from sparkctl.v1 import rpc_pb2

__all__ = [
    "HEADER",
    "MAX_HELLO",
    "OVERHEAD",
    "READ_CHUNK",
    "RECV_PIECE",
    "FrameReader",
    "frame",
    "parse_hello",
    "recv_record",
    "send_record",
]

HEADER = struct.Struct(">I")
#: Room for the envelope's own fields above spark.rpc.message.maxSize.
OVERHEAD = 1 << 20
#: The largest handshake record a peer may send.
MAX_HELLO = 64 << 10
#: Bytes one recv asks for: a burst of small envelopes arrives in one call. Kept
#: under glibc's mmap threshold (128 KiB): `recv(n)` allocates n bytes and shrinks
#: them to what came, and at 256 KiB that was an mmap, an mremap and an munmap per
#: read, ~18 µs for a small envelope (~3 µs at 64 KiB); larger records are gathered
#: a piece at a time anyway.
READ_CHUNK = 64 << 10
#: Bytes a large record's receive takes at a time (see `FrameReader`).
RECV_PIECE = 4 << 20

_parse_envelope = rpc_pb2.Envelope.FromString


def frame(data: bytes) -> bytes:
    """`data` as one record."""
    return HEADER.pack(len(data)) + data


class FrameReader:
    """Whole envelopes out of a connection's bytes, as they come, in any pieces.

    A record larger than one read is gathered a piece at a time, memory taken as
    its bytes arrive: a peer that announces a large record and sends little of it
    costs little (a preallocated buffer per such connection could exhaust memory).
    It also keeps how long the record begun last has waited for its bytes: only
    time between our reads counts, not our handling of what came before, so a busy
    reader never condemns its peer (`waited`).
    """

    __slots__ = ("_limit", "_missing", "_pending", "_pieces", "_since", "_waited")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = b""
        #: The large record being gathered (its body's pieces) and the bytes it still needs.
        self._pieces: list[bytes] | None = None
        self._missing = 0
        #: Seconds the record begun in the buffer waited before `_since`, and since when
        #: (monotonic) it waits now; `_since` is None when no record is begun.
        self._waited = 0.0
        self._since: float | None = None

    def want(self) -> int:
        """How many bytes the next recv should ask for."""
        if self._pieces is not None:
            return min(self._missing, RECV_PIECE)
        return READ_CHUNK

    def feed(self, chunk: bytes) -> list[rpc_pb2.Envelope]:
        """The envelopes `chunk` completes, in order.

        Raises:
            RpcProtocolError: a record over the limit, or one that does not parse.
        """
        if self._since is not None:
            self._waited += time.monotonic() - self._since
            self._since = None
        if self._pieces is not None:
            self._pieces.append(chunk)
            self._missing -= len(chunk)
            if self._missing > 0:
                return []
            body = b"".join(self._pieces)
            self._pieces = None
            self._waited = 0.0
            return [_decode(body)]
        data = self._pending + chunk if self._pending else chunk
        envelopes: list[rpc_pb2.Envelope] = []
        view = memoryview(data)
        end = len(data)
        pos = 0
        header = HEADER.size
        limit = self._limit
        while end - pos >= header:
            (size,) = HEADER.unpack_from(view, pos)
            if size > limit:
                raise RpcProtocolError(f"a message of {size} bytes exceeds the limit of {limit}")
            if end - pos - header < size:
                if size > READ_CHUNK:  # a large one: gather the rest a piece at a time
                    self._pieces = [bytes(view[pos + header :])]
                    self._missing = size - (end - pos - header)
                    self._pending = b""
                    if pos:
                        self._waited = 0.0
                    return envelopes
                break
            envelopes.append(_decode(view[pos + header : pos + header + size]))
            pos += header + size
        self._pending = bytes(view[pos:]) if pos < end else b""
        if pos or not self._pending:
            self._waited = 0.0  # what is left, if anything, is a record begun now
        return envelopes

    def mark_waiting(self) -> None:
        """Our handling of the last bytes is over: a begun record waits for its peer now."""
        if self._pieces is not None or self._pending:
            self._since = time.monotonic()

    def stalled_for(self, now: float) -> float:
        """Seconds the begun record has waited for its bytes, in all (0.0 if none is)."""
        since = self._since
        return 0.0 if since is None else self._waited + now - since


def _decode(body: bytes | memoryview) -> rpc_pb2.Envelope:
    try:
        return _parse_envelope(bytes(body) if isinstance(body, memoryview) else body)
    except Exception as exc:  # DecodeError
        raise RpcProtocolError(f"a malformed message: {exc}") from None


def send_record(sock: socket.socket, data: bytes) -> None:
    """Send one record on a blocking socket (the dialler's handshake)."""
    sock.sendall(frame(data))


def recv_record(sock: socket.socket, limit: int) -> bytes:
    """One record from a blocking socket (the dialler's handshake).

    Raises:
        EOFError: the peer closed it first.
        RpcProtocolError: the record is over `limit`.
    """
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    if size > limit:
        raise RpcProtocolError(f"a record of {size} bytes exceeds the limit of {limit}")
    return _recv_exact(sock, size)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    pieces: list[bytes] = []
    missing = size
    while missing:
        piece = sock.recv(min(missing, RECV_PIECE))
        if not piece:
            raise EOFError("connection closed")
        pieces.append(piece)
        missing -= len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def parse_hello(data: bytes) -> tuple[str, str, int, str | None]:
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


def _plain(text: str, limit: int) -> bool:
    """Non-empty, at most `limit` characters, printable and without whitespace."""
    return 0 < len(text) <= limit and text.isprintable() and not any(c.isspace() for c in text)
