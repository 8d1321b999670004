"""The gRPC transport's costs and hygiene: streams hold no thread, idle sockets close.

Each test starts its own server and bounds every wait; figures (thread counts,
close times) are printed for the log, and asserted only with wide margins.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from rpcenv import RpcAddress, RpcCallContext, RpcConfigError, RpcEndpoint, RpcEnv
from rpcenv.grpc.testing import IdlePeerStreams

HERE = Path(__file__).parent
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


class Echo(RpcEndpoint):
    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.StringValue(value="pong"))


class SlowEcho(RpcEndpoint):
    """Answers after a pause, so a callback added right after an ask runs on the I/O loop."""

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        time.sleep(0.3)
        context.reply(wrappers_pb2.StringValue(value="pong"))


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _ask_time(address: RpcAddress) -> float:
    client = RpcEnv.create("probe", "127.0.0.1", 0, {}, client_mode=True)
    try:
        started = time.monotonic()
        ref = client.endpoint_ref(address, "echo", timeout=10)
        answer = ref.ask_sync(wrappers_pb2.StringValue(value="x"), 10)
        assert answer.value == "pong"  # type: ignore[attr-defined]
        return time.monotonic() - started
    finally:
        client.shutdown()


@pytest.fixture
def echo_server_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, int]]:
    """(pid, port) of a child process serving the `echo` endpoint."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_echo_server.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )
    try:
        assert child.stdout is not None
        yield child.pid, int(child.stdout.readline())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def test_five_hundred_streams_cost_the_server_no_thread(
    echo_server_process: tuple[int, int],
) -> None:
    pid, port = echo_server_process
    _raise_fd_limit(2048)
    assert _ask_time(RpcAddress("127.0.0.1", port)) < 5.0  # warm: pools and loop up
    before = _threads_of(pid)
    with IdlePeerStreams(f"127.0.0.1:{port}", 500) as streams:
        started = time.monotonic()
        streams.open(timeout=60)
        opened = time.monotonic() - started
        during = _threads_of(pid)
        ask = _ask_time(RpcAddress("127.0.0.1", port))
        assert streams.open_streams == 500, streams.endings[:5]
    print(f"server threads: {before} idle, {during} with 500 streams (opened in {opened:.2f}s)")
    print(f"an ask with 500 streams open took {ask * 1000:.1f} ms")
    assert during <= before + 2, f"{during - before} more server threads for 500 streams"
    assert ask < 1.0


@pytest.fixture
def hygienic_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[RpcEnv]:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    env = RpcEnv.create("server", "127.0.0.1", 0, {"spark.rpc.io.connectionTimeout": "1s"})
    env.setup_endpoint("echo", Echo())
    yield env
    env.shutdown()


