"""An executor queues a task set's tasks in busy workers' pipes only once its own proved tiny."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _fakes import fake_executor

from scheduler.executor.runtime import _PREFETCH_TINY, _PROVEN_TASKS, ExecutorRuntime, _Slot


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExecutorRuntime]:
    yield from fake_executor(monkeypatch)


def _sent(rt: ExecutorRuntime) -> list[list[int]]:
    return [list(slot.conn.tasks) for slot in rt._slots]  # type: ignore[union-attr]


def _finish(rt: ExecutorRuntime, slot: _Slot, seconds: float) -> None:
    """The worker's reply for its oldest task, as the reader thread handles it."""
    with rt._lock:
        task = slot.outstanding.popleft()
        rt._note_run_time(seconds, task[1])
        rt._dispatch()


def _tasks(key: str, first: int, n: int) -> list[tuple[int, str, int, int]]:
    return [(first + i, key, i, 0) for i in range(n)]


def _finish_all(rt: ExecutorRuntime, seconds: float) -> None:
    while any(slot.outstanding for slot in rt._slots):
        for slot in rt._slots:
            if slot.outstanding:
                _finish(rt, slot, seconds)


def test_a_tiny_set_queues_in_pipes_only_after_its_own_tasks_ended_fast(executor: Any) -> None:
    executor.add_stage("a", b"code")
    executor.launch(_tasks("a", 0, 200))
    assert [len(s) for s in _sent(executor)] == [1, 1]  # none known yet: one a worker
    for done in range(_PROVEN_TASKS - 1):
        _finish(executor, executor._slots[done % 2], 0.0005)
        assert max(len(s.outstanding) for s in executor._slots) == 1
    _finish(executor, executor._slots[1], 0.0005)
    assert max(len(s.outstanding) for s in executor._slots) == _PREFETCH_TINY


def test_a_long_set_after_tiny_ones_goes_one_a_free_worker(executor: Any) -> None:
    executor.add_stage("a", b"code")
    executor.launch(_tasks("a", 0, 100))
    _finish_all(executor, 0.0005)  # the executor's tasks so far were all tiny
    executor.add_stage("b", b"code")
    executor.launch(_tasks("b", 1000, 4))
    # One a worker; the other two wait here for whichever worker frees first.
    assert [s.outstanding[-1][1] for s in executor._slots] == ["b", "b"]
    assert [len(s.outstanding) for s in executor._slots] == [1, 1]
    assert [t[0] for t in executor._queue] == [1002, 1003]
    _finish(executor, executor._slots[1], 0.3)
    assert [len(s.outstanding) for s in executor._slots] == [1, 1]
    assert [t[0] for t in executor._queue] == [1003]


def test_a_set_turning_long_stops_queueing_in_pipes(executor: Any) -> None:
    executor.add_stage("a", b"code")
    executor.launch(_tasks("a", 0, 200))
    for done in range(_PROVEN_TASKS):
        _finish(executor, executor._slots[done % 2], 0.0005)
    assert max(len(s.outstanding) for s in executor._slots) == _PREFETCH_TINY
    worker = executor._slots[0]
    _finish(executor, worker, 0.3)  # a long one: the set's average is no longer tiny
    assert len(worker.outstanding) == _PREFETCH_TINY - 1  # not refilled
    for _ in range(_PREFETCH_TINY - 1):
        _finish(executor, worker, 0.3)
    assert len(worker.outstanding) == 1  # refilled once empty, with one task only
