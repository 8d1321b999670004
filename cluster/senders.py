"""Who may send what to the Master and to a Worker: their declared sender policies.

Each message type a Master or a Worker handles has one rule here, checked by
the RpcEnv's dispatcher before the handler runs (`rpcenv.SenderPolicy`):

- timers, leadership notices and helper threads' posts: this process only;
- a worker's reports: the connection that worker registered over (and the
  worker an executor or a driver is recorded on);
- an application's requests: the connection its driver registered over;
- a Master's commands to a Worker: a Master the Worker knows;
- registrations and the public API (state, submit, kill): anyone connected,
  which with a shared secret means anyone who holds it (the admin);
- a caller that authenticated with an application's credential instead of the
  secret (`MessageOrigin.app_id`): at the Master, that application's kill, its
  driver's status and kill, its driver's requests, and the state (the handler
  shows it only its application); at a Worker, an executor's ExecutorRegistered
  of that application; nothing else, not even what the process itself may post.

A rule sees only the transport's `MessageOrigin` and the endpoint's records,
never a sender's claim about itself. This module never changes a record.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rpcenv import ANYONE, LOCAL_ONLY, MessageOrigin, RpcAddress, SenderPolicy
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

if TYPE_CHECKING:
    from cluster.master_base import MasterBase
    from cluster.worker_base import WorkerBase

__all__ = ["MASTER_SENDERS", "WORKER_SENDERS"]

log = logging.getLogger(__name__)


# -- the Master ------------------------------------------------------------------------


def _is_worker(master: MasterBase, worker_id: str, origin: MessageOrigin) -> bool:
    """Over the connection `worker_id` registered from: its address and env id.

    A recovered worker that has not re-registered is known by its record's address.
    """
    worker = master.workers.get(worker_id) if worker_id else None
    if worker is None:
        return False
    address = worker.ref.address if worker.ref is not None else worker.address
    return address == origin.address and worker.peer_id in ("", origin.peer_id)


def _worker_notice(master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """WorkerHeartbeat, WorkerStopping: from that worker; an unknown id is only told to
    register (an answer to the sender alone), or ignored."""
    if msg.worker_id not in master.workers:
        return True
    return _is_worker(master, msg.worker_id, origin)


def _executor_report(master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """ExecutorStateChanged: from the worker the executor is recorded on."""
    app = master.apps.get(msg.app_id)
    executor = app.executors.get(msg.executor_id) if app is not None else None
    if executor is None:
        return True  # unknown: the handler only answers the sender with a KillExecutor
    if msg.worker_id and msg.worker_id != executor.worker_id:
        return False
    return _is_worker(master, executor.worker_id, origin)


def _driver_report(master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """DriverStateChanged: from the worker running the driver's current launch.

    A relaunched driver is recorded on its new worker (or none while it backs off)
    with a new attempt number: the old copy's report must not end the live record.
    """
    driver = master.drivers.get(msg.driver_id)
    if driver is None:
        return True  # unknown: ignored by the handler
    if msg.attempt and msg.attempt != driver.attempt:
        return False  # a report on an earlier launch (0: a worker that does not say)
    if msg.worker_id and msg.worker_id != driver.worker_id:
        return False
    return _is_worker(master, driver.worker_id, origin)


def _own_app(_master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """On an application: the admin, or a caller holding that application's credential."""
    return origin.app_id in ("", msg.app_id)


