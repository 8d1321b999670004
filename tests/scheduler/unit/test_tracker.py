"""The status tracker keeps what it reports from scheduler events, bounded like Spark's."""

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
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    LaunchedTask,
    ListenerBus,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
)


def _launch(stage_id: int, attempt: int, *tasks: tuple[int, str]) -> TasksLaunched:
    return TasksLaunched(
        tuple(
            LaunchedTask(task_id, stage_id, attempt, i, 0, executor, i, True, False)
            for i, (task_id, executor) in enumerate(tasks)
        )
    )


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
    bus.post(_launch(0, 0, (10, "1"), (11, "2"), (12, "2")))
    bus.post(TaskEnd(0, 0, True, 10, executor_id="1"))
    bus.post(TaskEnd(0, 0, False, 11, executor_id="2"))
    assert tracker.getActiveStageIds() == [0]
    assert tracker.getActiveJobsIds() == [0]
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "count at app.py:3", 3, 1, 1, 1)
    assert tracker.getExecutorInfos() == [
        SparkExecutorInfo("1", "h1", 2, 0),
        SparkExecutorInfo("2", "h2", 4, 1),
    ]
    bus.post(_launch(0, 0, (13, "1")))  # the failed task's retry
    bus.post(TaskEnd(0, 0, True, 12, executor_id="2"))
    bus.post(TaskEnd(0, 0, True, 13, executor_id="1"))
    bus.post(StageCompleted(0, 0))
    bus.post(JobEnd(0, "SUCCEEDED"))
    assert tracker.getActiveStageIds() == []
    assert tracker.getStageInfo(0) == SparkStageInfo(0, 0, "count at app.py:3", 3, 0, 3, 1)
    assert tracker.getJobInfo(0) == SparkJobInfo(0, [0], "SUCCEEDED")
    assert [e.numRunningTasks for e in tracker.getExecutorInfos()] == [0, 0]


def test_tasks_still_running_when_their_attempt_completes_were_killed() -> None:
    bus, tracker = _tracker()
    bus.post(StageSubmitted(1, 0, 2, 0))
    bus.post(_launch(1, 0, (20, "1"), (21, "2")))
    bus.post(StageCompleted(1, 0, failure="fetch failure: gone"))
    assert tracker.getStageInfo(1) == SparkStageInfo(1, 0, "stage 1", 2, 0, 0, 0)
    assert [e.numRunningTasks for e in tracker.getExecutorInfos()] == [0, 0]
    bus.post(StageSubmitted(1, 1, 2, 0))  # the resubmission: the latest attempt is reported
    bus.post(_launch(1, 1, (22, "1")))
    info = tracker.getStageInfo(1)
    assert info is not None and (info.currentAttemptId, info.numActiveTasks) == (1, 1)
    assert tracker.getActiveStageIds() == [1]


def test_a_lost_executors_tasks_stop_running() -> None:
    bus, tracker = _tracker()
    bus.post(StageSubmitted(0, 0, 2, 0))
    bus.post(_launch(0, 0, (1, "1"), (2, "2")))
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
