"""Typed scheduler events: the core's causal order, the bus's isolation, the progress bar."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _fakes import Listener, collect

from scheduler.core.events import (
    ExecutorRemoved,
    JobStart,
    LaunchedTask,
    ListenerBus,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
)
from scheduler.core.taskscheduler import SchedulerSettings, TaskScheduler
from scheduler.status.progress import ConsoleProgressBar


def test_a_job_start_comes_before_its_stages_and_describes_them(ctx: Any) -> None:
    scheduler = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    heard: list[SchedulerEvent] = []
    scheduler.bus.add(heard.append)
    rdd = ctx.parallelize(list(range(8)), 2).map(lambda x: (x % 2, x)).groupByKey()
    with scheduler.lock:
        job_id = scheduler.dag.submit_job(rdd, collect, [0, 1], Listener())
    assert [type(e) for e in heard] == [JobStart, StageSubmitted]
    start, submitted = heard
    assert isinstance(start, JobStart) and isinstance(submitted, StageSubmitted)
    assert start.job_id == job_id and submitted.job_id == job_id
    assert start.stage_ids == (0, 1) and submitted.stage_id == 0  # the map stage runs first
    names = {s["stage_id"]: s for s in start.stages}
    assert names[0]["is_map"] and not names[1]["is_map"] and names[1]["parent_ids"] == [0]


def test_no_listener_means_no_job_description_is_built(ctx: Any) -> None:
    scheduler = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    assert not scheduler.bus
    with scheduler.lock:
        scheduler.dag.submit_job(ctx.parallelize([1, 2], 2), collect, [0, 1], Listener())
    assert len(scheduler.tsms) == 1


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = ListenerBus()
    heard: list[SchedulerEvent] = []

    def broken(event: SchedulerEvent) -> None:
        raise RuntimeError("broken listener")

    bus.add(broken)
    bus.add(heard.append)
    with caplog.at_level(logging.ERROR, logger="scheduler.core.events"):
        bus.post(StageCompleted(1, 0))
    assert heard == [StageCompleted(1, 0)]
    assert "StageCompleted" in caplog.text


def test_the_progress_bar_counts_from_events() -> None:
    bar = ConsoleProgressBar()
    bar(StageSubmitted(3, 0, 4, 0))
    bar(
        TasksLaunched(
            tuple(LaunchedTask(i, 3, 0, i, 0, str(i % 2), i, True, False) for i in range(3))
        )
    )
    assert bar.active() == [(3, 0, 3, 4)]
    bar(TaskEnd(3, 0, True, 0))
    bar(TaskEnd(3, 0, False, 1))
    assert bar.active() == [(3, 1, 1, 4)]
    bar(ExecutorRemoved("0", "lost"))  # task 2 ran there: it will run again as a new attempt
    assert bar.active() == [(3, 1, 0, 4)]
    bar(StageCompleted(3, 0))
    assert bar.active() == []


def test_a_listener_of_some_kinds_gets_only_those_and_no_lineage(ctx: Any) -> None:
    """The status tracker's registry hears jobs only: no TaskEnd is built, no lineage walked."""
    scheduler = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    heard: list[SchedulerEvent] = []
    scheduler.bus.add(heard.append, kinds=(JobStart,), lineage=False)
    assert not scheduler.bus.wants(TaskEnd) and not scheduler.bus.wants_lineage
    with scheduler.lock:
        scheduler.dag.submit_job(ctx.parallelize([1, 2], 2), collect, [0, 1], Listener())
    (start,) = heard
    assert isinstance(start, JobStart) and start.stage_ids == (0,) and start.stages == ()
