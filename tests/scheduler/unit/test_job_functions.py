"""count() and collect() give a stage one function to pickle, not a chain of wrappers
(issue 13: a tiny job's stage pickling), with the same results.

Builds RDDs on the unit tests' FakeContext and runs their partition functions in
this process: no workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import pytest

from scheduler.rdd.actions import _count_split
from scheduler.rdd.kinds import MapPartitionsRDD
from scheduler.rdd.rdd import RDD, _same_iterator, same_split
from scheduler.task.taskcontext import TaskContext

_NO_CONTEXT = cast(TaskContext, None)  # uncached RDDs compute without a task context


def _jobs_run_here(ctx: Any, monkeypatch: pytest.MonkeyPatch) -> list[RDD]:
    """Make `ctx.runJob` build its job's RDD as SparkContext.runJob does and compute it
    here; returns the list that collects each job's RDD."""
    ran: list[RDD] = []

    def run_job(
        rdd: RDD,
        partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
        partitions: Iterable[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        job_rdd = rdd.mapPartitions(partitionFunc)
        ran.append(job_rdd)
        parts = range(rdd.getNumPartitions()) if partitions is None else partitions
        return [item for split in parts for item in job_rdd.iterator(split, _NO_CONTEXT)]

    monkeypatch.setattr(ctx, "runJob", run_job)
    return ran


def test_the_identity_step_of_collect_is_fused_into_the_rdds_own_function(
    ctx: Any,
) -> None:
    mapped = ctx.parallelize(list(range(6)), 2).map(lambda x: 2 * x)
    job_rdd = mapped.mapPartitions(_same_iterator)  # what runJob builds for collect()
    assert isinstance(job_rdd, MapPartitionsRDD) and isinstance(mapped, MapPartitionsRDD)
    assert job_rdd.func is mapped.func
    assert job_rdd.prev is mapped.prev
    assert [list(job_rdd.iterator(s, _NO_CONTEXT)) for s in range(2)] == [[0, 2, 4], [6, 8, 10]]


def test_the_identity_step_stays_one_module_function_where_nothing_pipelines(
    ctx: Any,
) -> None:
    source = ctx.parallelize([1, 2, 3], 1)
    job_rdd = source.mapPartitions(_same_iterator)
    assert isinstance(job_rdd, MapPartitionsRDD)
    assert job_rdd.func is same_split and job_rdd.prev is source
    # A cached RDD is not pipelined into: the identity is its own step after it.
    cached = source.map(lambda x: x + 1).cache()
    after = cached.mapPartitions(_same_iterator)
    assert isinstance(after, MapPartitionsRDD)
    assert after.func is same_split and after.prev is cached


def test_count_maps_each_partition_to_its_count_with_one_module_function(
    ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran = _jobs_run_here(ctx, monkeypatch)
    source = ctx.parallelize(list(range(7)), 3)
    assert source.count() == 7
    (job_rdd,) = ran
    assert isinstance(job_rdd, MapPartitionsRDD)
    assert job_rdd.func is _count_split and job_rdd.prev is source
    # After a narrow step the count pipelines behind it; empty partitions count 0.
    odd = ctx.parallelize(list(range(9)), 4).filter(lambda x: x % 2 == 1)
    assert odd.count() == 4
    assert ctx.parallelize([], 3).count() == 0
    assert len(ran) == 3


def test_count_and_collect_fail_on_a_stop_iteration_as_before(
    ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _jobs_run_here(ctx, monkeypatch)

    def stop(x: int) -> int:
        raise StopIteration

    with pytest.raises(RuntimeError, match="StopIteration"):
        ctx.parallelize([1, 2], 1).map(stop).count()
    # collect() runs the fused function itself now: it fails the same way.
    for failing in (
        ctx.parallelize([1, 2], 1).map(stop),
        ctx.parallelize([1, 2], 1).filter(stop),
        ctx.parallelize([1, 2], 1).flatMap(stop),
    ):
        with pytest.raises(RuntimeError, match="StopIteration"):
            failing.collect()
