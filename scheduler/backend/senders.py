"""Who may send what to a driver's endpoints: its scheduler and its AppClient.

The rules are checked by the RpcEnv's dispatcher before the endpoint's handler
runs (`rpcenv.SenderPolicy`): an executor's reports only from the connection it
registered over; registration and block fetches stay open to anyone connected
(the shared secret gates them) and to this application's credential, which its
executors hold instead of the secret. The AppClient hears its application's
news only from the Master it registered with, and a leader change only from a
Master it knows. This module never changes the endpoints' state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from rpcenv import ANYONE, LOCAL_ONLY, MessageOrigin, SenderPolicy
from sparkctl.v1 import deploy_pb2 as dpb
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:
    from scheduler.backend.endpoint import SchedulerEndpoint
    from scheduler.backend.standalone import AppClient

__all__ = ["APP_CLIENT_SENDERS", "SCHEDULER_SENDERS"]


# The two rules that read a field take `msg: Any`: a `SenderRule` is given a Message, and
# which kind it is follows from the policy's key, which mypy cannot narrow.


def _that_executor(endpoint: SchedulerEndpoint, msg: Any, origin: MessageOrigin) -> bool:
    """StatusUpdates, ExecutorHeartbeat, BarrierRequest: from the executor they name."""
    return origin.local or endpoint.is_executor(msg.executor_id, origin)


def _this_app(endpoint: SchedulerEndpoint, _msg: Message, origin: MessageOrigin) -> bool:
    """A caller holding an application's credential: this driver's application only.

    The driver's env lets in no other application's credential; this says so again
    where it matters, so that a mistake in that setting opens nothing here.
    """
    return endpoint.was_app(origin.app_id)


def _registers_here(endpoint: SchedulerEndpoint, msg: Any, origin: MessageOrigin) -> bool:
    """RegisterExecutorRequest with a credential: an executor of this application."""
    return _this_app(endpoint, msg, origin) and msg.app_id == endpoint.app_id


#: The driver's scheduler endpoint ("CoarseGrainedScheduler").
SCHEDULER_SENDERS = SenderPolicy(
    {
        pb.RegisterExecutorRequest: ANYONE,
        pb.FetchBlockRequest: ANYONE,
        pb.StatusUpdates: _that_executor,
        pb.ExecutorHeartbeat: _that_executor,
        pb.BarrierRequest: _that_executor,
    },
    "driver scheduler endpoint",
    # Executors connect with their application's credential (docs/security.md).
    app_rules={
        pb.RegisterExecutorRequest: _registers_here,
        pb.FetchBlockRequest: _this_app,
        pb.StatusUpdates: _this_app,
        pb.ExecutorHeartbeat: _this_app,
        pb.BarrierRequest: _this_app,
    },
)


def _our_master(client: AppClient, _msg: Message, origin: MessageOrigin) -> bool:
    """A Master's news of our application: from the Master we are registered with.

    A deposed leader's late ExecutorUpdated or ApplicationRemoved would reach the
    executors through us (we drop a lost executor, or stop them all); once we follow
    the new leader, the old one is not our Master. Between Masters (after
    MasterChanged, before registering again) a Master we know may speak.
    """
    if origin.local:
        return True
    master = client.master
    if master is None:
        return origin.address in client.master_addresses()
    return origin.address == master.address


def _a_master(client: AppClient, _msg: Message, origin: MessageOrigin) -> bool:
    """MasterChanged: from a Master we know (its epoch is checked by the handler)."""
    return origin.local or origin.address in client.master_addresses()


#: The driver's "AppClient" endpoint (standalone): what Masters tell the application.
APP_CLIENT_SENDERS = SenderPolicy(
    {
        dpb.ExecutorAdded: _our_master,
        dpb.ExecutorUpdated: _our_master,
        dpb.ApplicationRemoved: _our_master,
        dpb.MasterChanged: _a_master,
        dpb.RegisterApplicationResponse: LOCAL_ONLY,
        dpb.RegistrationFailed: LOCAL_ONLY,
        pb.ReregisterApplication: LOCAL_ONLY,
    },
    "driver AppClient",
)
