"""Who may say what: every control message is refused from a peer that may not send it.

The impostor is a plain RpcEnv client holding the cluster's shared secret but
registered as no worker, application or executor. For every message type of
`proto/` (the `sparkctl.v1` modules) that an endpoint handles and does not open
to anyone, its ask fails with PERMISSION_DENIED and its send is dropped with a
log line naming the peer, while the endpoint carries on.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from google.protobuf import descriptor as pb_descriptor
from google.protobuf.message import Message

from cluster.launch import start_master, start_worker
from cluster.master import Master
from cluster.senders import MASTER_SENDERS, WORKER_SENDERS
from cluster.testing import FakeWorker, LocalCluster, ProcCluster, Recorder, wait_until
from cluster.worker import Worker
from rpcenv import (
    ANYONE,
    LOCAL_ONLY,
    Conf,
    MessageOrigin,
    RpcAddress,
    RpcEndpointRef,
    RpcEnv,
    RpcPermissionDeniedError,
    SenderPolicy,
)
from scheduler.backend.endpoint import SchedulerEndpoint
from scheduler.backend.senders import APP_CLIENT_SENDERS, SCHEDULER_SENDERS
from scheduler.backend.standalone import AppClient
from scheduler.executor.endpoint import ExecutorEndpoint
from scheduler.executor.senders import EXECUTOR_SENDERS
from sparkctl.v1 import deploy_pb2, master_service_pb2, rpc_pb2, scheduler_pb2

MODULES = (deploy_pb2, master_service_pb2, scheduler_pb2, rpc_pb2)
SECRET_CONF = {"spark.authenticate.secret": "senders-test-secret"}

#: The message types any connected peer may send, on purpose (see docs/security.md).
OPEN = {
    "Master": {
        "sparkctl.v1.RegisterWorkerRequest",
        "sparkctl.v1.RegisterApplicationRequest",
        "sparkctl.v1.GetClusterStateRequest",
        "sparkctl.v1.SubmitDriverRequest",
        "sparkctl.v1.GetDriverStatusRequest",
        "sparkctl.v1.KillDriverRequest",
        "sparkctl.v1.KillApplicationRequest",
    },
    "Worker": {"sparkctl.v1.GetWorkerStateRequest"},
    "driver scheduler endpoint": {
        "sparkctl.v1.RegisterExecutorRequest",
        "sparkctl.v1.FetchBlockRequest",
    },
    "executor endpoint": {"sparkctl.v1.FetchBlockRequest"},
    "driver AppClient": set(),
}


def all_message_types() -> list[type[Message]]:
    """Every top-level message class of the sparkctl.v1 modules."""
    found = []
    for module in MODULES:
        file: pb_descriptor.FileDescriptor = module.DESCRIPTOR
        for name in file.message_types_by_name:
            found.append(getattr(module, name))
    return found


def filled(kind: type[Message], ids: dict[str, Any]) -> Message:
    """A `kind` message naming the real worker, app, executor and driver where it can."""
    message = kind()
    for field in kind.DESCRIPTOR.fields:
        if field.name not in ids:
            continue
        value = ids[field.name]
        if field.type == field.TYPE_STRING:
            value = str(value)
        if isinstance(value, list):
            getattr(message, field.name).extend(value)
        elif field.type in (field.TYPE_STRING, field.TYPE_INT32, field.TYPE_INT64, field.TYPE_ENUM):
            setattr(message, field.name, value)
    return message


def refused_types(policy: SenderPolicy) -> list[type[Message]]:
    """The handled types the policy does not open to everyone."""
    return [t for t in policy.message_types if policy.rule(t) is not ANYONE]


def assert_refused_everything(
    ref: RpcEndpointRef, policy: SenderPolicy, ids: dict[str, Any]
) -> int:
    """Ask `ref` every proto message type except the open ones: each is refused."""
    refused = 0
    for kind in all_message_types():
        if policy.rule(kind) is ANYONE:
            continue
        message = filled(kind, ids)
        with pytest.raises(RpcPermissionDeniedError) as caught:
            ref.ask_sync(message, 5.0)
        assert kind.DESCRIPTOR.full_name in str(caught.value)
        refused += 1
    return refused


@pytest.fixture
def impostor(local_cluster: Callable[..., LocalCluster]) -> Iterator[tuple[LocalCluster, RpcEnv]]:
    cluster = local_cluster(SECRET_CONF)
    yield cluster, cluster.env(client=True)


def test_policies_declare_exactly_what_the_endpoints_handle(tmp_path: pathlib.Path) -> None:
    """A handler without a declared sender rule (or a stale rule) fails here."""
    master = Master(Conf({}), tmp_path / "master")
    assert set(master._handlers) | set(master._notices) == set(MASTER_SENDERS.message_types)
    worker = Worker(Conf({}), "w", ["spark://127.0.0.1:7077"], 1, 64, tmp_path / "worker")
    assert set(worker._asks) | set(worker._notices) == set(WORKER_SENDERS.message_types)
    policies = (MASTER_SENDERS, WORKER_SENDERS, SCHEDULER_SENDERS, EXECUTOR_SENDERS)
    for policy in (*policies, APP_CLIENT_SENDERS):
        opened = {t.DESCRIPTOR.full_name for t in policy.message_types if policy.rule(t) is ANYONE}
        assert opened == OPEN[policy.name], policy.name
    for notice in ("CheckWorkerTimeouts", "ElectedLeader", "RevokedLeadership"):
        assert MASTER_SENDERS.rule(getattr(deploy_pb2, notice)) is LOCAL_ONLY


def test_master_refuses_every_message_from_an_unregistered_peer(
    impostor: tuple[LocalCluster, RpcEnv], caplog: pytest.LogCaptureFixture
) -> None:
    c, env = impostor
    worker = c.worker("w-real", cores=4)
    driver = c.driver(cores_per_executor=1, max_cores=1)
    launch = worker.wait_of(deploy_pb2.LaunchExecutor)[0]
    submitted = c.master.ref.ask_sync(
        master_service_pb2.SubmitDriverRequest(
            description=deploy_pb2.DriverDescription(app_resource="/x/app.py", cores=1)
        ),
        5,
    )
    assert isinstance(submitted, master_service_pb2.SubmitDriverResponse)
    worker.wait_of(deploy_pb2.LaunchDriver)
    ids = {
        "worker_id": "w-real",
        "incarnation": 1,
        "app_id": driver.app_id,
        "executor_id": launch.executor_id,
        "executor_ids": [launch.executor_id],
        "driver_id": submitted.driver_id,
        "state": deploy_pb2.EXECUTOR_STATE_FAILED,
    }
    ref = env.endpoint_ref(c.master.ref.address, c.master.ref.name)

    refused = assert_refused_everything(ref, MASTER_SENDERS, ids)
    assert refused == len(all_message_types()) - len(OPEN["Master"])

    # The same as one-way sends: dropped, logged with our address, nothing changes.
    caplog.set_level(logging.WARNING, logger="rpcenv._senders")
    for kind in refused_types(MASTER_SENDERS):
        message = filled(kind, ids)
        if kind is deploy_pb2.DriverStateChanged:
            message = deploy_pb2.DriverStateChanged(
                driver_id=submitted.driver_id, state=deploy_pb2.DRIVER_STATE_KILLED
            )
        ref.send(message)
    names = {k.DESCRIPTOR.full_name for k in refused_types(MASTER_SENDERS)}
    wait_until(
        lambda: all(any(n in r.getMessage() for r in caplog.records) for n in names),
        10,
        "a refusal line per message type",
    )
    assert all(str(env.address) in r.getMessage() for r in caplog.records if "refused" in r.msg)
    state = c.state()
    assert state.status == deploy_pb2.MASTER_STATUS_ALIVE and not c.master.revoked
    assert [w.state for w in state.workers] == [deploy_pb2.WORKER_STATE_ALIVE]
    assert [a.id for a in state.active_apps] == [driver.app_id]
    assert any(d.id == submitted.driver_id for d in state.active_drivers)
    assert not driver.of(deploy_pb2.ApplicationRemoved)


def test_worker_refuses_every_message_from_a_peer_that_is_not_its_master(
    impostor: tuple[LocalCluster, RpcEnv],
) -> None:
    c, env = impostor
    handle = c.real_worker()
    ids = {"worker_id": handle.worker_id, "app_id": "app-x", "executor_id": 0, "driver_id": "d"}
    ref = env.endpoint_ref(handle.ref.address, handle.ref.name)
    refused = assert_refused_everything(ref, WORKER_SENDERS, ids)
    assert refused == len(all_message_types()) - len(OPEN["Worker"])
    assert handle.endpoint.registered.is_set() and not handle.endpoint.executors


def test_driver_scheduler_endpoint_takes_reports_only_from_that_executor(
    impostor: tuple[LocalCluster, RpcEnv],
) -> None:
    c, env = impostor
    server = c.env()
    endpoint = SchedulerEndpoint(cast(Any, None), "app-1")
    target = server.setup_endpoint("CoarseGrainedScheduler", endpoint)
    endpoint._by_address[RpcAddress("10.0.0.9", 0, "real-executor")] = "7"
    ref = env.endpoint_ref(target.address, target.name)
    refused = assert_refused_everything(ref, SCHEDULER_SENDERS, {"executor_id": 7})
    assert refused == len(all_message_types()) - len(OPEN["driver scheduler endpoint"])
    real = MessageOrigin(RpcAddress("10.0.0.9", 0, "real-executor"), local=False)
    endpoint._peer_ids["7"] = "env-of-7"
    assert not SCHEDULER_SENDERS.allows(
        endpoint, scheduler_pb2.StatusUpdates(executor_id="7"), real
    )
    real = MessageOrigin(real.address, local=False, peer_id="env-of-7")
    report = scheduler_pb2.StatusUpdates(executor_id="7")
    assert SCHEDULER_SENDERS.allows(endpoint, report, real)
    assert not SCHEDULER_SENDERS.allows(
        endpoint, scheduler_pb2.StatusUpdates(executor_id="8"), real
    )
    # A barrier task's sync: only from the executor it names, as StatusUpdates.
    sync = scheduler_pb2.BarrierRequest(executor_id="7", method="barrier")
    assert SCHEDULER_SENDERS.allows(endpoint, sync, real)
    sync = scheduler_pb2.BarrierRequest(executor_id="8", method="barrier")
    assert not SCHEDULER_SENDERS.allows(endpoint, sync, real)


def test_executor_takes_commands_only_from_its_driver(
    impostor: tuple[LocalCluster, RpcEnv], tmp_path: pathlib.Path
) -> None:
    c, env = impostor
    driver_env = c.env()
    driver_ref = driver_env.setup_endpoint("CoarseGrainedScheduler", Recorder())
    failed = threading.Event()
    executor = ExecutorEndpoint(
        argparse.Namespace(
            executor_id="1", hostname="127.0.0.1", cores=1, app_id="app-1", driver_url="x"
        ),
        cast(Any, types.SimpleNamespace(local_dir=str(tmp_path))),
        driver_ref,
        None,
        threading.Event(),
        fail=lambda _reason: failed.set(),
    )
    target = c.env().setup_endpoint("Executor", executor)
    ref = env.endpoint_ref(target.address, target.name)
    refused = assert_refused_everything(ref, EXECUTOR_SENDERS, {"executor_id": 1})
    assert refused == len(all_message_types()) - len(OPEN["executor endpoint"])
    from_driver = MessageOrigin(driver_ref.address, local=False, peer_id="driver-env")
    assert EXECUTOR_SENDERS.allows(executor, scheduler_pb2.KillTasks(), from_driver)
    executor._driver_env_id = "driver-env"  # as the driver's RegisterExecutorResponse says
    assert EXECUTOR_SENDERS.allows(executor, scheduler_pb2.KillTasks(), from_driver)
    claims_its_address = MessageOrigin(driver_ref.address, local=False, peer_id="other-env")
    assert not EXECUTOR_SENDERS.allows(executor, scheduler_pb2.KillTasks(), claims_its_address)
    assert not EXECUTOR_SENDERS.allows(
        executor, scheduler_pb2.KillTasks(), MessageOrigin(env.address, local=False)
    )


class _IdleAppClient(AppClient):
    def on_start(self) -> None:  # registers with no Master: only its senders are tested
        pass


def test_the_drivers_app_client_hears_only_its_master(
    impostor: tuple[LocalCluster, RpcEnv],
) -> None:
    """ApplicationRemoved or ExecutorUpdated would stop executors: only from our Master."""
    c, env = impostor
    backend = types.SimpleNamespace(master_urls=["spark://10.0.0.1:7077,10.0.0.2:7077"])
    client = _IdleAppClient(cast(Any, backend))
    target = c.env().setup_endpoint("AppClient", client)
    ref = env.endpoint_ref(target.address, target.name)
    refused = assert_refused_everything(ref, APP_CLIENT_SENDERS, {"app_id": "app-1"})
    assert refused == len(all_message_types())
    removed = deploy_pb2.ApplicationRemoved(app_id="app-1")
    standby = MessageOrigin(RpcAddress("10.0.0.2", 7077), local=False)
    # Between Masters, a Master we know may speak; once we follow one, only that one.
    assert APP_CLIENT_SENDERS.allows(client, removed, standby)
    client.master = cast(Any, types.SimpleNamespace(address=RpcAddress("10.0.0.1", 7077)))
    assert not APP_CLIENT_SENDERS.allows(client, removed, standby)
    leader = MessageOrigin(RpcAddress("10.0.0.1", 7077), local=False)
    assert APP_CLIENT_SENDERS.allows(client, removed, leader)
    changed = deploy_pb2.MasterChanged(master_url="spark://10.0.0.2:7077")
    assert APP_CLIENT_SENDERS.allows(client, changed, standby)
    stranger = MessageOrigin(RpcAddress("10.0.0.3", 7077), local=False)
    assert not APP_CLIENT_SENDERS.allows(client, changed, stranger)
    # An application's credential (an executor's) reaches none of it.
    as_app = MessageOrigin(leader.address, local=False, app_id="app-1")
    assert not APP_CLIENT_SENDERS.allows(client, removed, as_app)


def test_app_credentials_reach_only_their_own_application(tmp_path: pathlib.Path) -> None:
    """A driver's and an executor's app rules: their application's callers, for its business."""
    scheduler = SchedulerEndpoint(cast(Any, None), "app-1")
    from_a = MessageOrigin(RpcAddress("10.0.0.9", 0, "e"), local=False, peer_id="e", app_id="app-1")
    from_b = MessageOrigin(from_a.address, local=False, peer_id="e", app_id="app-2")
    register = scheduler_pb2.RegisterExecutorRequest(executor_id="1", app_id="app-1")
    assert SCHEDULER_SENDERS.allows(scheduler, register, from_a)
    assert not SCHEDULER_SENDERS.allows(scheduler, register, from_b)
    wrong = scheduler_pb2.RegisterExecutorRequest(executor_id="1", app_id="app-2")
    assert not SCHEDULER_SENDERS.allows(scheduler, wrong, from_a)
    fetch = scheduler_pb2.FetchBlockRequest(executor_id="driver", path="p")
    assert SCHEDULER_SENDERS.allows(scheduler, fetch, from_a)
    assert not SCHEDULER_SENDERS.allows(scheduler, fetch, from_b)
    # Registered again under a new id (a Master that forgot it): executors already
    # connected with the old id's credential still report; new ones register as the new.
    scheduler.set_app_id("app-3")
    assert SCHEDULER_SENDERS.allows(scheduler, fetch, from_a)
    assert not SCHEDULER_SENDERS.allows(scheduler, register, from_a)
    assert not SCHEDULER_SENDERS.allows(scheduler, fetch, from_b)
    executor = ExecutorEndpoint(
        argparse.Namespace(executor_id="1", app_id="app-1", driver_url="x"),
        cast(Any, None),
        cast(Any, types.SimpleNamespace(address=RpcAddress("10.0.0.1", 7078))),
        None,
        threading.Event(),
    )
    assert EXECUTOR_SENDERS.allows(executor, fetch, from_a)
    assert not EXECUTOR_SENDERS.allows(executor, fetch, from_b)
    # The driver's commands never come with a credential: not from an executor of ours.
    driver_claim = MessageOrigin(RpcAddress("10.0.0.1", 7078), local=False, app_id="app-1")
    assert not EXECUTOR_SENDERS.allows(executor, scheduler_pb2.KillTasks(), driver_claim)
    worker = Worker(Conf({}), "w", ["spark://127.0.0.1:7077"], 1, 64, tmp_path / "worker")
    worker.executors[("app-1", 0)] = cast(Any, object())
    registered = deploy_pb2.ExecutorRegistered(app_id="app-1", executor_id=0)
    assert WORKER_SENDERS.allows(worker, registered, from_a)
    assert not WORKER_SENDERS.allows(worker, registered, from_b)
    kill = deploy_pb2.KillExecutor(app_id="app-1", executor_id=0)
    assert not WORKER_SENDERS.allows(worker, kill, from_a)


