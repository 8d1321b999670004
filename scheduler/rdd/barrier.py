"""Barrier execution: RDD.barrier() and the driver's barrier coordinator.

`RDDBarrier` marks the stage that computes its mapPartitions as a barrier
stage: the scheduler launches all of its tasks together or none, and a failed
task fails the whole stage attempt. Inside such a task `BarrierTaskContext`
reaches this module's `BarrierCoordinator` on the driver (through the executor)
for barrier() and allGather(): a sync round completes when every task of the
stage attempt sent the request of the same epoch, and fails them all after
spark.barrier.sync.timeout. The coordinator holds no lock of its own: the task
scheduler's lock serialises calls, and the timer thread takes it too.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = [
    "BARRIER_CHAIN_MESSAGE",
    "BARRIER_DYN_ALLOCATION_MESSAGE",
    "BARRIER_SLOTS_MESSAGE",
    "BarrierCoordinator",
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


@dataclass
class _Round:
    """The requests of one barrier epoch of one stage attempt, by partition."""

    epoch: int
    method: str
    messages: dict[int, str] = field(default_factory=dict)
    #: partition -> (reply(messages), fail(error text)).
    waiters: dict[int, tuple[Callable[[list[str]], None], Callable[[str], None]]] = field(
        default_factory=dict
    )
    timer: threading.Timer | None = None


class BarrierCoordinator:
    """Syncs the tasks of each barrier stage attempt (Spark's BarrierCoordinator).

    Args:
        timeout: spark.barrier.sync.timeout in seconds.
        lock: the task scheduler's lock, taken by the timeout timer.
    """

    def __init__(self, timeout: float, lock: Any) -> None:
        self.timeout = timeout
        self._lock = lock
        #: (stage id, attempt) -> how many tasks, their addresses by partition.
        self._attempts: dict[tuple[int, int], dict[int, str]] = {}
        self._epochs: dict[tuple[int, int], int] = {}
        self._rounds: dict[tuple[int, int], _Round] = {}

    def launched(self, stage_id: int, attempt: int, addresses: dict[int, str]) -> None:
        """All tasks of a barrier stage attempt were launched, at these addresses."""
        self._attempts[(stage_id, attempt)] = dict(addresses)
        self._epochs[(stage_id, attempt)] = 0

    def finished(self, stage_id: int, attempt: int, reason: str) -> None:
        """The attempt ended: fail whatever still waits, forget it."""
        key = (stage_id, attempt)
        self._attempts.pop(key, None)
        self._epochs.pop(key, None)
        self._fail_round(key, reason)

    def request(
        self,
        stage_id: int,
        attempt: int,
        partition: int,
        epoch: int,
        method: str,
        message: str,
        reply: Callable[[list[str]], None],
        fail: Callable[[str], None],
    ) -> None:
        """A task's barrier()/allGather()/getTaskInfos(); answers through reply or fail."""
        key = (stage_id, attempt)
        name = f"Stage {stage_id} (Stage Attempt {attempt})"
        addresses = self._attempts.get(key)
        if addresses is None:
            fail(f"{name} is not a running barrier stage attempt")
            return
        if partition not in addresses:
            fail(f"{name} has no barrier task for partition {partition}")
            return
        if method == "getTaskInfos":
            reply([addresses[p] for p in sorted(addresses)])
            return
        current = self._epochs[key]
        if epoch != current:
            fail(
                f"The request to sync of {name} with barrier epoch {epoch} has already "
                f"finished. Maybe the caller has called barrier() more than once, or the "
                f"coordinator is at barrier epoch {current}"
            )
            return
        round_ = self._rounds.get(key)
        if round_ is None:
            round_ = self._rounds[key] = _Round(epoch, method)
            if self.timeout > 0:
                timer = threading.Timer(self.timeout, self._timed_out, (key, epoch))
                timer.daemon = True
                round_.timer = timer
                timer.start()
        if method != round_.method:
            self._fail_round(
                key,
                f"Different barrier sync types found for the sync {name}: {round_.method}, "
                f"{method}. Please use the same barrier sync type within a single sync.",
            )
            fail(f"Different barrier sync types found for the sync {name}")
            return
        round_.messages[partition] = message
        round_.waiters[partition] = (reply, fail)
        if len(round_.waiters) < len(addresses):
            return
        del self._rounds[key]
        if round_.timer is not None:
            round_.timer.cancel()
        self._epochs[key] = current + 1
        ordered = [round_.messages[p] for p in sorted(round_.messages)]
        for done, _ in round_.waiters.values():
            done(ordered if method == "allGather" else [])

    def _timed_out(self, key: tuple[int, int], epoch: int) -> None:
        with self._lock:
            round_ = self._rounds.get(key)
            if round_ is None or round_.epoch != epoch:
                return
            seconds = f"{self.timeout:g}"
            self._fail_round(
                key,
                f"The coordinator didn't get all barrier sync requests for barrier epoch "
                f"{epoch} from Stage {key[0]} (Stage Attempt {key[1]}) within {seconds} "
                f"second(s).",
            )

    def _fail_round(self, key: tuple[int, int], reason: str) -> None:
        round_ = self._rounds.pop(key, None)
        if round_ is None:
            return
        if round_.timer is not None:
            round_.timer.cancel()
        for _, fail in round_.waiters.values():
            fail(reason)
