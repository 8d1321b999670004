"""The tcp backend (`rpcenv.tcp`): the conformance suite, and what it adds or refuses.

It is what a local[N] driver and its executor speak (`scheduler.backend.local`),
so besides the shared suite: order under a burst from several threads, a
message larger than one read, TLS refused at creation (it has none), the
bind-and-advertise split, and no waiting for answers on a reader thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import pytest
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

import rpcenv.tcp
from rpcenv import (
    RpcAddress,
    RpcCallContext,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpoint,
    RpcEndpointRef,
    RpcEnv,
    available_backends,
)
from rpcenv.testing import CHECKS, EnvFactory

WAIT = 10.0


def make_env(name: str, client_mode: bool = False, conf: Mapping[str, str] | None = None) -> RpcEnv:
    settings = {"spark.rpc.backend": "tcp", **(conf or {})}
    return RpcEnv.create(name, "127.0.0.1", 0, settings, client_mode=client_mode)


@pytest.fixture
def envs() -> Iterator[list[RpcEnv]]:
    made: list[RpcEnv] = []
    yield made
    for env in reversed(made):
        env.shutdown()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_conformance(check: Callable[[EnvFactory], None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    check(make_env)


def test_is_a_builtin_backend_and_lists_its_names() -> None:
    assert "tcp" in available_backends()
    assert set(rpcenv.tcp.__all__) == {"TcpRpcEnv", "create_env"}


def test_listens_and_connects_on_ipv6(envs: list[RpcEnv]) -> None:
    # A driver reaching its Master over IPv6 binds an IPv6 address; so do its executors.
    try:
        with socket.create_server(("::1", 0), family=socket.AF_INET6):
            pass
    except OSError:
        pytest.skip("no IPv6 loopback here")
    settings = {"spark.rpc.backend": "tcp"}
    server = RpcEnv.create("server", "::1", 0, settings)
    envs.append(server)
    client = RpcEnv.create("client", "::1", 0, settings, client_mode=True)
    envs.append(client)
    server.setup_endpoint("echo", RpcEndpoint())
    assert server.address.host_port.startswith("[::1]:")
    assert client.endpoint_ref(server.address, "echo", timeout=WAIT).name == "echo"


def test_connections_probe_an_idle_peer_as_the_keepalive_interval_says(
    envs: list[RpcEnv],
) -> None:
    # A vanished host sends no FIN: the kernel's probes end the connection instead.
    conf = {"spark.rpc.keepalive.interval": "7s"}
    server, client = make_env("server", conf=conf), make_env("client", conf=conf)
    envs += [server, client]
    server.setup_endpoint("echo", RpcEndpoint())
    client.endpoint_ref(server.address, "echo", timeout=WAIT)
    sockets = [c.sock for env in (server, client) for c in env._connections.values()]  # type: ignore[attr-defined]
    assert len(sockets) == 2  # the client's dial and the server's side of it
    for sock in sockets:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7


def test_tls_is_refused_naming_the_setting() -> None:
    with pytest.raises(RpcConfigError, match=r"spark\.ssl\.rpc\.enabled"):
        make_env("tls", conf={"spark.ssl.rpc.enabled": "true"})


class _Collector(RpcEndpoint):
    """Records what it receives; answers asks with their own value."""

    def __init__(self, expected: int) -> None:
        self.values: list[str] = []
        self.expected = expected
        self.done = threading.Event()

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        assert isinstance(message, wrappers_pb2.StringValue)
        self.values.append(message.value)
        if len(self.values) >= self.expected:
            self.done.set()

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


def test_order_per_sender_under_a_burst_from_threads(tcp_poller: str, envs: list[RpcEnv]) -> None:
    server = make_env("server")
    envs.append(server)
    clients = [make_env(f"client{i}") for i in range(3)]
    envs.extend(clients)
    per_client = 2000
    collector = _Collector(per_client * len(clients))
    server.setup_endpoint("sink", collector)

    def burst(index: int, env: RpcEnv) -> None:
        ref = env.endpoint_ref(server.address, "sink", timeout=WAIT)
        for n in range(per_client):
            ref.send(wrappers_pb2.StringValue(value=f"{index}:{n}"))

    threads = [threading.Thread(target=burst, args=(i, env)) for i, env in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert collector.done.wait(WAIT), f"got {len(collector.values)} messages"
    for index in range(len(clients)):
        mine = [int(v.split(":")[1]) for v in collector.values if v.startswith(f"{index}:")]
        assert mine == list(range(per_client))


def test_a_message_larger_than_one_read_and_small_ones_around_it(
    tcp_poller: str, envs: list[RpcEnv]
) -> None:
    server, client = make_env("server"), make_env("client")
    envs += [server, client]
    server.setup_endpoint("echo", _Collector(1))
    ref = client.endpoint_ref(server.address, "echo", timeout=WAIT)
    big = "x" * (3 << 20)
    futures = [ref.ask(wrappers_pb2.StringValue(value=v), WAIT) for v in ("a", big, "b")]
    answers = [f.result(WAIT) for f in futures]
    assert [a.value for a in answers] == ["a", big, "b"]  # type: ignore[attr-defined]


def test_binds_one_address_and_advertises_another(envs: list[RpcEnv]) -> None:
    conf = {"spark.rpc.backend": "tcp", "spark.authenticate.secret": "tcp-advertise"}
    bound = RpcEnv.create("bound", "0.0.0.0", 0, conf, advertise_host="127.0.0.1")
    envs.append(bound)
    assert bound.address.host == "127.0.0.1" and bound.address.port > 0
    peer = RpcEnv.create("peer", "127.0.0.1", 0, conf)
    envs.append(peer)
    bound.setup_endpoint("echo", _Collector(1))
    ref = peer.endpoint_ref(bound.address, "echo", timeout=WAIT)
    answer = ref.ask_sync(wrappers_pb2.StringValue(value="hi"), WAIT)
    assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == "hi"


class _HeldEcho(RpcEndpoint):
    """Answers asks with their own value once `release` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        self.release.wait(WAIT)
        context.reply(message)