def test_a_peer_claiming_a_workers_address_is_not_that_worker(tmp_path: pathlib.Path) -> None:
    """gRPC peers say their own address when they connect; the env id gives them away.

    The impostor holds the secret and claims the registered worker's host and port
    in its peer metadata, so its messages arrive from the worker's address; only
    the env id of its connection differs from the one the worker registered over.
    """
    conf = Conf({**SECRET_CONF, "spark.rpc.backend": "grpc", "spark.worker.timeout": "30"})
    master = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    envs: list[RpcEnv] = []
    try:
        worker_env = RpcEnv.create("worker", "127.0.0.1", 0, conf)
        envs.append(worker_env)
        worker = FakeWorker(master.ref, "w-grpc", 2, 1024)
        worker_env.setup_endpoint("Worker", worker)
        wait_until(lambda: worker.reply is not None and worker.reply.done(), 10, "registration")
        assert worker.reply is not None and worker.reply.result().accepted

        impostor = RpcEnv.create("impostor", "127.0.0.1", 0, conf, client_mode=True)
        envs.append(impostor)
        claimed = worker_env.address
        impostor._peer_metadata = f"{impostor.env_id};Worker;{claimed.host};{claimed.port}"  # type: ignore[attr-defined]
        ref = impostor.endpoint_ref(master.ref.address, master.ref.name)
        stopping = deploy_pb2.WorkerStopping(worker_id="w-grpc", incarnation=1, reason="forged")
        with pytest.raises(RpcPermissionDeniedError, match=str(claimed).replace(".", r"\.")):
            ref.ask_sync(stopping, 10)
        ref.send(stopping)
        time.sleep(0.3)
        state = master.ref.ask_sync(master_service_pb2.GetClusterStateRequest(), 10)
        assert isinstance(state, master_service_pb2.GetClusterStateResponse)
        assert [w.state for w in state.workers] == [deploy_pb2.WORKER_STATE_ALIVE]
    finally:
        for env in envs:
            env.shutdown()
        master.stop()


