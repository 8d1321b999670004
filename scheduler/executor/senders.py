"""Who may send what to an executor's endpoint.

Checked by the RpcEnv's dispatcher before the handler runs (`rpcenv.SenderPolicy`):
tasks, kills and stop only from the executor's own driver; block fetches stay
open to anyone connected (the shared secret gates them). This module never
changes the endpoint's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rpcenv import ANYONE, MessageOrigin, SenderPolicy
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:
    from scheduler.executor.endpoint import ExecutorEndpoint

__all__ = ["EXECUTOR_SENDERS"]


def _the_driver(endpoint: ExecutorEndpoint, _msg: Any, origin: MessageOrigin) -> bool:
    """Tasks, kills, block removals, stop: from our driver's connection (or this process)."""
    if origin.local:
        return True
    return origin.address == endpoint.driver_address and endpoint.driver_env_id in (
        "",
        origin.peer_id,
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
