"""The RpcEnv conformance suite: every backend must pass it unchanged.

A backend author calls `check_rpc_env(make_env)`, or parametrizes a test over
`CHECKS`, where `make_env(name, client_mode=False, conf=None)` creates an env of
the backend on 127.0.0.1. Each check cleans up the envs it made, bounds every
wait, and raises AssertionError naming what broke.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from google.protobuf import empty_pb2, wrappers_pb2
from google.protobuf.message import Message

from rpcenv._address import RpcAddress
from rpcenv._core import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv._dispatcher import current_origin
from rpcenv._errors import (
    RpcAuthenticationError,
    RpcConnectionError,
    RpcEndpointNotFoundError,
    RpcEndpointStoppedError,
    RpcMessageTooLargeError,
    RpcPermissionDeniedError,
    RpcRemoteError,
    RpcTimeoutError,
)
from rpcenv._senders import ANYONE, LOCAL_ONLY, MessageOrigin, SenderPolicy

__all__ = [
    "CHECKS",
    "EnvFactory",
    "check_any_message_type",
    "check_ask_and_timeout",
    "check_auth",
    "check_client_mode",
    "check_connection_events",
    "check_default_maximum",
    "check_disconnect",
    "check_large_messages",
    "check_lifecycle",
    "check_lookup_missing",
    "check_ordering",
    "check_remote_failure",
    "check_rpc_env",
    "check_sender_policy",
    "check_sender_ref",
]

WAIT = 10.0  # upper bound of every wait in the suite, seconds


class EnvFactory(Protocol):
    """Makes an env of the backend under test on 127.0.0.1."""

    def __call__(
        self, name: str, client_mode: bool = False, conf: Mapping[str, str] | None = None
    ) -> RpcEnv: ...


@contextmanager
def _envs(make_env: EnvFactory) -> Iterator[Callable[..., RpcEnv]]:
    made: list[RpcEnv] = []

    def make(name: str, client_mode: bool = False, conf: Mapping[str, str] | None = None) -> RpcEnv:
        env = make_env(name, client_mode=client_mode, conf=conf)
        made.append(env)
        return env

    try:
        yield make
    finally:
        for env in reversed(made):
            env.shutdown()


def _echo(ref: RpcEndpointRef, text: str, timeout: float = WAIT) -> str:
    answer = ref.ask_sync(wrappers_pb2.StringValue(value=text), timeout)
    assert isinstance(answer, wrappers_pb2.StringValue), answer
    return answer.value


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


class _Recorder(RpcEndpoint):
    """Records every hook call; answers asks by echoing StringValue."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.lock = threading.Lock()
        self.senders: list[RpcEndpointRef | None] = []
        self.errors: list[BaseException] = []
        self.asks = 0
        self.delay = 0.0

    def _log(self, kind: str, value: object) -> None:
        with self.lock:
            self.events.append((kind, value))

    def kinds(self) -> list[str]:
        with self.lock:
            return [kind for kind, _ in self.events]

    def values(self, kind: str) -> list[object]:
        with self.lock:
            return [value for k, value in self.events if k == kind]

    def on_start(self) -> None:
        self._log("start", None)

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        with self.lock:
            self.senders.append(sender)
        self._log("receive", message)

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        self.asks += 1
        self._log("ask", message)
        if self.delay:
            time.sleep(self.delay)
        if isinstance(message, wrappers_pb2.StringValue):
            if message.value == "raise":
                raise ValueError("boom from the endpoint")
            context.reply(wrappers_pb2.StringValue(value="echo:" + message.value))
        elif isinstance(message, wrappers_pb2.BytesValue):
            context.reply(message)
        elif isinstance(message, empty_pb2.Empty):
            sender = context.sender
            if sender is not None:  # push back to the asker (client-mode check)
                sender.send(wrappers_pb2.StringValue(value="pushed"))
            context.reply(empty_pb2.Empty())
        else:
            context.reply(message)

    def on_connected(self, address: RpcAddress) -> None:
        self._log("connected", address)

    def on_disconnected(self, address: RpcAddress) -> None:
        self._log("disconnected", address)

    def on_error(self, error: BaseException) -> None:
        self.errors.append(error)
        self._log("error", error)

    def on_stop(self) -> None:
        self._log("stop", None)