def test_forged_leadership_notices_leave_a_master_process_serving(tmp_path: pathlib.Path) -> None:
    """Findings 1 and 2 against real processes: the loopback default, no secret.

    One one-way RevokedLeadership from any client used to make the Master exit
    with status 1; an ElectedLeader could make a second Master ALIVE.
    """
    c = ProcCluster(tmp_path, {"spark.worker.timeout": "3"})
    try:
        worker = c.add_worker()
        worker_id = str(worker.info["worker_id"])
        env = c.client_env()
        master = c.master_ref(env)
        master.send(deploy_pb2.RevokedLeadership(reason="forged"))
        master.send(deploy_pb2.ElectedLeader())
        master.send(deploy_pb2.CheckWorkerTimeouts())
        master.send(deploy_pb2.WorkerStopping(worker_id=worker_id, reason="forged"))
        log_path = c.master.log_path
        wait_until(
            lambda: log_path.read_text().count("refused sparkctl.v1.") >= 4,
            10,
            "four refusals in the master's log",
        )
        assert c.master.popen.poll() is None, "the master exited"
        state = c.state()
        assert state.status == deploy_pb2.MASTER_STATUS_ALIVE
        assert [(w.id, w.state) for w in state.workers] == [
            (worker_id, deploy_pb2.WORKER_STATE_ALIVE)
        ]
        assert "forged" not in log_path.read_text()  # a refusal never shows the content
    finally:
        c.close()


