"""Idle peer streams with no registered role are reaped by the Master (issue 10).

A peer that authenticated with the secret but never registered as a worker or
an application, and sends the Master nothing, is closed after
`spark.sparkctl.master.unregisteredPeerTimeout`; a registered worker idle
between heartbeats, and a status client that asks and goes, are not.

Which peers the Master closes, and when, is checked on a fake clock with a
recording env (no sleeps); one real run checks that the close happens on the
wire, that a client asking meanwhile keeps its stream, and that a reaped peer
may connect again.
"""

from __future__ import annotations

import pathlib
import threading
import time

import pytest

from cluster.launch import start_master, start_worker
from cluster.master import Master
from cluster.master_peers import IdlePeers
from cluster.testing import FakeClock, FakeContext, FakeRef, wait_until
from rpcenv import Conf, RpcAddress, RpcEndpoint, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

SECRET = {"spark.authenticate.secret": "idle-peers-test-secret"}


class Events(RpcEndpoint):
    """Records when each peer disconnected."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.disconnected: dict[RpcAddress, float] = {}

    def on_disconnected(self, address: RpcAddress) -> None:
        with self.lock:
            self.disconnected.setdefault(address, time.monotonic())

    def gone(self, address: RpcAddress) -> bool:
        with self.lock:
            return address in self.disconnected


def test_idle_peers_model() -> None:
    peers = IdlePeers(1.0)
    a, b, w = RpcAddress("h", 1), RpcAddress("h", 2), RpcAddress("h", 3)
    for address in (a, b, w):
        peers.heard(address, 0.0)
    peers.heard(b, 0.8)
    assert peers.take_idle(1.5, lambda x: x == w) == [a]  # b spoke late, w has a role
    assert peers.take_idle(1.5, lambda x: x == w) == []  # taken once
    peers.forget(b)
    assert peers.take_idle(10.0, lambda x: False) == [w]
    assert len(peers) == 0


@pytest.mark.parametrize("value", ["0", "-1s", "soon"])
def test_bad_timeout_is_refused_naming_the_key(value: str, tmp_path: pathlib.Path) -> None:
    key = "spark.sparkctl.master.unregisteredPeerTimeout"
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Master(Conf({key: value}), tmp_path)


class _RecordingEnv:
    """What the Master touches of its env here: `disconnect` (recorded) and its id."""

    env_id = "master-env"

    def __init__(self) -> None:
        self.closed: list[RpcAddress] = []

    def disconnect(self, address: RpcAddress, reason: str) -> bool:
        assert "unregisteredPeerTimeout" in reason
        self.closed.append(address)
        return True


def test_only_a_peer_without_a_role_is_closed_once_silent_past_the_timeout(
    tmp_path: pathlib.Path,
) -> None:
    clock = FakeClock()
    conf = Conf(
        {"spark.sparkctl.master.unregisteredPeerTimeout": "1s", "spark.worker.timeout": "8"}
    )
    master = Master(conf, tmp_path, clock=clock)
    env = _RecordingEnv()
    master._rpc_env = env  # type: ignore[assignment]
    master._self_ref = FakeRef("Master", 7077)
    idle, worker = RpcAddress("127.0.0.1", 7301), RpcAddress("127.0.0.1", 7302)
    master.on_connected(idle)
    master.on_connected(worker)
    ref = FakeRef("Worker", worker.port)
    request = pb.RegisterWorkerRequest(
        worker_id="w0", host="127.0.0.1", port=7401, cores=1, memory_mb=512, incarnation=1
    )
    master._on_register_worker(request, FakeContext(ref, worker))

    def check() -> None:
        master.liveness.issue()
        master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)

    clock.advance(1.0)  # exactly the timeout: not yet
    check()
    assert env.closed == []
    clock.advance(0.01)
    check()
    assert env.closed == [idle]
    # The worker says nothing the reaper counts for ten timeouts (heartbeats only
    # keep it alive at the Master): its role keeps its stream.
    for _ in range(20):
        clock.advance(0.5)
        master._on_heartbeat(pb.WorkerHeartbeat(worker_id="w0", incarnation=1), ref)
        check()
    assert env.closed == [idle]
    # Closed, not banned: connected again, it gets a timeout of its own anew.
    master.on_disconnected(idle)
    master.on_connected(idle)
    clock.advance(0.5)
    check()
    assert env.closed == [idle]
    clock.advance(0.6)
    check()
    assert env.closed == [idle, idle]


def test_an_idle_peer_is_closed_on_the_wire_and_may_come_back(
    tmp_path: pathlib.Path,
) -> None:
    # Heartbeats every 8/4 = 2 s: the worker is silent for longer than the 1 s timeout
    # between them, so only its role keeps it.
    conf = Conf(
        {
            **SECRET,
            "spark.sparkctl.master.unregisteredPeerTimeout": "1s",
            "spark.worker.timeout": "8",
        }
    )
    master = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    master_events = Events()
    master.rpc_env.setup_endpoint("events", master_events)
    envs: list[RpcEnv] = []
    worker = None
    try:
        worker = start_worker(conf, [master.url], 1, 512, "127.0.0.1", 0, tmp_path / "w")
        assert worker.wait_registered(10)
        worker_events = Events()
        worker.rpc_env.setup_endpoint("events", worker_events)

        idle = RpcEnv.create("idle", "127.0.0.1", 0, conf)
        envs.append(idle)
        idle_events = Events()
        idle.setup_endpoint("events", idle_events)
        idle.endpoint_ref(
            master.rpc_env.address, "events"
        )  # connects and authenticates; asks the Master nothing
        connected = time.monotonic()

        status = RpcEnv.create("status", "127.0.0.1", 0, conf, client_mode=True)
        envs.append(status)
        status_ref = status.endpoint_ref(master.rpc_env.address, "Master")
        asks = 0
        while not idle_events.gone(master.rpc_env.address):
            assert time.monotonic() - connected < 10, "the idle peer was never closed"
            answer = status_ref.ask_sync(api.GetClusterStateRequest(), 10)  # an active client
            assert isinstance(answer, api.GetClusterStateResponse)
            asks += 1
            time.sleep(0.2)
        closed_after = idle_events.disconnected[master.rpc_env.address] - connected
        print(f"\nidle authenticated peer closed after {closed_after:.2f}s (timeout 1s)")
        wait_until(lambda: master_events.gone(idle.address), 5, "the Master's on_disconnected")
        assert not master_events.gone(status.address)  # it kept asking meanwhile

        # (That the worker keeps its stream over many heartbeat gaps longer than the
        # timeout is shown on the fake clock above; here it only must still have it.)
        assert not worker_events.gone(master.rpc_env.address)
        assert not master_events.gone(worker.rpc_env.address)
        # The status client, quiet since, may have been closed too: its next ask
        # simply connects again.
        state = status_ref.ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(state, api.GetClusterStateResponse)
        assert state.alive_workers == 1
        # A reaped peer may come back: it is closed, not banned.
        again = idle.endpoint_ref(master.rpc_env.address, "Master").ask_sync(
            api.GetClusterStateRequest(), 10
        )
        assert isinstance(again, api.GetClusterStateResponse)
        print(f"status client asked {asks} times meanwhile; worker kept its stream")
    finally:
        for env in envs:
            env.shutdown()
        if worker is not None:
            worker.stop()
        master.stop()