def _own_driver(master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """KillDriver, GetDriverStatus: the admin, or the credential of the app it registered."""
    return not origin.app_id or master.app_owns_driver(origin.app_id, msg.driver_id)


def _app_driver(master: MasterBase, msg: Any, origin: MessageOrigin) -> bool:
    """Requests on an application: from the connection its driver registered over."""
    app = master.apps.get(msg.app_id)
    if app is None:
        return True  # unknown: the handler says so, or ignores it
    if origin.local:
        return True
    return app.driver_address == origin.address and app.driver_peer_id in ("", origin.peer_id)


#: The Master's senders. Registrations and the public API (also served as
#: sparkctl.v1.MasterService) are open to anyone connected; see docs/security.md.
MASTER_SENDERS = SenderPolicy(
    {
        pb.RegisterWorkerRequest: ANYONE,
        pb.RegisterApplicationRequest: ANYONE,
        api.GetClusterStateRequest: ANYONE,
        api.SubmitDriverRequest: ANYONE,
        api.GetDriverStatusRequest: ANYONE,
        api.KillDriverRequest: ANYONE,
        api.KillApplicationRequest: ANYONE,
        pb.WorkerHeartbeat: _worker_notice,
        pb.WorkerStopping: _worker_notice,
        pb.ExecutorStateChanged: _executor_report,
        pb.DriverStateChanged: _driver_report,
        pb.UnregisterApplication: _app_driver,
        pb.RequestExecutorsRequest: _app_driver,
        pb.KillExecutorsRequest: _app_driver,
        pb.CheckWorkerTimeouts: LOCAL_ONLY,
        pb.RelaunchDriver: LOCAL_ONLY,
        pb.CompleteRecovery: LOCAL_ONLY,
        pb.ElectedLeader: LOCAL_ONLY,
        pb.RevokedLeadership: LOCAL_ONLY,
    },
    "Master",
    # A caller with an application's credential (docs/security.md): these only, and
    # each also under the rule above. The state it gets shows its application only.
    app_rules={
        api.GetClusterStateRequest: ANYONE,
        api.GetDriverStatusRequest: _own_driver,
        api.KillDriverRequest: _own_driver,
        api.KillApplicationRequest: _own_app,
        pb.UnregisterApplication: _own_app,
        pb.RequestExecutorsRequest: _own_app,
        pb.KillExecutorsRequest: _own_app,
    },
)


# -- a Worker --------------------------------------------------------------------------


def _master_addresses(worker: WorkerBase) -> set[RpcAddress]:
    """Where a Master may speak from: the configured URLs, the one we registered with."""
    found: set[RpcAddress] = set()
    if worker.master_ref is not None:
        found.add(worker.master_ref.address)
    for url in [worker.master_url, *worker.master_urls]:
        if not url:
            continue
        for part in url.removeprefix("spark://").split(","):
            try:
                found.add(RpcAddress.from_uri(f"spark://{part}"))
            except ValueError:
                continue
    return found


def _from_master(worker: WorkerBase, _msg: Any, origin: MessageOrigin) -> bool:
    """A Master's notice: from a Master this worker knows (epochs fence old leaders)."""
    return origin.local or origin.address in _master_addresses(worker)


def _from_our_master(worker: WorkerBase, msg: Any, origin: MessageOrigin) -> bool:
    """A Master's command: also over the connection of the Master we registered with."""
    if origin.local:
        return True
    return _from_master(worker, msg, origin) and worker.master_env_id in ("", origin.peer_id)


def _own_executor(worker: WorkerBase, msg: Any, _origin: MessageOrigin) -> bool:
    """ExecutorRegistered: about an executor this worker is launching."""
    return (msg.app_id, msg.executor_id) in worker.executors


def _same_app(_worker: WorkerBase, msg: Any, origin: MessageOrigin) -> bool:
    """An executor, holding its application's credential: about that application only."""
    return bool(msg.app_id) and msg.app_id == origin.app_id


#: A Worker's senders.
WORKER_SENDERS = SenderPolicy(
    {
        pb.GetWorkerStateRequest: ANYONE,
        pb.MasterReachable: LOCAL_ONLY,
        pb.RegisterWorkerResponse: LOCAL_ONLY,
        pb.RegistrationFailed: LOCAL_ONLY,
        pb.SendHeartbeat: LOCAL_ONLY,
        pb.ProcessExited: LOCAL_ONLY,
        pb.MemoryExceeded: LOCAL_ONLY,
        pb.ExecutorStartupCheck: LOCAL_ONLY,
        pb.CleanupWorkDirs: LOCAL_ONLY,
        pb.ReconnectWorker: _from_master,
        pb.UseStreamHeartbeats: _from_our_master,
        pb.UseDatagramHeartbeats: _from_our_master,
        pb.MasterChanged: _from_master,
        pb.LaunchExecutor: _from_our_master,
        pb.KillExecutor: _from_our_master,
        pb.ApplicationFinished: _from_our_master,
        pb.LaunchDriver: _from_our_master,
        pb.KillDriver: _from_our_master,
        pb.ExecutorRegistered: _own_executor,
    },
    "Worker",
    # Executors connect with their application's credential, not the secret
    # (docs/security.md): they tell their Worker they registered, and nothing else.
    app_rules={pb.ExecutorRegistered: _same_app},
)
