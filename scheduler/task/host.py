"""What a broadcast or a profiler needs from the driver's context, as a protocol.

Shared variables live in `task/`, below the RDDs and far below SparkContext:
they reach the context that made them only through `SharedVariableHost`.
SparkContext implements it; `scheduler.rdd.host.RDDHost` extends it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from scheduler.task.accumulators import Accumulator, AccumulatorParam

__all__ = ["SharedVariableHost"]


class SharedVariableHost(Protocol):
    """The driver side of broadcasts and accumulators."""

    def accumulator(
        self, value: Any, accum_param: AccumulatorParam[Any] | None = None
    ) -> Accumulator[Any]:
        """A new accumulator starting at `value` (PySpark's `sc.accumulator`)."""
        ...

    def remove_broadcast(self, broadcast_id: int, destroy: bool) -> None:
        """Drop the executors' copies of a broadcast; `destroy`: the driver's too."""
        ...