def test_waiting_for_an_answer_on_a_reader_thread_is_refused(envs: list[RpcEnv]) -> None:
    server, client = make_env("server"), make_env("client")
    envs += [server, client]
    # The answer waits until the callback is attached: one attached to a future done
    # already runs on the test's thread, where waiting is allowed (a 1-in-12 flake).
    echo = _HeldEcho()
    server.setup_endpoint("echo", echo)
    ref = client.endpoint_ref(server.address, "echo", timeout=WAIT)
    errors: list[BaseException] = []
    called = threading.Event()

    def on_answer(_: object) -> None:  # runs on the client's reader thread
        try:
            ref.ask_sync(wrappers_pb2.StringValue(value="again"), WAIT)
        except RuntimeError as exc:
            errors.append(exc)
        finally:
            called.set()

    ref.ask(wrappers_pb2.StringValue(value="first"), WAIT).add_done_callback(on_answer)
    echo.release.set()
    assert called.wait(WAIT)
    assert errors and "reader thread" in str(errors[0])


class _Stalled(RpcEndpoint):
    """Handles sends on the reader thread and holds it until `go` is set."""

    def __init__(self, expected: int) -> None:
        self.go = threading.Event()
        self.sizes: list[int] = []
        self.expected = expected
        self.done = threading.Event()

    def receives_inline(self, message: Message) -> bool:
        return True

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        self.go.wait(60.0)
        assert isinstance(message, wrappers_pb2.BytesValue)
        self.sizes.append(len(message.value))
        if len(self.sizes) >= self.expected:
            self.done.set()


def test_a_sender_never_blocks_on_a_peer_whose_reader_is_stuck(
    tcp_poller: str, envs: list[RpcEnv]
) -> None:
    server, client = make_env("server"), make_env("client")
    envs += [server, client]
    count = 64
    stalled = _Stalled(count)
    server.setup_endpoint("stalled", stalled)
    ref = client.endpoint_ref(server.address, "stalled", timeout=WAIT)
    sent = threading.Event()

    def flood() -> None:  # 64 MiB: far more than the kernel's buffers hold
        for n in range(count):
            ref.send(wrappers_pb2.BytesValue(value=bytes([n % 256]) * (1 << 20)))
        sent.set()

    threading.Thread(target=flood, daemon=True).start()
    assert sent.wait(5.0), "a send blocked while the peer's reader was stuck"
    stalled.go.set()
    assert stalled.done.wait(30.0), f"only {len(stalled.sizes)} of {count} arrived"
    assert stalled.sizes == [1 << 20] * count


def test_a_peer_that_never_answers_the_handshake_holds_up_no_other_dial(
    envs: list[RpcEnv],
) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        # The dial gives up (2 s) before the ask's deadline (3 s): a connection error,
        # not a race between the two.
        conf = {"spark.rpc.askTimeout": "3s", "spark.rpc.io.connectionTimeout": "2s"}
        client, server = make_env("client", conf=conf), make_env("server")
        envs += [client, server]
        server.setup_endpoint("echo", _Collector(1))
        stuck = RpcAddress("127.0.0.1", silent.getsockname()[1])
        outcome: list[BaseException] = []

        def dial_the_silent_one() -> None:
            try:
                client.endpoint_ref(stuck, "nobody")
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=dial_the_silent_one, daemon=True)
        thread.start()
        time.sleep(0.2)  # it is in the handshake now
        started = time.monotonic()
        ref = client.endpoint_ref(server.address, "echo", timeout=WAIT)
        answer = ref.ask_sync(wrappers_pb2.StringValue(value="quick"), WAIT)
        assert isinstance(answer, wrappers_pb2.StringValue) and answer.value == "quick"
        assert time.monotonic() - started < 2.0
        thread.join(WAIT)
        assert outcome and isinstance(outcome[0], RpcConnectionError), outcome
    finally:
        silent.close()
