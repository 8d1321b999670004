"""Hand-rolled framing of envelope batches, to build a frame with one copy.

`ConnectRequest` and `ConnectResponse` both hold a `Frame` in field 1, whose
field 2 repeats `Envelope`; so one byte layout serves both directions and
parses with the generated classes.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["encode_frame", "varint"]

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
