"""Hand-rolled framing of envelope batches: a frame built with one copy, and a large
one read with few (see `decode_frame`).

`ConnectRequest` and `ConnectResponse` both hold a `Frame` in field 1, whose
field 2 repeats `Envelope`; so one byte layout serves both directions and
parses with the generated classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message

from rpcenv._codec import message_class
from rpcenv._errors import RpcProtocolError
from sparkctl.v1 import rpc_pb2

__all__ = ["DecodedFrame", "decode_frame", "encode_frame", "varint"]

_FRAME_TAG = b"\x0a"  # field 1, length-delimited
_ENVELOPE_TAG = b"\x12"  # field 2, length-delimited
_HELLO_TAG = b"\x0a"  # Frame.hello is field 1


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_frame(envelopes: Sequence[bytes], hello: bytes = b"") -> bytes:
    """A serialized Connect{Request,Response} carrying `envelopes` (already serialized)."""
    parts: list[bytes] = [b""]
    size = 0
    if hello:
        header = _HELLO_TAG + varint(len(hello))
        parts += (header, hello)
        size += len(header) + len(hello)
    for data in envelopes:
        header = _ENVELOPE_TAG + varint(len(data))
        parts += (header, data)
        size += len(header) + len(data)
    parts[0] = _FRAME_TAG + varint(size)
    return b"".join(parts)


#: An envelope at least this large is split by hand (`_decode_envelope`); smaller ones
#: parse faster whole, in C.
_SPLIT_ENVELOPE_BYTES = 64 << 10
#: Kinds whose payload is only ever read through `unpack`: it may be decoded apart.
_UNPACKED_KINDS = frozenset(
    {rpc_pb2.ENVELOPE_KIND_SEND, rpc_pb2.ENVELOPE_KIND_ASK, rpc_pb2.ENVELOPE_KIND_REPLY}
)
_PAYLOAD_TAG = 0x2A  # Envelope.payload: field 5, length-delimited
_KIND_TAG = 0x08  # Envelope.kind: field 1, varint


class _Unusual(Exception):
    """Bytes this hand-written reader does not follow: the generated parser takes them."""


@dataclasses.dataclass
class DecodedFrame:
    """A frame parsed off the I/O loop, its payloads already unpacked.

    `messages[i]` is the message of `envelopes[i]` (whose payload is then left
    empty), the error that unpacking it raised, or None when the receiver must
    unpack `envelopes[i].payload` itself.
    """

    hello: rpc_pb2.PeerHello | None
    envelopes: list[rpc_pb2.Envelope]
    messages: list[Message | RpcProtocolError | None]


def decode_frame(data: bytes) -> DecodedFrame:
    """Parse a serialized Connect{Request,Response} and unpack its payloads.

    For a large message this takes two copies of its bytes (into a `bytes`, and into
    the message), where the generated parsers took three (into the frame, out as
    `Any.value`, into the message), all on the I/O loop; this runs on the decoder
    thread (`IoLoop.offload`), each copy a GIL hold of its own.

    Raises:
        RpcProtocolError: bytes that do not parse.
    """
    view = memoryview(data)
    try:
        try:
            return _decode_by_hand(view)
        except _Unusual:
            frame = rpc_pb2.ConnectRequest.FromString(data).frame
    except DecodeError as exc:
        raise RpcProtocolError(f"malformed frame: {exc}") from None
    envelopes = list(frame.envelopes)
    return DecodedFrame(
        frame.hello if frame.HasField("hello") else None,
        envelopes,
        [None] * len(envelopes),
    )


def _varint(view: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            break
    raise _Unusual


def _decode_by_hand(view: memoryview) -> DecodedFrame:
    end = len(view)
    hello: rpc_pb2.PeerHello | None = None
    envelopes: list[rpc_pb2.Envelope] = []
    messages: list[Message | RpcProtocolError | None] = []
    pos = 0
    while pos < end:  # ConnectRequest: field 1, the Frame (repeats merge)
        tag, pos = _varint(view, pos, end)
        size, pos = _varint(view, pos, end)
        stop = pos + size
        if tag != ord(_FRAME_TAG) or stop > end:
            raise _Unusual
        while pos < stop:  # Frame: hello (1) and envelopes (2)
            tag, pos = _varint(view, pos, stop)
            size, pos = _varint(view, pos, stop)
            field_end = pos + size
            if field_end > stop:
                raise _Unusual
            if tag == ord(_HELLO_TAG):
                if hello is None:
                    hello = rpc_pb2.PeerHello()
                hello.MergeFromString(bytes(view[pos:field_end]))
            elif tag == ord(_ENVELOPE_TAG):
                if size >= _SPLIT_ENVELOPE_BYTES:
                    envelope, message = _decode_envelope(view, pos, field_end)
                else:
                    envelope = rpc_pb2.Envelope.FromString(bytes(view[pos:field_end]))
                    message = None
                envelopes.append(envelope)
                messages.append(message)
            else:
                raise _Unusual
            pos = field_end
    return DecodedFrame(hello, envelopes, messages)


def _decode_envelope(
    view: memoryview, start: int, stop: int
) -> tuple[rpc_pb2.Envelope, Message | RpcProtocolError | None]:
    """An envelope without its payload, and the payload's message parsed from its bytes."""
    kept: list[memoryview] = []
    payload: tuple[int, int] | None = None
    kind = 0
    pos = start
    while pos < stop:
        field_start = pos
        tag, pos = _varint(view, pos, stop)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(view, pos, stop)
            if tag == _KIND_TAG:
                kind = value
        elif wire == 2:
            size, pos = _varint(view, pos, stop)
            if tag == _PAYLOAD_TAG:
                if payload is not None:
                    raise _Unusual  # repeats merge: leave that to the generated parser
                payload = (pos, pos + size)
            pos += size
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Unusual
        if pos > stop:
            raise _Unusual
        if tag != _PAYLOAD_TAG:
            kept.append(view[field_start:pos])
    if payload is None or kind not in _UNPACKED_KINDS:
        return rpc_pb2.Envelope.FromString(bytes(view[start:stop])), None
    envelope = rpc_pb2.Envelope.FromString(b"".join(kept))
    return envelope, _unpack_any(view, *payload)


def _unpack_any(view: memoryview, start: int, stop: int) -> Message | RpcProtocolError:
    """The message of a serialized `Any`, as `rpcenv._codec.unpack` makes it."""
    type_url = b""
    value: tuple[int, int] | None = None
    pos = start
    while pos < stop:
        tag, pos = _varint(view, pos, stop)
        size, pos = _varint(view, pos, stop)
        if pos + size > stop or tag not in (0x0A, 0x12):
            raise _Unusual
        if tag == 0x0A:
            type_url = bytes(view[pos : pos + size])
        else:
            if value is not None:
                raise _Unusual
            value = (pos, pos + size)
        pos += size
    if not type_url:
        return empty_pb2.Empty()
    try:
        cls = message_class(type_url.decode())
    except UnicodeDecodeError:
        raise _Unusual from None
    except RpcProtocolError as exc:
        return exc
    message = cls()
    if value is not None:
        # Two C calls, each holding the GIL for one copy (the slice, then upb's own into
        # the message): the I/O loop gets a turn between them. Parsing the memoryview
        # makes the same two copies in one call.
        raw = bytes(view[value[0] : value[1]])
        try:
            message.ParseFromString(raw)
        except DecodeError as exc:
            return RpcProtocolError(f"malformed {cls.DESCRIPTOR.full_name}: {exc}")
    return message