def _seconds_until_closed(port: int, payload: bytes, limit: float) -> float:
    """How long the server keeps a raw connection that sends `payload` and then nothing."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(payload)
        started = time.monotonic()
        try:
            while sock.recv(4096):
                pass  # the server's SETTINGS, then GOAWAY
        except TimeoutError:
            return float("inf")
        except ConnectionResetError:
            pass
        return time.monotonic() - started


@pytest.mark.parametrize(
    "payload",
    [b"", PREFACE + EMPTY_SETTINGS],
    ids=["silent-socket", "http2-without-a-call"],
)
def test_an_idle_connection_that_never_opens_a_call_is_closed(
    hygienic_server: RpcEnv, payload: bytes
) -> None:
    held = _seconds_until_closed(hygienic_server.address.port, payload, limit=10.0)
    print(f"closed after {held:.2f}s (spark.rpc.io.connectionTimeout=1s)")
    assert held < 5.0


def test_a_connection_refused_for_its_token_is_closed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKCTL_SECRET", "the-cluster-secret")
    env = RpcEnv.create("server", "127.0.0.1", 0, {"spark.rpc.io.connectionTimeout": "1s"})
    try:

        async def intrude() -> tuple[grpc.StatusCode, float]:
            channel = grpc.aio.insecure_channel(env.address.host_port)
            try:
                call = channel.stream_stream("/sparkctl.v1.RpcService/Connect")(
                    metadata=[("x-sparkctl-peer", "beef;intruder;127.0.0.1;0")]
                )
                with pytest.raises(grpc.RpcError) as info:
                    await call.read()
                await channel.channel_ready()
                started = time.monotonic()
                state = channel.get_state()
                while state == grpc.ChannelConnectivity.READY:
                    await channel.wait_for_state_change(state)
                    state = channel.get_state()
                return info.value.code(), time.monotonic() - started
            finally:
                await channel.close()

        code, held = asyncio.run(asyncio.wait_for(intrude(), 15))
        print(f"refused with {code.name}; connection closed {held:.2f}s later")
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert held < 5.0
    finally:
        env.shutdown()


def test_a_flood_of_idle_sockets_does_not_starve_peers(hygienic_server: RpcEnv) -> None:
    _raise_fd_limit(1024)
    port = hygienic_server.address.port
    flood = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(300)]
    try:
        ask = _ask_time(hygienic_server.address)
        print(f"an ask beside 300 silent sockets took {ask * 1000:.1f} ms")
        assert ask < 1.0
    finally:
        for sock in flood:
            sock.close()


def test_a_ping_flood_gets_goaway_too_many_pings(hygienic_server: RpcEnv) -> None:
    async def flood() -> grpc.RpcError:
        options = [
            ("grpc.keepalive_time_ms", 200),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
        channel = grpc.aio.insecure_channel(hygienic_server.address.host_port, options)
        try:
            call = channel.stream_stream("/sparkctl.v1.RpcService/Connect")(
                metadata=[("x-sparkctl-peer", "cafe;pinger;127.0.0.1;0")]
            )
            try:
                while await call.read() is not grpc.aio.EOF:
                    pass
            except grpc.RpcError as exc:
                return exc
            raise AssertionError("the stream ended cleanly under a ping flood")
        finally:
            await channel.close()

    error = asyncio.run(asyncio.wait_for(flood(), 20))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "ping" in (error.details() or "").lower()
    _ask_time(hygienic_server.address)  # the server itself is fine


def test_blocked_public_handlers_stall_neither_streams_nor_other_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from google.protobuf import message_factory

    from sparkctl.v1 import master_service_pb2 as api

    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    service = api.DESCRIPTOR.services_by_name["MasterService"]
    release = threading.Event()

    def answer(method_name: str, output: type[Message]) -> object:
        def handler(_request: Message) -> Message:
            if method_name == "GetClusterState":
                release.wait(20)  # as a handler waiting on a busy endpoint
            return output()

        return handler

    implementation = types.SimpleNamespace(
        **{
            m.name: answer(m.name, message_factory.GetMessageClass(m.output_type))
            for m in service.methods
        }
    )
    env = RpcEnv.create("server", "127.0.0.1", 0, {"spark.rpc.io.serverThreads": "4"})
    env.setup_endpoint("echo", Echo())
    env.serve_service(service, implementation)
    try:
        with grpc.insecure_channel(env.address.host_port) as channel:
            stuck = channel.unary_unary(
                "/sparkctl.v1.MasterService/GetClusterState",
                request_serializer=api.GetClusterStateRequest.SerializeToString,
                response_deserializer=api.GetClusterStateResponse.FromString,
            )
            blocked = [stuck.future(api.GetClusterStateRequest(), timeout=30) for _ in range(3)]
            time.sleep(0.3)  # three of the four handler threads now wait
            assert _ask_time(env.address) < 1.0
            status = channel.unary_unary(
                "/sparkctl.v1.MasterService/GetDriverStatus",
                request_serializer=api.GetDriverStatusRequest.SerializeToString,
                response_deserializer=api.GetDriverStatusResponse.FromString,
            )
            started = time.monotonic()
            status(api.GetDriverStatusRequest(driver_id="d"), timeout=5)
            assert time.monotonic() - started < 1.0
            assert not any(f.done() for f in blocked)
            release.set()
            for future in blocked:
                future.result(timeout=10)
    finally:
        release.set()
        env.shutdown()


def test_a_flood_of_refused_calls_is_logged_once_a_second(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SPARKCTL_SECRET", "the-cluster-secret")
    env = RpcEnv.create("server", "127.0.0.1", 0, {})
    try:
        with caplog.at_level(logging.WARNING), grpc.insecure_channel(env.address.host_port) as ch:
            call = ch.unary_unary("/grpc.reflection.v1alpha.ServerReflection/Nope")
            codes = set()
            for _ in range(50):
                with pytest.raises(grpc.RpcError) as info:
                    call(b"", timeout=5)
                codes.add(info.value.code())
        assert codes == {grpc.StatusCode.UNAUTHENTICATED}
        logged = [r for r in caplog.records if "rejected unauthenticated" in r.getMessage()]
        print(f"50 refused calls, {len(logged)} log lines")
        assert 1 <= len(logged) <= 3
    finally:
        env.shutdown()


def test_waiting_inside_an_ask_callback_fails_clearly_and_shutdown_there_works(
    hygienic_server: RpcEnv,
) -> None:
    # Answers complete their futures on the I/O loop: a callback that waited there for
    # another answer would wait forever, since the loop is what would read it.
    hygienic_server.setup_endpoint("slow", SlowEcho())
    client = RpcEnv.create("client", "127.0.0.1", 0, {}, client_mode=True)
    ref = client.endpoint_ref(hygienic_server.address, "slow", timeout=10)
    seen: list[BaseException | str] = []
    done = threading.Event()

    def callback(_future: object) -> None:
        try:
            ref.ask_sync(wrappers_pb2.StringValue(value="again"), 5)
            seen.append("no error")
        except RuntimeError as exc:
            seen.append(exc)
        client.shutdown()  # must not raise nor hang here
        done.set()

    ref.ask(wrappers_pb2.StringValue(value="x"), 5).add_done_callback(callback)
    assert done.wait(10)
    assert isinstance(seen[0], RuntimeError) and "deadlock" in str(seen[0])
    assert client.await_termination(10)
    assert _ask_time(hygienic_server.address) < 1.0


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("spark.rpc.io.connectionTimeout", "0s", r"connectionTimeout: expected .*> 0s.*'0s'"),
        ("spark.rpc.io.connectionTimeout", "soon", "spark.rpc.io.connectionTimeout"),
        ("spark.rpc.keepalive.interval", "0ms", r"keepalive\.interval: expected .*> 0s.*'0ms'"),
    ],
)
def test_bad_transport_settings_fail_create_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, match: str
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    with pytest.raises((RpcConfigError, ValueError), match=match):
        RpcEnv.create("bad", "127.0.0.1", 0, {key: value})
