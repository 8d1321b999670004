"""The status tracker keeps what it reports from scheduler events, bounded like Spark's.

Tasks reach it as a `TaskCounter` (plain calls, no event per task); the rest as events.
"""

from __future__ import annotations

import pytest

from scheduler.api.tracker import (
    JobRegistry,
    SparkExecutorInfo,
    SparkJobInfo,
    SparkStageInfo,
    StatusTracker,
)
from scheduler.core.events import (
    End,
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    Launch,
    ListenerBus,
    StageCompleted,
    StageSubmitted,
)


def _launch(bus: ListenerBus, stage_id: int, attempt: int, *tasks: tuple[int, str]) -> None:
    for task_id, executor in tasks:
        bus.task_launched(stage_id, attempt, task_id, executor)
    bus.flush()  # as the scheduler does at the end of each round


def _end(bus: ListenerBus, stage_id: int, attempt: int, task_id: int, ok: bool = True) -> None:
    bus.task_ended(stage_id, attempt, task_id, ok)
    bus.flush()


def _tracker(retained: int | None = None) -> tuple[ListenerBus, StatusTracker]:
    bus = ListenerBus()
    registry = JobRegistry()
    registry.listen(bus, retained)
    bus.post(ExecutorAdded("1", "h1", 2))
    bus.post(ExecutorAdded("2", "h2", 4))
    return bus, StatusTracker(registry)


def test_a_running_stage_counts_its_tasks_and_its_executors_theirs() -> None:
    bus, tracker = _tracker()
    bus.post(JobStart(0, (0,), group="g"))
    bus.post(StageSubmitted(0, 0, 3, 0, "count at app.py:3"))
    _launch(bus, 0, 0, (10, "1"), (11, "2"), (12, "2"))
    _end(bus, 0, 0, 10)
    _end(bus, 0, 0, 11, ok=False)
    assert tracker.getActiveStageIds() == [0]
    assert tracker.getActiveJobsIds() == [0]
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "count at app.py:3", 3, 1, 1, 1)
    assert tracker.getExecutorInfos() == [
        SparkExecutorInfo("1", "h1", 2, 0),
        SparkExecutorInfo("2", "h2", 4, 1),
    ]
    _launch(bus, 0, 0, (13, "1"))  # the failed task's retry
    _end(bus, 0, 0, 12)
    _end(bus, 0, 0, 13)
    bus.post(StageCompleted(0, 0))
    bus.post(JobEnd(0, "SUCCEEDED"))
    assert tracker.getActiveStageIds() == []
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "count at app.py:3", 3, 0, 3, 1)
    assert tracker.getJobInfo(0) == SparkJobInfo(0, [0], "SUCCEEDED")
    assert [e.numRunningTasks for e in tracker.getExecutorInfos()] == [0, 0]


def test_tasks_still_running_when_their_attempt_completes_were_killed() -> None:
    bus, tracker = _tracker()
    bus.post(StageSubmitted(1, 0, 2, 0))
    _launch(bus, 1, 0, (20, "1"), (21, "2"))
    bus.post(StageCompleted(1, 0, failure="fetch failure: gone"))
    assert tracker.getStageInfo(1) == SparkStageInfo(1, 0, "stage 1", 2, 0, 0, 0)
    assert [e.numRunningTasks for e in tracker.getExecutorInfos()] == [0, 0]
    bus.post(StageSubmitted(1, 1, 2, 0))  # the resubmission: the latest attempt is reported
    _launch(bus, 1, 1, (22, "1"))
    info = tracker.getStageInfo(1)
    assert info is not None and (info.currentAttemptId, info.numActiveTasks) == (1, 1)
    assert tracker.getActiveStageIds() == [1]


def test_a_lost_executors_tasks_stop_running() -> None:
    bus, tracker = _tracker()
    bus.post(StageSubmitted(0, 0, 2, 0))
    _launch(bus, 0, 0, (1, "1"), (2, "2"))
    bus.post(ExecutorRemoved("2", "lost"))
    assert tracker.getExecutorInfos() == [SparkExecutorInfo("1", "h1", 2, 1)]
    info = tracker.getStageInfo(0)
    assert info is not None and info.numActiveTasks == 1


