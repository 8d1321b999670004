"""PySpark compatibility: barrier execution (``RDD.barrier()``, issue 14).

All tasks of a barrier stage start together; ``BarrierTaskContext.barrier()``
syncs them, ``allGather`` returns every task's message in partition order and
``getTaskInfos`` where each runs. One failed task reruns the whole stage; a
stage needing more slots than the cluster has fails with Spark's message; a
sync that not every task joins times out (those with their own contexts:
test_compat_barrier_failures.py). Every expected value was observed
on PySpark 4.3 first (local[2]); the cluster variant has two one-core workers,
so two slots as well.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler import BarrierTaskContext, TaskContext


def _gather(iterator: Any) -> Any:
    ctx = BarrierTaskContext.get()
    items = list(iterator)
    messages = ctx.allGather(f"p{ctx.partitionId()}:{len(items)}")
    return [(ctx.partitionId(), messages)]


def test_all_gather_returns_every_message_in_partition_order(sc: Any) -> None:
    got = sc.parallelize(range(10), 2).barrier().mapPartitions(_gather).collect()
    expected = ["p0:5", "p1:5"]
    assert got == [(0, expected), (1, expected)]


def test_barrier_waits_for_every_task_of_the_stage(sc: Any, tmp_path: Path) -> None:
    marks = str(tmp_path)

    def sync(index: int, iterator: Any) -> Any:
        ctx = BarrierTaskContext.get()
        if index == 1:
            time.sleep(0.5)  # the other task reaches barrier() first and must wait
        Path(marks, f"before-{index}").touch()
        ctx.barrier()
        seen = sorted(n for n in os.listdir(marks) if n.startswith("before-"))
        ctx.barrier()
        return [(index, seen, list(iterator))]

    got = sc.parallelize([1, 2, 3, 4], 2).barrier().mapPartitionsWithIndex(sync).collect()
    assert got == [(0, ["before-0", "before-1"], [1, 2]), (1, ["before-0", "before-1"], [3, 4])]


def _infos(iterator: Any) -> Any:
    ctx = BarrierTaskContext.get()
    infos = ctx.getTaskInfos()
    plain = TaskContext.get()
    return [
        (
            ctx.partitionId(),
            [type(i).__name__ for i in infos],
            [i.address for i in infos],
            ctx.attemptNumber(),
            isinstance(ctx.stageId(), int),
            isinstance(ctx.taskAttemptId(), int),
            plain is not None and plain.partitionId() == ctx.partitionId(),
        )
    ]


def test_get_task_infos_gives_every_tasks_address_in_partition_order(sc: Any) -> None:
    got = sc.parallelize(range(4), 2).barrier().mapPartitions(_infos).collect()
    assert [g[0] for g in got] == [0, 1]
    assert all(g[1] == ["BarrierTaskInfo", "BarrierTaskInfo"] for g in got)
    assert got[0][2] == got[1][2]  # every task sees the same list
    for address in got[0][2]:
        host, _, port = address.rpartition(":")
        assert host and port.isdigit(), address
    assert all(g[3:] == (0, True, True, True) for g in got)


def test_barrier_task_context_get_outside_a_barrier_stage_fails(sc: Any) -> None:
    def outside(_: Any) -> Any:
        try:
            BarrierTaskContext.get()
        except Exception as exc:
            return [type(exc).__name__]
        return ["no error"]

    assert sc.parallelize([1], 1).mapPartitions(outside).collect() != ["no error"]


def test_a_barrier_stage_after_a_shuffle_runs_as_its_own_stage(sc: Any) -> None:
    pairs = sc.parallelize(range(8), 2).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b)
    got = pairs.barrier().mapPartitions(_gather).collect()
    assert got[0][1] == got[1][1] and [g[0] for g in got] == [0, 1]
    assert sorted(pairs.collect()) == [(0, 12), (1, 16)]


def test_a_failing_task_of_a_barrier_result_stage_fails_the_job(sc: Any) -> None:
    def failing(index: int, iterator: Any) -> Any:
        ctx = BarrierTaskContext.get()
        if index == 1:
            raise ValueError("this task fails")
        ctx.barrier()
        return list(iterator)

    rdd = sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(failing)
    with pytest.raises(Exception) as failure:
        rdd.collect()
    assert "Could not recover from a failed barrier ResultStage" in str(failure.value)
    assert "this task fails" in str(failure.value)
    assert re.search(
        r"Stage failed because barrier task ResultTask\(\d+, 1\) finished unsuccessfully",
        str(failure.value),
    ), str(failure.value)


def test_take_on_a_barrier_rdd_is_refused(sc: Any) -> None:
    rdd = sc.parallelize(range(6), 2).barrier().mapPartitions(lambda it: it)
    with pytest.raises(Exception, match=r"\[SPARK-24820\]\[SPARK-24821\]: Barrier execution"):
        rdd.take(1)
    assert rdd.collect()[0] == 0  # the workaround Spark's message names
