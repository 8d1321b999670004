"""Who may send what to a driver's scheduler endpoint.

The rules are checked by the RpcEnv's dispatcher before the endpoint's handler
runs (`rpcenv.SenderPolicy`): an executor's reports only from the connection it
registered over; registration and block fetches stay open to anyone connected
(the shared secret gates them) and to this application's credential, which its
executors hold instead of the secret. This module never changes the endpoint's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpcenv import ANYONE, MessageOrigin, SenderPolicy
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:
    from scheduler.backend.endpoint import SchedulerEndpoint

__all__ = ["SCHEDULER_SENDERS"]


def _that_executor(endpoint: SchedulerEndpoint, msg: Any, origin: MessageOrigin) -> bool:
    """StatusUpdates, ExecutorHeartbeat, BarrierRequest: from the executor they name."""
    return origin.local or endpoint.is_executor(msg.executor_id, origin)


def _this_app(endpoint: SchedulerEndpoint, _msg: Any, origin: MessageOrigin) -> bool:
    """A caller holding an application's credential: this driver's application only.

    The driver's env lets in no other application's credential; this says so again
    where it matters, so that a mistake in that setting opens nothing here.
    """
    return bool(endpoint.app_id) and origin.app_id == endpoint.app_id


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
