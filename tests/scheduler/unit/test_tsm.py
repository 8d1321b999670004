"""TaskSetManager without processes: retries, locality, executor loss, speculation."""

from __future__ import annotations

from typing import Any

from scheduler.core.dag import TaskSet
from scheduler.core.tasksetmanager import TaskSetManager
from scheduler.rdd.stagespec import TaskSetSpec


def _task_set(n: int, preferred: list[list[str]] | None = None) -> TaskSet:
    spec = TaskSetSpec(0, 0, None, None, None, {}, {})  # type: ignore[arg-type]
    return TaskSet(0, 0, 0, list(range(n)), list(range(n)), preferred or [[] for _ in range(n)],
                   spec, {})  # fmt: skip


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def test_a_failing_task_is_retried_then_aborts_the_set_after_max_failures() -> None:
    tsm = TaskSetManager(_task_set(1), max_failures=4)
    ids = Ids()
    for attempt in range(4):
        a = tsm.resource_offer("e1", 0.0, 1, ids())
        assert a is not None and a.attempt == attempt
        tsm.handle_failure(a.task_id, "ValueError: boom")
    assert tsm.zombie and tsm.is_finished()
    assert tsm.abort_reason is not None
    assert "failed 4 times" in tsm.abort_reason and "ValueError: boom" in tsm.abort_reason
    assert tsm.resource_offer("e1", 0.0, 1, ids()) is None


def test_a_retry_prefers_an_executor_the_task_has_not_failed_on() -> None:
    tsm = TaskSetManager(_task_set(1), max_failures=4)
    ids = Ids()
    a = tsm.resource_offer("e1", 0.0, 2, ids())
    assert a is not None
    tsm.handle_failure(a.task_id, "boom")
    assert tsm.resource_offer("e1", 0.0, 2, ids()) is None
    b = tsm.resource_offer("e2", 0.0, 2, ids())
    assert b is not None and b.index == 0 and b.attempt == 1


def test_tasks_lost_with_their_executor_are_requeued_without_counting() -> None:
    tsm = TaskSetManager(_task_set(2), max_failures=1)
    ids = Ids()
    a = tsm.resource_offer("e1", 0.0, 1, ids())
    b = tsm.resource_offer("e1", 0.0, 1, ids())
    assert a is not None and b is not None
    assert sorted(tsm.executor_lost("e1")) == sorted([a.task_id, b.task_id])
    assert not tsm.zombie and sorted(tsm.pending) == [0, 1]
    for _ in range(2):
        c = tsm.resource_offer("e2", 0.0, 1, ids())
        assert c is not None
        tsm.handle_success(c.task_id, 1.0)
    assert tsm.is_finished() and not tsm.zombie


def test_locality_waits_for_the_preferred_executor_then_gives_up() -> None:
    tsm = TaskSetManager(_task_set(2, [["e2"], []]), locality_wait=3.0, now=0.0)
    ids = Ids()
    first = tsm.resource_offer("e1", 0.5, 2, ids())
    assert first is not None and first.index == 1  # the task without preference
    assert tsm.resource_offer("e1", 1.0, 2, ids()) is None  # task 0 waits for e2
    late = tsm.resource_offer("e1", 4.0, 2, ids())
    assert late is not None and late.index == 0


def test_the_preferred_executor_gets_its_task_first() -> None:
    tsm = TaskSetManager(_task_set(3, [[], [], ["e2"]]), locality_wait=3.0)
    a = tsm.resource_offer("e2", 0.0, 2, 1)
    assert a is not None and a.index == 2


def test_a_duplicate_success_is_ignored() -> None:
    tsm = TaskSetManager(_task_set(1), speculation=True)
    ids = Ids()
    a = tsm.resource_offer("e1", 0.0, 2, ids())
    assert a is not None
    index, kill = tsm.handle_success(a.task_id, 1.0)
    assert index == 0 and kill == []
    assert tsm.handle_success(a.task_id, 1.0) == (None, [])


def test_a_slow_task_is_speculated_on_another_executor() -> None:
    tsm = TaskSetManager(_task_set(4), speculation=True, speculation_quantile=0.75)
    ids = Ids()
    attempts: list[Any] = []
    for executor in ("e1", "e1", "e2", "e2"):
        attempt = tsm.resource_offer(executor, 0.0, 2, ids())
        assert attempt is not None
        attempts.append(attempt)
    for attempt in attempts[1:]:
        tsm.handle_success(attempt.task_id, 1.0)
    assert tsm.check_speculation(1.2) == []  # not slow yet
    assert tsm.check_speculation(5.0) == [0]
    assert tsm.resource_offer("e1", 5.0, 2, ids()) is None  # not where it already runs
    copy = tsm.resource_offer("e2", 5.0, 2, ids())
    assert copy is not None and copy.index == 0 and copy.speculative
    index, kill = tsm.handle_success(copy.task_id, 6.0)
    assert index == 0 and kill == [attempts[0].task_id]


def test_result_sizes_past_the_limit_give_sparks_abort_reason() -> None:
    from scheduler.core.tasksetmanager import bytes_to_string

    assert [bytes_to_string(n) for n in (0, 2047, 2048, 1 << 20, 3 << 29, 1 << 30, 5 << 40)] == [
        "0.0 B", "2047.0 B", "2.0 KiB", "1024.0 KiB", "1536.0 MiB", "1024.0 MiB", "5.0 TiB",
    ]  # fmt: skip
    tsm = TaskSetManager(_task_set(3))
    assert tsm.count_result(600 << 10, 1 << 20) is None
    assert tsm.count_result(600 << 10, 1 << 20) == (
        "Total size of serialized results of 2 tasks (1200.0 KiB) is bigger than "
        "spark.driver.maxResultSize (1024.0 KiB)"
    )
    unlimited = TaskSetManager(_task_set(1))
    assert unlimited.count_result(5 << 30, 0) is None
