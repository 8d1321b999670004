"""TaskSetSpec: what every task of a stage attempt runs, as the executors get it.

The driver pickles one per stage attempt (`scheduler.task.stagecode`) and ships
it once per executor; a Python worker computes the spec's RDD partition and
either hands the result to `func` (result stages) or writes it as shuffle
output (map stages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.rdd.deps import ShuffleDependency
    from scheduler.rdd.rdd import RDD
    from scheduler.shuffle.mapoutput import MapOutput

__all__ = ["TaskSetSpec"]


@dataclass
class TaskSetSpec:
    """What every task of a stage attempt runs: pickled once, shipped once per executor."""

    stage_id: int
    stage_attempt: int
    rdd: RDD
    #: Result stages: func(task_context, iterator) -> value.
    func: Callable[[Any, Any], Any] | None
    #: Shuffle map stages: where to write (shuffle id and partitioner).
    shuffle_dep: ShuffleDependency | None
    #: Map outputs of every shuffle this stage reads, by shuffle id.
    map_outputs: dict[int, list[MapOutput | None]]
    properties: dict[str, str]
    #: RDD.barrier() stage: tasks get a BarrierTaskContext.
    barrier: bool = False
