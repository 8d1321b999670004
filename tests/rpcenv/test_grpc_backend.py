"""gRPC-only behaviour: killed peers, health, reflection, bind safety, hostile bytes."""

from __future__ import annotations

import errno
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cluster.testing import wait_until
from rpcenv import (
    RpcAddress,
    RpcCallContext,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpoint,
    RpcEnv,
)
from sparkctl.v1 import rpc_pb2

HERE = Path(__file__).parent


class Events(RpcEndpoint):
    def __init__(self) -> None:
        self.connected: list[RpcAddress] = []
        self.disconnected: list[RpcAddress] = []

    def on_connected(self, address: RpcAddress) -> None:
        self.connected.append(address)

    def on_disconnected(self, address: RpcAddress) -> None:
        self.disconnected.append(address)

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.StringValue(value="pong"))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RpcEnv]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    env = RpcEnv.create("server", "127.0.0.1", 0, {})
    yield env
    env.shutdown()


def test_sigkilled_peer_is_seen_within_two_seconds(server: RpcEnv) -> None:
    events = Events()
    server.setup_endpoint("echo", events)
    child = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_peer_process.py"),
            f"spark://echo@{server.address.host_port}",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        wait_until(lambda: events.connected, 5.0, "on_connected")
        child.kill()
        started = time.monotonic()
        wait_until(lambda: events.disconnected, 2.0, "on_disconnected within 2 s of SIGKILL")
        assert time.monotonic() - started <= 2.0
        assert events.disconnected[0] == events.connected[0]
    finally:
        child.kill()
        child.wait(10)


def test_health_and_reflection_are_served(server: RpcEnv) -> None:
    with grpc.insecure_channel(server.address.host_port) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in response.list_services_response.service}
        assert {"sparkctl.v1.RpcService", "grpc.health.v1.Health"} <= names


def test_refuses_non_loopback_bind_without_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    with pytest.raises(RpcConfigError, match="SPARKCTL_SECRET"):
        RpcEnv.create("exposed", "0.0.0.0", 0, {})


def test_insecure_opt_in_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    with caplog.at_level(logging.WARNING):
        env = RpcEnv.create("exposed", "0.0.0.0", 0, {"spark.rpc.allowInsecure": "true"})
    env.shutdown()
    assert any("SECURITY WARNING" in r.getMessage() for r in caplog.records)


def test_secret_from_environment_allows_wide_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKCTL_SECRET", "s3cret-value")
    env = RpcEnv.create("exposed", "0.0.0.0", 0, {})
    try:
        assert env.address.port > 0
    finally:
        env.shutdown()


def _still_serves(server: RpcEnv) -> None:
    client = RpcEnv.create("client", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = client.endpoint_ref(server.address, "echo", timeout=5)
        assert ref.ask_sync(wrappers_pb2.StringValue(value="x"), 5).value == "pong"  # type: ignore[attr-defined]
    finally:
        client.shutdown()


def _raw_exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(2)
        try:
            return sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            return b""


def test_random_bytes_and_http1_do_not_wedge_the_server(server: RpcEnv) -> None:
    server.setup_endpoint("echo", Events())
    _raw_exchange(server.address.port, os.urandom(4096))
    _raw_exchange(server.address.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _raw_exchange(server.address.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512))
    _still_serves(server)


def test_malformed_frame_closes_only_that_stream(server: RpcEnv) -> None:
    events = Events()
    server.setup_endpoint("echo", events)
    with grpc.insecure_channel(server.address.host_port) as channel:
        call = channel.stream_stream("/sparkctl.v1.RpcService/Connect")
        garbage = [b"\x0a\x05\xff\xff\xff\xff\xff", b"\x12\x03abc"]
        metadata = [("x-sparkctl-peer", "abcd;bad;127.0.0.1;0")]
        with pytest.raises(grpc.RpcError):
            for _ in call(iter(garbage), metadata=metadata, timeout=5):
                pass
        missing_peer = channel.stream_stream("/sparkctl.v1.RpcService/Connect")
        with pytest.raises(grpc.RpcError) as info:
            for _ in missing_peer(iter([b""]), timeout=5):
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _still_serves(server)


def test_envelope_of_unknown_type_fails_that_ask_only(server: RpcEnv) -> None:
    server.setup_endpoint("echo", Events())
    envelope = rpc_pb2.Envelope(kind=rpc_pb2.ENVELOPE_KIND_ASK, receiver="echo", request_id=7)
    envelope.payload.type_url = "type.googleapis.com/no.such.Type"
    envelope.payload.value = b"\x01\x02"
    request = rpc_pb2.ConnectRequest(frame=rpc_pb2.Frame(envelopes=[envelope]))
    with grpc.insecure_channel(server.address.host_port) as channel:
        call = channel.stream_stream("/sparkctl.v1.RpcService/Connect")
        done = threading.Event()

        def requests() -> Iterator[bytes]:
            yield request.SerializeToString()
            done.wait(5)

        answers = call(
            requests(), metadata=[("x-sparkctl-peer", "ff00;probe;127.0.0.1;0")], timeout=5
        )
        failure = None
        for data in answers:
            frame = rpc_pb2.ConnectResponse.FromString(data).frame
            for item in frame.envelopes:
                if item.request_id == 7:
                    failure = item
            if failure is not None:
                break
        done.set()
    assert failure is not None and failure.kind == rpc_pb2.ENVELOPE_KIND_FAILURE
    assert "no.such.Type" in failure.error.message
    _still_serves(server)


def test_idle_connection_survives_frequent_keepalive_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    conf = {"spark.rpc.keepalive.interval": "100ms"}
    server = RpcEnv.create("server", "127.0.0.1", 0, conf)
    client = RpcEnv.create("client", "127.0.0.1", 0, conf, client_mode=True)
    events = Events()
    server.setup_endpoint("echo", events)
    try:
        ref = client.endpoint_ref(server.address, "echo", timeout=5)
        time.sleep(2.5)  # idle: only keepalive pings cross the connection
        assert events.disconnected == [], "keepalive pings closed an idle connection"
        assert ref.ask_sync(wrappers_pb2.StringValue(value="x"), 5).value == "pong"  # type: ignore[attr-defined]
        assert len(events.connected) == 1, "the connection was re-established"
    finally:
        client.shutdown()
        server.shutdown()


def _start_slow_server(port: int = 0) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_slow_server.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )
    assert child.stdout is not None
    return child, int(child.stdout.readline())


