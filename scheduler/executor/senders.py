"""Who may send what to an executor's endpoint.

Checked by the RpcEnv's dispatcher before the handler runs (`rpcenv.SenderPolicy`):
tasks, kills and stop only from the executor's own driver; block fetches stay
open to anyone connected, which for an executor started by a Worker means a
holder of its application's credential (its env checks nothing else). This
module never changes the endpoint's state.
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


def _same_app(endpoint: ExecutorEndpoint, _msg: Any, origin: MessageOrigin) -> bool:
    """Block fetches with a credential: another executor of our application.

    Our env checks no other application's credential anyway; the driver's commands
    come over the stream we opened to it, which carries no application.
    """
    return origin.app_id == endpoint.app_id


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
    app_rules={pb.FetchBlockRequest: _same_app},
)
