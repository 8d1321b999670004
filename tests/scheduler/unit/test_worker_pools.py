"""Python workers pooled by memory limit (issue 14), without worker processes.

A stage of a task-only profile runs on the default executors, yet PySpark gives
its Python workers a limit of their own (the app's pyspark memory over that
stage's tasks per executor). A worker's lowered address-space limit cannot be
raised, so the executor keeps workers per limit: each task runs on a worker of
its task set's limit, idle workers of other limits wait for their next stage up
to a bound, and past it the least recently used one is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _fakes import fake_executor

from scheduler.executor.workerlimits import MEMORY_LIMIT_ENV


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """2 cores, spark.executor.pyspark.memory giving its workers 200 MiB each."""
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "200")
    for rt in fake_executor(monkeypatch):
        rt.add_stage("plain", b"code")
        rt.add_stage("two", b"code", limit_mb=400)
        yield rt


def _limits(rt: Any) -> list[int]:
    return [slot.limit_mb for slot in rt._slots]


def _where(rt: Any, task_id: int) -> int:
    """The limit of the worker that was sent `task_id`."""
    (slot,) = [s for s in rt._slots if task_id in s.conn.tasks]
    return slot.limit_mb  # type: ignore[no-any-return]


def _finish(rt: Any, *task_ids: int) -> None:
    """The workers report these tasks done (as their reader would)."""
    with rt._lock:
        for slot in rt._slots:
            slot.outstanding = type(slot.outstanding)(
                t for t in slot.outstanding if t[0] not in task_ids
            )
        rt._dispatch()


def test_the_executors_own_tasks_keep_its_workers(runtime: Any) -> None:
    assert _limits(runtime) == [200, 200]
    runtime.launch([(1, "plain", 0, 0), (2, "plain", 1, 0)])
    assert [_where(runtime, 1), _where(runtime, 2)] == [200, 200]
    assert not runtime._pooled or _limits(runtime) == [200, 200]


def test_a_task_set_of_another_limit_runs_on_workers_of_that_limit(runtime: Any) -> None:
    runtime.launch([(1, "two", 0, 0), (2, "plain", 0, 0)])
    assert _where(runtime, 1) == 400
    assert _where(runtime, 2) == 200
    assert sorted(_limits(runtime)) == [200, 200, 400]
    _finish(runtime, 1, 2)
    runtime.launch([(3, "two", 1, 0)])
    assert _where(runtime, 3) == 400 and len(runtime._slots) == 3  # the same worker again


def test_a_limit_equal_to_the_executors_is_its_own(runtime: Any) -> None:
    runtime.add_stage("same", b"code", limit_mb=200)
    runtime.add_stage("none", b"code", limit_mb=0)
    assert "same" not in runtime._stage_limits and "none" not in runtime._stage_limits


def test_idle_workers_of_other_limits_are_bounded(runtime: Any) -> None:
    runtime.add_stage("four", b"code", limit_mb=800)
    runtime.add_stage("half", b"code", limit_mb=100)
    runtime.launch([(1, "two", 0, 0)])
    _finish(runtime, 1)
    runtime.launch([(2, "four", 0, 0)])
    _finish(runtime, 2)
    assert sorted(_limits(runtime)) == [200, 200, 400, 800]  # two workers a core: the bound
    runtime.forget(["two"], [], [])
    runtime.launch([(3, "half", 0, 0)])
    _finish(runtime, 3)
    # An idle worker of a limit no live task set has made room: the 400 one.
    assert sorted(_limits(runtime)) == [100, 200, 200, 800]
    assert _where(runtime, 3) == 100
    runtime.launch([(4, "plain", 0, 0), (5, "plain", 1, 0)])
    assert [_where(runtime, 4), _where(runtime, 5)] == [200, 200]
    assert len(runtime._slots) == 4


def test_a_worker_holding_cached_partitions_is_replaced_last(runtime: Any) -> None:
    runtime.add_stage("four", b"code", limit_mb=800)
    runtime.add_stage("half", b"code", limit_mb=100)
    with runtime._lock:
        runtime._note_cached(runtime._slots[0], [(7, 0)], [], 1000)
    runtime.launch([(1, "two", 0, 0)])
    _finish(runtime, 1)
    runtime.launch([(2, "four", 0, 0)])
    _finish(runtime, 2)
    runtime.launch([(3, "half", 0, 0)])
    # Every limit has a live task set: worker 1, which holds nothing and was used longest
    # ago, made room; worker 0, as idle as it, keeps its cached partition.
    assert runtime._slots[0].limit_mb == 200 and runtime._slots[0].cached == {(7, 0)}
    assert _limits(runtime) == [200, 100, 400, 800]


def test_a_task_does_not_follow_its_partition_to_a_worker_of_another_limit(
    runtime: Any,
) -> None:
    with runtime._lock:
        runtime._note_cached(runtime._slots[0], [(7, 0)], [], 1000)
    runtime.launch([(1, "two", 0, 0)])
    assert _where(runtime, 1) == 400  # partition 0 lives in a 200 MiB worker: not there
    runtime.launch([(2, "plain", 0, 0)])
    assert 2 in runtime._slots[0].conn.tasks  # its own limit: process locality holds


def test_a_replaced_worker_forgets_what_its_process_held(runtime: Any) -> None:
    runtime.add_stage("four", b"code", limit_mb=800)
    runtime.add_stage("half", b"code", limit_mb=100)
    for task_id, key in ((1, "two"), (2, "four")):
        runtime.launch([(task_id, key, 0, 0)])
        _finish(runtime, task_id)
    victim = next(s for s in runtime._slots if s.limit_mb == 400)
    assert "two" in victim.stages
    runtime.forget(["two"], [], [])  # small: the forget waits to ride with a task
    runtime.launch([(3, "half", 0, 0)])
    assert victim.limit_mb == 100 and victim.stages == {"half"}
    assert victim.conn.tasks == [3]