def test_finished_stages_are_kept_up_to_the_limit_running_ones_always() -> None:
    bus, tracker = _tracker(retained=2)
    bus.post(StageSubmitted(0, 0, 1, 0))  # still running at the end
    for stage_id in range(1, 5):
        bus.post(StageSubmitted(stage_id, 0, 1, 0))
        bus.post(StageCompleted(stage_id, 0))
    assert tracker.getActiveStageIds() == [0]
    assert tracker.getStageInfo(0) is not None
    assert [s for s in range(1, 5) if tracker.getStageInfo(s) is not None] == [4]
    assert tracker.getStageInfo(99) is None


def test_a_limit_that_is_not_positive_keeps_the_default() -> None:
    bus = ListenerBus()
    registry = JobRegistry()
    registry.listen(bus, 0)  # as the UI's store: the default, not "keep nothing"
    for stage_id in range(3):
        bus.post(StageSubmitted(stage_id, 0, 1, 0))
        bus.post(StageCompleted(stage_id, 0))
    tracker = StatusTracker(registry)
    assert all(tracker.getStageInfo(s) is not None for s in range(3))
    with pytest.raises(ValueError, match="retained_stages"):
        JobRegistry(retained_stages=0)


def test_finished_jobs_are_kept_up_to_retained_jobs_running_ones_always() -> None:
    bus = ListenerBus()
    registry = JobRegistry()
    registry.listen(bus, retained_jobs=3)
    tracker = StatusTracker(registry)
    bus.post(JobStart(0, (0,), group="g"))  # still running at the end
    for job_id in range(1, 2001):
        bus.post(JobStart(job_id, (job_id,), group="g"))
        bus.post(JobEnd(job_id, "SUCCEEDED"))
    assert tracker.getActiveJobsIds() == [0]
    # As Spark's: the limit counts running jobs too, and only finished ones are dropped.
    assert tracker.getJobIdsForGroup("g") == [0, 1999, 2000]
    assert tracker.getJobInfo(1) is None  # pushed out
    assert tracker.getJobInfo(2000) == SparkJobInfo(2000, [2000], "SUCCEEDED")
    assert tracker.getJobInfo(0) == SparkJobInfo(0, [0], "RUNNING")


def test_the_context_bounds_its_tracker_by_the_ui_settings() -> None:
    """The defaults are Spark's (1000 each); a registry is built with the conf's values."""
    assert JobRegistry()._retained_jobs == 1000 and JobRegistry()._retained == 1000
    with pytest.raises(ValueError, match="retained_jobs"):
        JobRegistry(retained_jobs=0)


def test_a_task_counter_that_fails_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def tasks_launched(self, launches: list[Launch]) -> None:
            raise RuntimeError("broken counter")

        def tasks_ended(self, ends: list[End]) -> None:
            raise RuntimeError("broken counter")

    bus = ListenerBus()
    bus.add_counter(Broken())
    registry = JobRegistry()
    registry.listen(bus)
    bus.post(StageSubmitted(0, 0, 1, 0))
    _launch(bus, 0, 0, (1, "1"))
    _end(bus, 0, 0, 1)
    assert StatusTracker(registry).getStageInfo(0) == SparkStageInfo(0, 0, "stage 0", 1, 0, 1, 0)
    assert "broken counter" in caplog.text


def test_counted_tasks_reach_the_tracker_before_the_next_event() -> None:
    """Launches and ends noted but not flushed are handed over before any event is posted."""
    bus, tracker = _tracker()
    bus.post(StageSubmitted(0, 0, 2, 0))
    bus.task_launched(0, 0, 1, "1")
    bus.task_launched(0, 0, 2, "2")
    bus.task_ended(0, 0, 1, True)
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "stage 0", 2, 0, 0, 0)  # not yet
    bus.post(StageCompleted(0, 0))  # flushes first: task 1 counted, then task 2 killed
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "stage 0", 2, 0, 1, 0)
