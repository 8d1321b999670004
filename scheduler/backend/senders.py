"""Who may send what to a driver's scheduler endpoint.

The rules are checked by the RpcEnv's dispatcher before the endpoint's handler
runs (`rpcenv.SenderPolicy`): an executor's reports only from the connection it
registered over; registration and block fetches stay open to anyone connected
(the shared secret gates them). This module never changes the endpoint's state.
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
)