def test_a_peer_claiming_the_masters_address_cannot_command_a_worker(
    tmp_path: pathlib.Path,
) -> None:
    """A Worker takes commands only over the connection of the Master it registered with."""
    conf = Conf({**SECRET_CONF, "spark.rpc.backend": "grpc"})
    master = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    envs: list[RpcEnv] = []
    worker = None
    try:
        worker = start_worker(conf, [master.url], 2, 1024, "127.0.0.1", 0, tmp_path / "w")
        assert worker.wait_registered(10)
        assert worker.endpoint.master_env_id == master.rpc_env.env_id != ""

        impostor = RpcEnv.create("impostor", "127.0.0.1", 0, conf, client_mode=True)
        envs.append(impostor)
        claimed = master.rpc_env.address
        impostor._peer_metadata = f"{impostor.env_id};sparkMaster;{claimed.host};{claimed.port}"  # type: ignore[attr-defined]
        ref = impostor.endpoint_ref(worker.ref.address, worker.ref.name)
        launch = deploy_pb2.LaunchDriver(
            driver_id="driver-forged",
            description=deploy_pb2.DriverDescription(app_resource="/x/app.py", cores=1),
            master_epoch=worker.endpoint.master_epoch,
            attempt=1,
        )
        with pytest.raises(RpcPermissionDeniedError):
            ref.ask_sync(launch, 10)
        ref.send(launch)
        time.sleep(0.3)
        assert not worker.endpoint.drivers and not worker.endpoint.finished_drivers
    finally:
        if worker is not None:
            worker.stop()
        for env in envs:
            env.shutdown()
        master.stop()