def test_ask_in_flight_fails_fast_when_the_peer_dies_and_a_restarted_peer_is_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rpcenv import RpcConnectionError, RpcEndpointNotFoundError

    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    client = RpcEnv.create("client", "127.0.0.1", 0, {}, client_mode=True)
    child, port = _start_slow_server()
    restarted: subprocess.Popen[str] | None = None
    try:
        ref = client.endpoint_ref(RpcAddress("127.0.0.1", port), "stuck", timeout=10)
        future = ref.ask(wrappers_pb2.StringValue(value="never answered"), 60)
        time.sleep(0.2)
        child.kill()
        started = time.monotonic()
        with pytest.raises(RpcConnectionError):
            future.result(10)
        assert time.monotonic() - started < 2.0
        child.wait(10)
        restarted, same_port = _start_slow_server(port)
        assert same_port == port
        again = client.endpoint_ref(RpcAddress("127.0.0.1", port), "stuck", timeout=10)
        assert again.name == "stuck"
        with pytest.raises(RpcEndpointNotFoundError):
            client.endpoint_ref(RpcAddress("127.0.0.1", port), "gone", timeout=10)
    finally:
        for proc in (child, restarted):
            if proc is not None:
                proc.kill()
                proc.wait(10)
        client.shutdown()


def test_a_taken_port_is_an_oserror_naming_it() -> None:
    # grpcio raised a bare RuntimeError("Failed to bind ... set GRPC_VERBOSITY=debug").
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            RpcEnv.create("late", "127.0.0.1", port, {})
        assert info.value.errno == errno.EADDRINUSE


def test_a_message_size_limit_beyond_grpcs_int32_is_a_config_error() -> None:
    # 2048 MiB overflowed gRPC's options: every dial failed in its thread and asks timed
    # out; 2047 (Spark's largest) raised OverflowError from grpc.server().
    with pytest.raises(RpcConfigError, match=r"spark\.rpc\.message\.maxSize: .*1m\.\.2047m"):
        RpcEnv.create("big", "127.0.0.1", 0, {"spark.rpc.message.maxSize": "2048"})
    env = RpcEnv.create("big", "127.0.0.1", 0, {"spark.rpc.message.maxSize": "2047"})
    env.shutdown()


def test_a_channel_that_cannot_be_made_fails_the_dial_at_once(
    server: RpcEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made outside the try, its exception killed the dialling thread silently: the
    # connection stayed open and every ask on it waited out its timeout.
    import grpc.aio

    def broken(*_args: object, **_kwargs: object) -> grpc.aio.Channel:
        raise ValueError("bad channel argument")

    monkeypatch.setattr(grpc.aio, "insecure_channel", broken)  # what the backend dials with
    client = RpcEnv.create("c", "127.0.0.1", 0, {}, client_mode=True)
    try:
        started = time.monotonic()
        with pytest.raises(RpcConnectionError, match="bad channel argument"):
            client.endpoint_ref(server.address, "endpoint-verifier", timeout=20)
        assert time.monotonic() - started < 5
    finally:
        client.shutdown()
