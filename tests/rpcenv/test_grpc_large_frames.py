"""Large frames of the gRPC backend: parsed off the I/O loop, with few copies, in order.

`decode_frame` must read exactly what the generated parsers read (it falls back to
them for any layout it does not follow), and a stream whose large frame is on the
decoder thread must still deliver everything in the order the peer sent it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from google.protobuf import empty_pb2, wrappers_pb2
from google.protobuf.message import Message

from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv, RpcProtocolError
from rpcenv._codec import pack, unpack
from rpcenv.grpc import _connection
from rpcenv.grpc._framing import decode_frame, encode_frame, varint
from sparkctl.v1 import rpc_pb2

WAIT = 20.0
BIG = 256 << 10  # above _SPLIT_ENVELOPE_BYTES: split by hand


def _envelope(
    kind: rpc_pb2.EnvelopeKind.ValueType, message: Message, request_id: int = 0
) -> rpc_pb2.Envelope:
    envelope = rpc_pb2.Envelope(kind=kind, receiver="sink", sender="src", request_id=request_id)
    pack(message, 1 << 30, envelope.payload)
    return envelope


def _frame(envelopes: list[rpc_pb2.Envelope], hello: rpc_pb2.PeerHello | None = None) -> bytes:
    return encode_frame(
        [e.SerializeToString() for e in envelopes],
        hello.SerializeToString() if hello is not None else b"",
    )


def test_decode_frame_reads_what_the_generated_parser_reads() -> None:
    big = wrappers_pb2.BytesValue(value=b"\x01\x02" * BIG)
    envelopes = [
        _envelope(rpc_pb2.ENVELOPE_KIND_SEND, wrappers_pb2.StringValue(value="small")),
        _envelope(rpc_pb2.ENVELOPE_KIND_ASK, big, request_id=7),
        _envelope(rpc_pb2.ENVELOPE_KIND_REPLY, big, request_id=9),
        _envelope(rpc_pb2.ENVELOPE_KIND_SEND, empty_pb2.Empty()),
        rpc_pb2.Envelope(kind=rpc_pb2.ENVELOPE_KIND_SEND, receiver="sink"),  # no payload
    ]
    failure = rpc_pb2.Envelope(kind=rpc_pb2.ENVELOPE_KIND_FAILURE, request_id=3)
    failure.error.type = "ValueError"
    failure.error.message = "x" * BIG
    envelopes.append(failure)
    hello = rpc_pb2.PeerHello(env_id="e", name="n", host="h", port=5)
    data = _frame(envelopes, hello)
    expected = rpc_pb2.ConnectRequest.FromString(data).frame

    decoded = decode_frame(data)

    assert decoded.hello == expected.hello
    assert len(decoded.envelopes) == len(expected.envelopes) == len(decoded.messages)
    for got, message, want in zip(
        decoded.envelopes, decoded.messages, expected.envelopes, strict=True
    ):
        for field in ("kind", "receiver", "sender", "request_id", "error"):
            assert getattr(got, field) == getattr(want, field), field
        if want.kind == rpc_pb2.ENVELOPE_KIND_FAILURE:
            continue
        assert (message if message is not None else unpack(got.payload)) == unpack(want.payload)
    # The large payloads were unpacked on the decoder's side, not left for the loop.
    assert decoded.messages[1] == big and decoded.messages[2] == big


def test_a_layout_it_does_not_follow_goes_to_the_generated_parser() -> None:
    envelope = _envelope(rpc_pb2.ENVELOPE_KIND_SEND, wrappers_pb2.BytesValue(value=b"y" * BIG))
    body = envelope.SerializeToString()
    # The payload twice (protobuf merges repeats), and an unknown field in the frame.
    doubled = rpc_pb2.Envelope()
    doubled.payload.type_url = envelope.payload.type_url
    body += doubled.SerializeToString()
    frame_body = b"\x12" + varint(len(body)) + body + b"\x18\x01"
    data = b"\x0a" + varint(len(frame_body)) + frame_body
    expected = rpc_pb2.ConnectRequest.FromString(data).frame

    decoded = decode_frame(data)

    assert list(decoded.envelopes) == list(expected.envelopes)
    assert decoded.messages == [None]


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05\x12\x03\xff\xff",  # an envelope cut short
        b"\x0a\xff\xff\xff\xff\x0f",  # a frame longer than the bytes
    ],
)
def test_malformed_bytes_raise_a_protocol_error(data: bytes) -> None:
    with pytest.raises(RpcProtocolError, match="malformed frame"):
        decode_frame(data)


def test_an_unknown_payload_type_fails_that_message_only() -> None:
    envelope = rpc_pb2.Envelope(kind=rpc_pb2.ENVELOPE_KIND_SEND, receiver="sink")
    envelope.payload.type_url = "type.googleapis.com/no.such.Type"
    envelope.payload.value = b"z" * BIG
    ok = _envelope(rpc_pb2.ENVELOPE_KIND_SEND, wrappers_pb2.StringValue(value="ok"))
    decoded = decode_frame(_frame([envelope, ok]))
    assert isinstance(decoded.messages[0], RpcProtocolError)
    assert "no.such.Type" in str(decoded.messages[0])
    assert unpack(decoded.envelopes[1].payload) == wrappers_pb2.StringValue(value="ok")


class _Recorder(RpcEndpoint):
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def receive(self, message: Message, sender: object) -> None:
        assert isinstance(message, wrappers_pb2.BytesValue)
        with self.lock:
            self.seen.append((message.value[:8].decode(), len(message.value)))

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


@pytest.fixture
def pair(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RpcEnv, RpcEnv, _Recorder]]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    # Small frames go off the loop too here, so that the test's traffic mixes both paths.
    monkeypatch.setattr(_connection, "OFFLOAD_BYTES", 64 << 10)
    conf = {"spark.rpc.backend": "grpc"}
    server = RpcEnv.create("large-server", "127.0.0.1", 0, conf)
    recorder = _Recorder()
    server.setup_endpoint("sink", recorder)
    client = RpcEnv.create("large-client", "127.0.0.1", 0, conf, client_mode=True)
    yield server, client, recorder
    client.shutdown()
    server.shutdown()


def test_messages_keep_their_order_around_a_large_one(
    pair: tuple[RpcEnv, RpcEnv, _Recorder],
) -> None:
    server, client, recorder = pair
    ref = client.endpoint_ref(server.address, "sink", timeout=WAIT)
    sizes = [10, 3 << 20, 10, 10, 200 << 10, 10, 2 << 20, 10] * 3
    for n, size in enumerate(sizes):
        tag = f"{n:08d}".encode()
        ref.send(wrappers_pb2.BytesValue(value=tag + b"." * (size - len(tag))))
    deadline = time.monotonic() + WAIT
    while len(recorder.seen) < len(sizes) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert recorder.seen == [(f"{n:08d}", size) for n, size in enumerate(sizes)]


def test_a_large_ask_and_its_large_reply_arrive_whole(
    pair: tuple[RpcEnv, RpcEnv, _Recorder],
) -> None:
    server, client, _ = pair
    ref = client.endpoint_ref(server.address, "sink", timeout=WAIT)
    payload = wrappers_pb2.BytesValue(value=bytes(range(256)) * (16 << 10))  # 4 MiB
    assert ref.ask_sync(payload, WAIT) == payload
