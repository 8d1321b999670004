"""`RpcEnv.create(..., advertise_host=)`: bind one address, tell peers another.

A driver bound to 0.0.0.0 (spark.driver.bindAddress) must still be known to its
peers by the host it advertises, and third-party backend factories of the old
five-argument signature must keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from google.protobuf import wrappers_pb2

from rpcenv import (
    RpcAddress,
    RpcCallContext,
    RpcConfigError,
    RpcEndpoint,
    RpcEndpointRef,
    RpcEnv,
)
from rpcenv._conf import Conf
from rpcenv._registry import _registered, accepts_advertise_host, register_backend
from rpcenv.local import LocalRpcEnv

SECRET = "advertise-test-secret"


class Recorder(RpcEndpoint):
    """Answers an ask with the address the asker came from; notes one-way senders."""

    def __init__(self) -> None:
        self.senders: list[RpcAddress] = []
        self.got = threading.Event()

    def receive(self, message: object, sender: RpcEndpointRef | None) -> None:
        if sender is not None:
            self.senders.append(sender.address)
        self.got.set()

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.StringValue(value=context.sender_address.host_port))


class Pinger(RpcEndpoint):
    """Sends one message to `target` from inside the endpoint (so it has a sender)."""

    def __init__(self, target: RpcEndpointRef) -> None:
        self.target = target

    def on_start(self) -> None:
        self.target.send(wrappers_pb2.StringValue(value="hello"))


@pytest.fixture
def envs(request: pytest.FixtureRequest) -> Iterator[list[RpcEnv]]:
    made: list[RpcEnv] = []
    yield made
    for env in made:
        env.shutdown()


@pytest.mark.parametrize("backend", ["grpc", "local"])
def test_bound_to_any_address_advertises_another(backend: str, envs: list[RpcEnv]) -> None:
    conf = {"spark.rpc.backend": backend, "spark.authenticate.secret": SECRET}
    bound = RpcEnv.create("bound", "0.0.0.0", 0, conf, advertise_host="127.0.0.1")
    envs.append(bound)
    assert bound.address.host == "127.0.0.1"
    assert bound.address.port > 0
    recorder = Recorder()
    bound.setup_endpoint("recorder", recorder)

    advertised = RpcAddress("127.0.0.1", bound.address.port)

    # Reachable at the advertised address.
    peer = RpcEnv.create("peer", "127.0.0.1", 0, conf)
    envs.append(peer)
    ref = peer.endpoint_ref(advertised, "recorder", timeout=10)
    answer = ref.ask_sync(wrappers_pb2.StringValue(value="who am i"), timeout=10)
    assert isinstance(answer, wrappers_pb2.StringValue)
    assert answer.value == peer.address.host_port

    # A peer the bound env dials first learns the advertised address, never 0.0.0.0:
    # in the asks it answers and in the senders of what it receives.
    other = RpcEnv.create("other", "127.0.0.1", 0, conf)
    envs.append(other)
    other_recorder = Recorder()
    other.setup_endpoint("recorder", other_recorder)
    target = bound.endpoint_ref(other.address, "recorder", timeout=10)
    answer = target.ask_sync(wrappers_pb2.StringValue(value="who am i"), timeout=10)
    assert isinstance(answer, wrappers_pb2.StringValue)
    assert answer.value == advertised.host_port
    bound.setup_endpoint("pinger", Pinger(target))
    assert other_recorder.got.wait(10)
    assert other_recorder.senders == [advertised]


@pytest.mark.parametrize("backend", ["grpc", "local"])
def test_client_mode_advertises_too(backend: str, envs: list[RpcEnv]) -> None:
    conf = {"spark.rpc.backend": backend}
    server = RpcEnv.create("server", "127.0.0.1", 0, conf)
    envs.append(server)
    server.setup_endpoint("recorder", Recorder())
    client = RpcEnv.create("client", "0.0.0.0", 0, conf, True, advertise_host="127.0.0.1")
    envs.append(client)
    assert client.address.host == "127.0.0.1"
    assert client.address.port == 0
    ref = client.endpoint_ref(server.address, "recorder", timeout=10)
    answer = ref.ask_sync(wrappers_pb2.StringValue(value="x"), timeout=10)
    assert isinstance(answer, wrappers_pb2.StringValue)
    assert answer.value == client.address.host_port == "127.0.0.1:0"


def _old_factory(name: str, host: str, port: int, conf: Conf, client_mode: bool) -> RpcEnv:
    """A third-party backend written before advertise_host existed."""
    return LocalRpcEnv(name, host, port, conf, client_mode)


@pytest.fixture
def old_backend() -> Iterator[str]:
    register_backend("old-five-args", _old_factory)
    yield "old-five-args"
    _registered.pop("old-five-args", None)


def test_old_factory_still_works(old_backend: str, envs: list[RpcEnv]) -> None:
    conf = {"spark.rpc.backend": old_backend}
    env = RpcEnv.create("old", "127.0.0.1", 0, conf)
    envs.append(env)
    assert env.address.host == "127.0.0.1"
    # Advertising the bound host itself is no change: the old factory serves it.
    same = RpcEnv.create("same", "127.0.0.1", 0, conf, advertise_host="127.0.0.1")
    envs.append(same)
    assert same.address.host == "127.0.0.1"


def test_old_factory_refuses_another_advertised_host_clearly(old_backend: str) -> None:
    conf = {"spark.rpc.backend": old_backend}
    with pytest.raises(RpcConfigError, match=r"old-five-args.*cannot advertise '127\.0\.0\.1'"):
        RpcEnv.create("old", "0.0.0.0", 0, conf, advertise_host="127.0.0.1")


def test_factory_signatures() -> None:
    def keyword(
        name: str, host: str, port: int, conf: Conf, client_mode: bool, *, advertise_host: str
    ) -> None: ...

    def anything(*args: object, **kwargs: object) -> None: ...

    assert not accepts_advertise_host(_old_factory)
    assert accepts_advertise_host(keyword)  # type: ignore[arg-type]
    assert accepts_advertise_host(anything)  # type: ignore[arg-type]
