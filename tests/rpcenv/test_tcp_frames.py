"""The tcp backend's FrameReader: whole envelopes, in order, whatever the pieces.

Records just under, at and over one read's size (`READ_CHUNK`) take different
paths (parsed from the buffer, or gathered a piece at a time); a burst of them
cut into arbitrary pieces must come out whole and in order either way.
"""

from __future__ import annotations

import random

import pytest

from rpcenv._errors import RpcProtocolError
from rpcenv.tcp._wire import READ_CHUNK, FrameReader, frame
from sparkctl.v1 import rpc_pb2


def _envelope(index: int, size: int) -> rpc_pb2.Envelope:
    envelope = rpc_pb2.Envelope(receiver=f"r{index}", request_id=index + 1)
    envelope.payload.type_url = "type.googleapis.com/test.Bytes"
    envelope.payload.value = bytes([index % 251]) * size
    return envelope


def _feed_in_pieces(reader: FrameReader, stream: bytes, seed: int) -> list[rpc_pb2.Envelope]:
    """Feed `stream` as a socket would deliver it: pieces no larger than `want()`."""
    rng = random.Random(seed)
    out: list[rpc_pb2.Envelope] = []
    pos = 0
    while pos < len(stream):
        size = min(reader.want(), rng.choice([1, 7, 4096, READ_CHUNK // 3, READ_CHUNK]))
        out.extend(reader.feed(stream[pos : pos + size]))
        reader.mark_waiting()
        pos += size
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_records_around_one_reads_size_come_out_whole_and_in_order(seed: int) -> None:
    sizes = [10, READ_CHUNK - 64, READ_CHUNK, READ_CHUNK + 1, 10, 3 * READ_CHUNK, 300, 5 << 20]
    sizes = sizes + [10] * 20 + list(reversed(sizes))
    envelopes = [_envelope(i, size) for i, size in enumerate(sizes)]
    stream = b"".join(frame(e.SerializeToString()) for e in envelopes)
    got = _feed_in_pieces(FrameReader(64 << 20), stream, seed)
    assert [e.request_id for e in got] == [e.request_id for e in envelopes]
    assert got == envelopes


def test_a_record_over_the_limit_is_refused() -> None:
    reader = FrameReader(1 << 10)
    with pytest.raises(RpcProtocolError, match="exceeds the limit"):
        reader.feed(frame(_envelope(0, 4 << 10).SerializeToString()))
