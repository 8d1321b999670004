"""A task that failed to fetch a map output, as the UI, the event log and the tracker show it.

The core posts it a TaskEnd (failed, with a `FetchFailure`) before its stage
attempt's StageCompleted (tests/scheduler/unit/test_events.py checks that order
on a real scheduler, and that the status tracker counts the task failed). Here
that sequence goes to the UI's store, and through the event log's JSON and
back: the stage page lists the failed attempt with its reason and the task
with Spark's FetchFailed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from scheduler.core.events import (
    ExecutorAdded,
    FetchFailure,
    JobEnd,
    JobStart,
    LaunchedTask,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
)
from scheduler.status.jsonprotocol import EventEncoder, replay_events
from scheduler.status.ui import AppPages, AppStatusStore, _views

LOST = FetchFailure(shuffle_id=0, map_index=1, executor_id="1", message="gone: map-1.data")


def _events() -> list[SchedulerEvent]:
    """A two-stage job whose result stage's first attempt hits a fetch failure."""
    stages = (
        {"stage_id": 0, "name": "groupByKey at app.py:3", "num_tasks": 2, "parent_ids": [],
         "is_map": True, "rdds": []},
        {"stage_id": 1, "name": "collect at app.py:4", "num_tasks": 2, "parent_ids": [0],
         "is_map": False, "rdds": []},
    )  # fmt: skip
    events: list[SchedulerEvent] = [ExecutorAdded("1", "10.0.0.1", 2), JobStart(7, (0, 1), stages)]
    task_id = 0

    def attempt(stage: int, attempt: int, indices: list[int], ends: list[TaskEnd | None]) -> None:
        nonlocal task_id
        launched = []
        for index in indices:
            launched.append(
                LaunchedTask(task_id, stage, attempt, index, 0, "1", index, True, False)
            )
            task_id += 1
        events.append(StageSubmitted(stage, attempt, len(indices), 7))
        events.append(TasksLaunched(tuple(launched)))
        for task, end in zip(launched, ends, strict=True):
            if end == "killed":
                continue
            if not isinstance(end, TaskEnd):
                end = TaskEnd(stage, attempt, True, task.task_id, task.task_index, 0,
                              task.partition, "1", launched_ago=0.0, run_seconds=0.1)  # fmt: skip
            events.append(end._replace(task_id=task.task_id, task_index=task.task_index))

    attempt(0, 0, [0, 1], ["ok", "ok"])
    events.append(StageCompleted(0, 0))
    fetch_failed = TaskEnd(
        1, 0, False, partition=0, executor_id="1", launched_ago=0.0, run_seconds=0.2,
        error="Traceback (most recent call last):\nFetchFailedError: gone: map-1.data",
        error_type="FetchFailed", fetch_failure=LOST,
    )  # fmt: skip
    attempt(1, 0, [0, 1], [fetch_failed, "killed"])  # the killed one gets no TaskEnd
    events.append(StageCompleted(1, 0, "fetch failure: gone: map-1.data"))
    attempt(0, 1, [1], ["ok"])
    events.append(StageCompleted(0, 1))
    attempt(1, 1, [0, 1], ["ok", "ok"])
    events.append(StageCompleted(1, 1))
    events.append(JobEnd(7, "SUCCEEDED"))
    return events


def _check_store(store: AppStatusStore, live: bool) -> None:
    """What both stores show; `live`: also the killed task (a log has no TaskEnd of it)."""
    failed = _views.stage(store, 1, 0)
    assert failed is not None and failed["status"] == "FAILED"
    assert failed["failureReason"] == "fetch failure: gone: map-1.data"
    tasks = sorted(failed["tasks"].values(), key=lambda t: t["index"])
    assert [t["status"] for t in tasks] == (["FAILED", "KILLED"] if live else ["FAILED"])
    task = tasks[0]
    assert task["_error_type"] == "FetchFailed"
    assert "gone: map-1.data" in task["errorMessage"]
    retried = _views.stage(store, 1, 1)
    assert retried is not None and retried["status"] == "COMPLETE"
    listed = {(s["stageId"], s["attemptId"]): s["status"] for s in _views.stages(store)}
    assert listed[(1, 0)] == "FAILED" and listed[(1, 1)] == "COMPLETE"
    page = AppPages(store).route("/stages/stage/", {"id": "1", "attempt": "0"})
    assert page is not None
    body = page.body.decode()
    assert "Failure reason" in body and "fetch failure: gone: map-1.data" in body
    assert '<details class="error"><summary>FetchFailed' in body


def test_the_ui_lists_the_failed_attempt_and_its_fetch_failed_task() -> None:
    store = AppStatusStore("app-1", "a")
    for event in _events():
        store(event)
    _check_store(store, live=True)
    (job,) = _views.jobs(store)
    assert job["status"] == "SUCCEEDED" and job["numFailedTasks"] == 1


def test_the_event_log_writes_sparks_fetch_failed_reason_and_replays_it() -> None:
    encoder = EventEncoder()
    lines: list[dict[str, Any]] = []
    for event in _events():
        lines.extend(json.loads(json.dumps(e)) for e in encoder.encode(event, time.time()))
    (logged,) = [
        e for e in lines
        if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] != "Success"
    ]  # fmt: skip
    reason = logged["Task End Reason"]
    assert reason["Reason"] == "FetchFailed"
    assert (reason["Shuffle ID"], reason["Map Index"], reason["Reduce ID"]) == (0, 1, 0)
    assert reason["Block Manager Address"]["Executor ID"] == "1"
    assert reason["Message"] == "gone: map-1.data"
    replayed = list(replay_events(lines))
    (end,) = [e for e in replayed if isinstance(e, TaskEnd) and not e.ok]
    assert end.fetch_failure == LOST and end.error_type == "FetchFailed"
    store = AppStatusStore("app-1", "a")
    for event in replayed:
        store(event)
    _check_store(store, live=False)
