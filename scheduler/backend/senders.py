"""Who may send what to a driver's scheduler endpoint and to an executor.

The rules are checked by the RpcEnv's dispatcher before the endpoint's handler
runs (`rpcenv.SenderPolicy`): an executor's reports only from the connection it
registered over, a driver's commands only from that driver; registration and
block fetches stay open to anyone connected (the shared secret gates them).
This module never changes an endpoint's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpcenv import ANYONE, MessageOrigin, SenderPolicy
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:
    from scheduler.backend.endpoint import SchedulerEndpoint
    from scheduler.executor.endpoint import ExecutorEndpoint

__all__ = ["EXECUTOR_SENDERS", "SCHEDULER_SENDERS"]


def _that_executor(endpoint: SchedulerEndpoint, msg: Any, origin: MessageOrigin) -> bool:
    """StatusUpdates, ExecutorHeartbeat, BarrierRequest: from the executor they name."""
    return origin.local or endpoint.is_executor(msg.executor_id, origin)


def _the_driver(endpoint: ExecutorEndpoint, _msg: Any, origin: MessageOrigin) -> bool:
    """Tasks, kills, block removals, stop: from our driver's connection (or this process)."""
    if origin.local:
        return True
    return origin.address == endpoint.driver_address and endpoint.driver_env_id in (
        "",
        origin.peer_id,
    )


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

#: An executor's endpoint.
EXECUTOR_SENDERS = SenderPolicy(
    {
        pb.FetchBlockRequest: ANYONE,
        pb.LaunchTasks: _the_driver,
        pb.KillTasks: _the_driver,
        pb.RemoveBlocks: _the_driver,
        pb.StopExecutor: _the_driver,
    },
    "executor endpoint",
)