def check_lifecycle(make_env: EnvFactory) -> None:
    """on_start first, on_stop last; after stop an ask fails at once and a send is dropped."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        endpoint = _Recorder()
        ref = server.setup_endpoint("recorder", endpoint)
        _wait_for(lambda: "start" in endpoint.kinds(), "on_start")
        remote = client.endpoint_ref(server.address, "recorder")
        assert _echo(remote, "a") == "echo:a"
        remote.send(wrappers_pb2.StringValue(value="one-way"))
        _wait_for(lambda: "receive" in endpoint.kinds(), "the one-way message")
        server.stop(ref)
        _wait_for(lambda: "stop" in endpoint.kinds(), "on_stop")
        started = time.monotonic()
        try:
            remote.ask_sync(wrappers_pb2.StringValue(value="late"), 30.0)
        except (RpcEndpointStoppedError, RpcEndpointNotFoundError):
            pass
        else:
            raise AssertionError("an ask to a stopped endpoint succeeded")
        assert time.monotonic() - started < 5.0, (
            "an ask to a stopped endpoint waited for its timeout"
        )
        remote.send(wrappers_pb2.StringValue(value="dropped"))
        time.sleep(0.05)
        kinds = endpoint.kinds()
        assert kinds[0] == "start", f"first hook was {kinds[0]}"
        assert kinds[-1] == "stop", f"a hook ran after on_stop: {kinds}"
        assert "error" not in kinds, endpoint.errors


def check_ordering(make_env: EnvFactory) -> None:
    """8 concurrent senders x 10,000 messages all arrive, each sender's in order."""
    senders, per_sender = 8, 10_000
    with _envs(make_env) as make:
        server = make("server")
        client = make("client", client_mode=True)
        endpoint = _Recorder()
        server.setup_endpoint("sink", endpoint)
        ref = client.endpoint_ref(server.address, "sink")

        def produce(sender: int) -> None:
            for seq in range(per_sender):
                ref.send(wrappers_pb2.UInt64Value(value=(sender << 32) | seq))

        threads = [threading.Thread(target=produce, args=(i,)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        total = senders * per_sender
        _wait_for(lambda: len(endpoint.values("receive")) >= total, f"{total} messages", 60.0)
        last = [-1] * senders
        for message in endpoint.values("receive"):
            assert isinstance(message, wrappers_pb2.UInt64Value)
            sender, seq = message.value >> 32, message.value & 0xFFFFFFFF
            assert seq == last[sender] + 1, f"sender {sender}: got {seq} after {last[sender]}"
            last[sender] = seq
        assert last == [per_sender - 1] * senders


def check_ask_and_timeout(make_env: EnvFactory) -> None:
    """ask round-trips; a timeout names endpoint, type, timeout and conf key; never retried."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        endpoint = _Recorder()
        server.setup_endpoint("slow", endpoint)
        ref = client.endpoint_ref(server.address, "slow")
        future = ref.ask(wrappers_pb2.StringValue(value="x"), WAIT)
        assert isinstance(future, concurrent.futures.Future)
        answer = future.result(WAIT)
        assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == "echo:x"
        endpoint.delay = 1.0
        asks_before = endpoint.asks
        started = time.monotonic()
        try:
            ref.ask_sync(wrappers_pb2.StringValue(value="y"), 0.2)
        except RpcTimeoutError as exc:
            text = str(exc)
            for needle in ("slow", "google.protobuf.StringValue", "0.2", "spark.rpc.askTimeout"):
                assert needle in text, f"timeout error does not name {needle!r}: {text}"
            assert isinstance(exc, TimeoutError)
        else:
            raise AssertionError("a slow ask did not time out")
        assert time.monotonic() - started < 0.2 + 2.0, "the timeout fired late"
        time.sleep(1.2)
        assert endpoint.asks == asks_before + 1, "the ask was retried"
        endpoint.delay = 0.0
        assert _echo(ref, "z") == "echo:z"


def check_remote_failure(make_env: EnvFactory) -> None:
    """A raise in receive_and_reply reaches the caller with type, text and traceback."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        endpoint = _Recorder()
        server.setup_endpoint("failing", endpoint)
        ref = client.endpoint_ref(server.address, "failing")
        try:
            ref.ask_sync(wrappers_pb2.StringValue(value="raise"), WAIT)
        except RpcRemoteError as exc:
            assert exc.remote_type == "ValueError", exc.remote_type
            assert exc.remote_message == "boom from the endpoint"
            assert "receive_and_reply" in exc.remote_traceback, exc.remote_traceback
            assert "boom from the endpoint" in str(exc)
        else:
            raise AssertionError("the remote exception did not reach the caller")
        _wait_for(lambda: bool(endpoint.errors), "on_error")
        assert isinstance(endpoint.errors[0], ValueError)
        assert _echo(ref, "ok") == "echo:ok"


def check_lookup_missing(make_env: EnvFactory) -> None:
    """A lookup of a missing endpoint fails at once, naming it and the address."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        started = time.monotonic()
        try:
            client.endpoint_ref(server.address, "no-such-endpoint", timeout=30.0)
        except RpcEndpointNotFoundError as exc:
            assert "no-such-endpoint" in str(exc) and str(server.address.port) in str(exc), str(exc)
        else:
            raise AssertionError("looking up a missing endpoint succeeded")
        assert time.monotonic() - started < 5.0, "the lookup waited for a timeout"
        uri = f"spark://no-such-endpoint@{server.address.host_port}"
        try:
            client.endpoint_ref(uri)
        except RpcEndpointNotFoundError:
            pass
        else:
            raise AssertionError(f"looking up {uri} succeeded")
        server.setup_endpoint("present", _Recorder())
        by_uri = client.endpoint_ref(f"spark://present@{server.address.host_port}")
        assert by_uri.name == "present" and by_uri.address == server.address


def check_connection_events(make_env: EnvFactory) -> None:
    """on_connected / on_disconnected fire on both sides; a peer's shutdown is seen within 2 s."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        on_server, on_client = _Recorder(), _Recorder()
        server.setup_endpoint("events", on_server)
        client.setup_endpoint("events", on_client)
        ref = client.endpoint_ref(server.address, "events")
        ref.ask_sync(wrappers_pb2.StringValue(value="hello"), WAIT)
        _wait_for(
            lambda: client.address in on_server.values("connected"), "on_connected (server side)"
        )
        _wait_for(
            lambda: server.address in on_client.values("connected"), "on_connected (client side)"
        )
        client.shutdown()
        started = time.monotonic()
        _wait_for(
            lambda: client.address in on_server.values("disconnected"),
            "on_disconnected",
            timeout=2.0,
        )
        assert time.monotonic() - started <= 2.0
        assert "disconnected" in on_client.kinds() or "stop" in on_client.kinds()


def check_disconnect(make_env: EnvFactory) -> None:
    """`disconnect` closes a peer's connection: both sides hear of it, it can come back.

    Only that peer's: another client's connection and asks are untouched; an
    address with no connection gives False.
    """
    with _envs(make_env) as make:
        server = make("server")
        idle = make("idle")
        other = make("other", client_mode=True)
        on_server, on_idle = _Recorder(), _Recorder()
        server.setup_endpoint("events", on_server)
        idle.setup_endpoint("events", on_idle)
        idle_ref = idle.endpoint_ref(server.address, "events")
        other_ref = other.endpoint_ref(server.address, "events")
        assert _echo(idle_ref, "a") == "echo:a"
        assert _echo(other_ref, "b") == "echo:b"
        _wait_for(lambda: idle.address in on_server.values("connected"), "on_connected")
        assert server.disconnect(idle.address, "test reaps it") is True
        _wait_for(
            lambda: idle.address in on_server.values("disconnected"),
            "on_disconnected (closing side)",
        )
        _wait_for(
            lambda: server.address in on_idle.values("disconnected"),
            "on_disconnected (closed side)",
        )
        assert other.address not in on_server.values("disconnected")
        assert _echo(other_ref, "c") == "echo:c"
        assert _echo(idle_ref, "again") == "echo:again"  # a new connection
        assert server.disconnect(RpcAddress("127.0.0.1", 1)) is False
        assert server.disconnect(other.address) is True  # a client-mode peer too
        _wait_for(
            lambda: other.address in on_server.values("disconnected"), "client-mode disconnect"
        )
        assert _echo(other_ref, "d") == "echo:d"


def check_client_mode(make_env: EnvFactory) -> None:
    """A client-mode env asks, and receives sends pushed over its own connection."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client", client_mode=True)
        assert client.address.port == 0
        server_side = _Recorder()
        server.setup_endpoint("service", server_side)
        listener = _Recorder()
        client.setup_endpoint("listener", listener)
        ref = client.endpoint_ref(server.address, "service")
        assert _echo(ref, "c") == "echo:c"

        class Asker(RpcEndpoint):
            def on_start(self) -> None:
                ref.ask(empty_pb2.Empty(), WAIT)

            def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
                listener.receive(message, sender)

        client.setup_endpoint("asker", Asker())
        _wait_for(lambda: bool(listener.values("receive")), "a push to the client-mode env")
        pushed = listener.values("receive")[0]
        assert isinstance(pushed, wrappers_pb2.StringValue) and pushed.value == "pushed"


def check_large_messages(make_env: EnvFactory) -> None:
    """Messages up to the maximum round-trip intact; a larger one fails on the sender."""
    with _envs(make_env) as make:
        conf = {"spark.rpc.message.maxSize": "8"}
        server = make("server", conf=conf)
        client = make("client", conf=conf)
        server.setup_endpoint("echo", _Recorder())
        ref = client.endpoint_ref(server.address, "echo")
        payload = bytes(range(256)) * ((8 << 20) // 256 - 64)
        answer = ref.ask_sync(wrappers_pb2.BytesValue(value=payload), 60.0)
        assert isinstance(answer, wrappers_pb2.BytesValue) and answer.value == payload
        too_big = b"x" * ((8 << 20) + 1)
        try:
            ref.ask(wrappers_pb2.BytesValue(value=too_big), WAIT)
        except RpcMessageTooLargeError as exc:
            assert "spark.rpc.message.maxSize" in str(exc), str(exc)
        else:
            raise AssertionError("a message over the maximum was accepted")
        try:
            ref.send(wrappers_pb2.BytesValue(value=too_big))
        except RpcMessageTooLargeError:
            pass
        else:
            raise AssertionError("a one-way message over the maximum was accepted")
        assert _echo(ref, "still") == "echo:still"


def check_default_maximum(make_env: EnvFactory) -> None:
    """A 100 MiB message round-trips under the default maximum of 128 MiB."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        server.setup_endpoint("echo", _Recorder())
        ref = client.endpoint_ref(server.address, "echo")
        payload = b"\x5a" * (100 << 20)
        answer = ref.ask_sync(wrappers_pb2.BytesValue(value=payload), 120.0)
        assert isinstance(answer, wrappers_pb2.BytesValue) and answer.value == payload


def check_any_message_type(make_env: EnvFactory) -> None:
    """Any protobuf type travels, well-known types included; non-protobuf is refused."""
    from google.protobuf import struct_pb2, timestamp_pb2

    with _envs(make_env) as make:
        server = make("server")
        client = make("client")
        server.setup_endpoint("echo", _Recorder())
        ref = client.endpoint_ref(server.address, "echo")
        stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
        assert ref.ask_sync(stamp, WAIT) == stamp
        value = struct_pb2.Struct()
        value.update({"a": 1, "b": [True, "x"]})
        assert ref.ask_sync(value, WAIT) == value
        try:
            ref.send({"not": "protobuf"})  # type: ignore[arg-type]
        except TypeError as exc:
            assert "protobuf" in str(exc)
        else:
            raise AssertionError("a dict was accepted as a message")


def check_sender_ref(make_env: EnvFactory) -> None:
    """A send from inside an endpoint carries a ref the receiver can answer through."""
    with _envs(make_env) as make:
        server = make("server")
        client = make("client", client_mode=True)
        sink = _Recorder()
        server.setup_endpoint("sink", sink)
        ref = client.endpoint_ref(server.address, "sink")
        replies = _Recorder()

        class Pinger(RpcEndpoint):
            def on_start(self) -> None:
                ref.send(wrappers_pb2.StringValue(value="ping"))

            def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
                replies.receive(message, sender)

        client.setup_endpoint("pinger", Pinger())
        _wait_for(lambda: bool(sink.senders), "the ping")
        sender = sink.senders[0]
        assert sender is not None and sender.name == "pinger", sender
        sender.send(wrappers_pb2.StringValue(value="pong"))
        _wait_for(lambda: bool(replies.values("receive")), "the pong")


def check_auth(make_env: EnvFactory) -> None:
    """With a secret, a peer without it is refused and no endpoint sees its messages."""
    with _envs(make_env) as make:
        secret = {"spark.authenticate.secret": "correct horse battery staple"}
        server = make("server", conf=secret)
        endpoint = _Recorder()
        server.setup_endpoint("guarded", endpoint)
        friend = make("friend", conf=secret)
        assert _echo(friend.endpoint_ref(server.address, "guarded"), "hi") == "echo:hi"
        asks = endpoint.asks
        for conf in ({"spark.authenticate.secret": "wrong"}, {}):
            stranger = make("stranger", conf=conf)
            try:
                stranger.endpoint_ref(server.address, "guarded", timeout=WAIT)
            except (RpcAuthenticationError, RpcConnectionError) as exc:
                assert "correct horse" not in str(exc)
            else:
                raise AssertionError(f"a peer with conf {conf} got through")
        time.sleep(0.1)
        assert endpoint.asks == asks, "an unauthenticated message reached the endpoint"


def check_sender_policy(make_env: EnvFactory) -> None:
    """A sender policy sees where each message came from, as the transport knows it.

    Only what an env posts to itself is local; a remote peer's messages carry its
    address and an env id that is the same for all of its messages and differs
    between envs. Refused sends never reach the handler; refused asks fail with
    RpcPermissionDeniedError.
    """
    origins: list[MessageOrigin] = []
    trusted: list[str] = []

    def from_trusted(_endpoint: object, _message: Message, origin: MessageOrigin) -> bool:
        return origin.peer_id in trusted

    class Guarded(_Recorder):
        sender_policy = SenderPolicy(
            {
                wrappers_pb2.StringValue: LOCAL_ONLY,
                wrappers_pb2.Int32Value: from_trusted,
                empty_pb2.Empty: ANYONE,
            },
            "guarded",
        )

        def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
            origin = current_origin()
            assert origin is not None
            with self.lock:
                origins.append(origin)
            super().receive_and_reply(message, context)

    with _envs(make_env) as make:
        server = make("server")
        endpoint = Guarded()
        server.setup_endpoint("guarded", endpoint)
        alice = make("alice")
        bob = make("bob", client_mode=True)
        to_alice = alice.endpoint_ref(server.address, "guarded")
        to_bob = bob.endpoint_ref(server.address, "guarded")
        for ref in (to_alice, to_bob, to_alice):
            ref.ask_sync(empty_pb2.Empty(), WAIT)
        first, second, third = origins
        assert not (first.local or second.local or third.local), origins
        assert first.address == alice.address and second.address == bob.address, origins
        assert first.peer_id and first.peer_id == third.peer_id != second.peer_id, origins

        for ref in (to_alice, to_bob):
            for message in (wrappers_pb2.StringValue(value="x"), wrappers_pb2.Int32Value()):
                try:
                    ref.ask_sync(message, WAIT)
                except RpcPermissionDeniedError as exc:
                    assert message.DESCRIPTOR.full_name in str(exc)
                else:
                    raise AssertionError(f"{message.DESCRIPTOR.full_name} was let through")
            ref.send(wrappers_pb2.StringValue(value="forged"))
        try:
            to_alice.ask_sync(wrappers_pb2.BytesValue(), WAIT)
        except RpcPermissionDeniedError:
            pass
        else:
            raise AssertionError("a message type the policy does not declare was let through")

        trusted.append(first.peer_id)  # alice's env, as her connection gave it
        to_alice.ask_sync(wrappers_pb2.Int32Value(value=1), WAIT)
        try:
            to_bob.ask_sync(wrappers_pb2.Int32Value(value=2), WAIT)
        except RpcPermissionDeniedError:
            pass
        else:
            raise AssertionError("a rule bound to one peer's env id let another through")

        own = server.endpoint_ref(server.address, "guarded")
        own.send(wrappers_pb2.StringValue(value="local"))
        _wait_for(lambda: bool(endpoint.values("receive")), "the local send")
        time.sleep(0.1)
        received = endpoint.values("receive")
        assert [m.value for m in received] == ["local"], received  # type: ignore[attr-defined]
        assert origins[-1].peer_id == first.peer_id and not origins[-1].local


CHECKS: list[Callable[[EnvFactory], None]] = [
    check_lifecycle,
    check_ordering,
    check_ask_and_timeout,
    check_remote_failure,
    check_lookup_missing,
    check_connection_events,
    check_disconnect,
    check_client_mode,
    check_large_messages,
    check_default_maximum,
    check_any_message_type,
    check_sender_ref,
    check_auth,
    check_sender_policy,
]


def check_rpc_env(make_env: EnvFactory) -> None:
    """Run every conformance check against the backend behind `make_env`."""
    for check in CHECKS:
        check(make_env)
