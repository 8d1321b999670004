"""Fixtures of the scheduler's unit tests: a fake context to build lineages without processes."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from rpcenv import Conf
from scheduler.rdd.kinds import ParallelCollectionRDD, parallelize_slices

if TYPE_CHECKING:
    from scheduler.rdd.deps import ShuffleDependency
    from scheduler.rdd.host import RDDHost
    from scheduler.rdd.rdd import RDD
    from scheduler.task.accumulators import Accumulator, AccumulatorParam
    from scheduler.task.profiler import ProfilerCollector

_F = TypeVar("_F", bound=Callable[..., Any])


class FakeContext:
    """An RDDHost without an RpcEnv: enough to build lineages and hand them to a DAG.

    It runs no job: the scheduler unit tests drive the DAG and task scheduler
    themselves, so the job members fail loudly if a test reaches them.
    """

    def __init__(self) -> None:
        self._rdd_ids = itertools.count()
        self._shuffle_ids = itertools.count()
        self.settings = Conf({})
        self.persisted: dict[int, RDD] = {}
        self.defaultParallelism = 2
        self.checkpoint_dir: str | None = None
        #: spark.python.profile is off: RDDs made here carry no profiler.
        self.profiler_collector: ProfilerCollector | None = None

    def new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def python_worker_memory_mb(self) -> int:
        return 512

    def mark_persisted(self, rdd: RDD) -> None:
        self.persisted[rdd.id()] = rdd

    def unpersist_rdd(self, rdd_id: int, blocking: bool) -> None:
        self.persisted.pop(rdd_id, None)

    def clean_shuffles(self, shuffle_ids: list[int], blocking: bool) -> None:
        raise NotImplementedError("FakeContext holds no shuffles")

    def accumulator(
        self, value: Any, accum_param: AccumulatorParam[Any] | None = None
    ) -> Accumulator[Any]:
        raise NotImplementedError("FakeContext makes no accumulators")

    def remove_broadcast(self, broadcast_id: int, destroy: bool) -> None:
        raise NotImplementedError("FakeContext makes no broadcasts")

    def runJob(
        self,
        rdd: RDD,
        partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
        partitions: Iterable[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        raise NotImplementedError("FakeContext runs no jobs: drive a DAGScheduler instead")

    def run_map_stage(self, dep: ShuffleDependency) -> dict[int, Any]:
        raise NotImplementedError("FakeContext runs no jobs: drive a DAGScheduler instead")

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        raise NotImplementedError("FakeContext runs no jobs")

    def with_local_properties(self, f: _F) -> _F:
        return f  # no local properties here

    def parallelize(self, data: list[Any], n: int) -> RDD:
        return ParallelCollectionRDD(self, parallelize_slices(data, n))


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


if TYPE_CHECKING:
    _host: RDDHost = FakeContext()  # mypy checks that the fake keeps to the protocol
