"""Barrier execution on the RDD side: RDD.barrier() and which stages are barrier stages.

`RDDBarrier` marks the stage that computes its mapPartitions as a barrier
stage: the scheduler launches all of its tasks together or none, and a failed
task fails the whole stage attempt (`scheduler.core.barrier` syncs its tasks).
The checks Spark makes of a barrier job's RDD chain, and their messages, are
here too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = [
    "BARRIER_CHAIN_MESSAGE",
    "BARRIER_DYN_ALLOCATION_MESSAGE",
    "BARRIER_SLOTS_MESSAGE",
    "RDDBarrier",
    "is_barrier",
]

#: Spark's messages for the checks of a barrier job (DAGScheduler).
BARRIER_SLOTS_MESSAGE = (
    "[SPARK-24819]: Barrier execution mode does not allow run a barrier stage that requires "
    "more slots than the total number of slots in the cluster currently. Please init a new "
    "cluster with more resources(e.g. CPU, GPU) or repartition the input RDD(s) to reduce "
    "the number of slots required to run this barrier stage."
)
BARRIER_CHAIN_MESSAGE = (
    "[SPARK-24820][SPARK-24821]: Barrier execution mode does not allow the following "
    "pattern of RDD chain within a barrier stage:\n1. Ancestor RDDs that have different "
    "number of partitions from the resulting RDD (e.g. union()/coalesce()/first()/take()/"
    "PartitionPruningRDD). A workaround for first()/take() can be barrierRdd.collect().head "
    "(scala) or barrierRdd.collect()[0] (python).\n2. An RDD that depends on multiple "
    "barrier RDDs (e.g. barrierRdd1.zip(barrierRdd2))."
)
BARRIER_DYN_ALLOCATION_MESSAGE = (
    "[SPARK-24942]: Barrier execution mode does not support dynamic resource allocation for "
    'now. You can disable dynamic resource allocation by setting Spark conf "spark.'
    'dynamicAllocation.enabled" to "false".'
)


class RDDBarrier:
    """An RDD whose next mapPartitions runs as a barrier stage (PySpark's RDDBarrier)."""

    def __init__(self, rdd: RDD) -> None:
        self.rdd = rdd

    def mapPartitions(
        self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Apply `f(iterator)` to each partition, all tasks launched together."""
        return self.mapPartitionsWithIndex(
            functools.partial(_on_iterator, f), preservesPartitioning
        )

    def mapPartitionsWithIndex(
        self, f: Callable[[int, Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Apply `f(partition_index, iterator)` to each partition, all tasks together."""
        from scheduler.rdd.kinds import MapPartitionsRDD

        return MapPartitionsRDD(self.rdd, f, preservesPartitioning, is_from_barrier=True)


def _on_iterator(
    f: Callable[[Iterator[Any]], Iterable[Any]], _split: int, iterator: Iterator[Any]
) -> Iterable[Any]:
    return f(iterator)


def _stage_rdds(rdd: RDD) -> Iterator[RDD]:
    """`rdd` and every RDD it depends on without a shuffle (the RDDs of its stage), once each."""
    from scheduler.rdd.deps import ShuffleDependency

    seen: set[int] = set()
    todo = [rdd]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(d.rdd for d in current.dependencies if not isinstance(d, ShuffleDependency))


def is_barrier(rdd: RDD) -> bool:
    """Whether `rdd` or an RDD it depends on without a shuffle came from RDD.barrier()."""
    return any(getattr(r, "_is_from_barrier", False) for r in _stage_rdds(rdd))


def chain_ok(rdd: RDD, num_tasks: int) -> bool:
    """Spark's RDD-chain rule of a barrier stage: every RDD of the stage has `num_tasks`
    partitions and none depends on more than one barrier RDD."""
    from scheduler.rdd.deps import ShuffleDependency

    for current in _stage_rdds(rdd):
        if current.getNumPartitions() != num_tasks:
            return False
        narrow = [d.rdd for d in current.dependencies if not isinstance(d, ShuffleDependency)]
        if sum(1 for r in narrow if is_barrier(r)) > 1:
            return False
    return True
