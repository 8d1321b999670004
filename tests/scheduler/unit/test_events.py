"""Typed scheduler events: the core's causal order, the bus's isolation, the progress bar."""

from __future__ import annotations

import logging
import pickle
from typing import Any

import pytest
from _fakes import Listener, collect
from google.protobuf.message import Message

from scheduler.api.tracker import JobRegistry, StatusTracker
from scheduler.core.events import (
    ExecutorRemoved,
    FetchFailure,
    JobEnd,
    JobStart,
    ListenerBus,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
)
from scheduler.core.taskscheduler import ExecutorHandle, SchedulerSettings, TaskScheduler
from scheduler.shuffle.mapoutput import MapOutput
from scheduler.status.progress import ConsoleProgressBar
from sparkctl.v1 import scheduler_pb2 as pb


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


class _Counter:
    """A task counter that notes what it is told, in one list with the events."""

    def __init__(self, heard: list[object]) -> None:
        self._heard = heard

    def tasks_launched(self, launches: list[tuple[int, int, int, str]]) -> None:
        self._heard.append(("launched", [t[2] for t in launches]))

    def tasks_ended(self, ends: list[tuple[int, int, int, bool]]) -> None:
        self._heard.append(("ended", [t[2] for t in ends]))


def test_held_posts_and_flushes_arrive_at_the_end_in_their_order() -> None:
    bus = ListenerBus()
    heard: list[object] = []
    bus.add(heard.append)
    bus.add_counter(_Counter(heard))
    with bus.held():
        bus.post(StageSubmitted(1, 0, 2, 0))
        bus.task_launched(1, 0, 7, "e1")
        bus.post(TasksLaunched(()))  # the counters hear of task 7 before this event
        with bus.held():  # nested: delivered when the outer hold ends
            bus.task_launched(1, 0, 8, "e1")
            bus.flush()
            bus.task_ended(1, 0, 7, True)
        bus.post(StageCompleted(1, 0))
        assert heard == []
    assert heard == [
        StageSubmitted(1, 0, 2, 0),
        ("launched", [7]),
        TasksLaunched(()),
        ("launched", [8]),
        ("ended", [7]),
        StageCompleted(1, 0),
    ]
    bus.post(StageCompleted(2, 0))  # no longer held
    assert heard[-1] == StageCompleted(2, 0)


def test_a_held_submission_sends_its_launch_before_listeners_hear_of_the_job(ctx: Any) -> None:
    """A job's JobStart and StageSubmitted wait for its LaunchTasks, in the same order."""
    scheduler = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    heard: list[object] = []
    scheduler.bus.add(heard.append)
    scheduler.register_executor(ExecutorHandle("e1", "h1", 2, heard.append))
    heard.clear()  # its ExecutorAdded
    with scheduler.lock, scheduler.bus.held():
        scheduler.dag.submit_job(ctx.parallelize([1, 2], 2), collect, [0, 1], Listener())
        assert [type(e) for e in heard] == [pb.LaunchTasks]
    assert [type(e) for e in heard] == [pb.LaunchTasks, JobStart, StageSubmitted, TasksLaunched]


def test_the_progress_bar_counts_from_events_and_task_counts() -> None:
    bus = ListenerBus()
    bar = ConsoleProgressBar()
    bar.listen(bus)
    assert not bus.wants(TaskEnd) and not bus.wants(TasksLaunched)  # no event per task
    bus.post(StageSubmitted(3, 0, 4, 0))
    for i in range(3):
        bus.task_launched(3, 0, i, str(i % 2))
    bus.flush()
    assert bar.active() == [(3, 0, 3, 4)]
    bus.task_ended(3, 0, 0, True)
    bus.task_ended(3, 0, 1, False)
    bus.post(ExecutorRemoved("0", "lost"))  # task 2 ran there: it will run again as a new attempt
    assert bar.active() == [(3, 1, 0, 4)]
    bus.post(StageCompleted(3, 0))
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


# -- causal order: StageCompleted before what the DAGScheduler does about it -----------


class _Announcer:
    """A job's listener that notes, among the bus's events, when its waiter would wake."""

    def __init__(self, heard: list[object], partitions: int) -> None:
        self._heard = heard
        self._left = partitions

    def task_succeeded(self, index: int, result: Any) -> None:
        self._left -= 1
        if self._left == 0:
            self._heard.append("job done")

    def job_failed(self, error: BaseException) -> None:
        self._heard.append("job failed")


class _Driver:
    """A task scheduler with one 4-core executor whose tasks the test ends by hand."""

    def __init__(self) -> None:
        self.sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
        self.heard: list[object] = []
        self.sched.bus.add(self.heard.append)
        self.sent: list[Message] = []
        self.sched.register_executor(ExecutorHandle("e1", "h1", 4, self.sent.append))
        self._seen = 0

    def launched(self) -> dict[str, list[tuple[int, int]]]:
        """(task id, partition) of the tasks launched since the last call, by task set key."""
        out: dict[str, list[tuple[int, int]]] = {}
        for message in self.sent[self._seen :]:
            if isinstance(message, pb.LaunchTasks):
                for task in message.tasks:
                    out.setdefault(task.taskset, []).append((task.task_id, task.partition))
        self._seen = len(self.sent)
        return out

    def finish_map(self, task_id: int, partition: int) -> None:
        out = MapOutput("e1", "h1", f"/tmp/map-{partition}")
        self._status(task_id, pb.TASK_STATE_FINISHED, result=pickle.dumps(out))

    def finish_result(self, task_id: int, value: Any) -> None:
        self._status(task_id, pb.TASK_STATE_FINISHED, result=pickle.dumps(value))

    def fetch_failed(self, task_id: int, shuffle_id: int, map_index: int) -> None:
        failure = pb.FetchFailure(shuffle_id=shuffle_id, map_index=map_index, message="gone")
        self._status(task_id, pb.TASK_STATE_FAILED, error="fetch failed", fetch_failure=failure)

    def killed(self, task_id: int) -> None:
        self._status(task_id, pb.TASK_STATE_KILLED, error="killed")

    def _status(self, task_id: int, state: Any, **fields: Any) -> None:
        accumulators = pickle.dumps(({}, [], {}))
        status = pb.TaskStatus(
            task_id=task_id, state=state, accumulators=accumulators, run_seconds=0.1, **fields
        )
        self.sched.status_update("e1", [status])

    def story(self) -> list[tuple[Any, ...]]:
        """The events heard, as (kind, stage or job, attempt) (launches and executors left out)."""
        out: list[tuple[Any, ...]] = []
        for event in self.heard:
            match event:
                case JobStart(job_id=job_id) | JobEnd(job_id=job_id):
                    out.append((type(event).__name__, job_id))
                case StageSubmitted(stage_id=s, attempt=a) | StageCompleted(stage_id=s, attempt=a):
                    out.append((type(event).__name__, s, a))
                case TaskEnd(stage_id=s, attempt=a, ok=ok):
                    out.append(("TaskEnd", s, a, ok))
                case str():
                    out.append((event,))
        return out


def _two_stage_rdd(ctx: Any) -> Any:
    return ctx.parallelize(list(range(8)), 2).map(lambda x: (x % 2, x)).groupByKey(2)


def _assert_causal(story: list[tuple[Any, ...]], over: bool = True) -> None:
    """Every attempt completes at most once (`over`: once), after its submission and TaskEnds."""
    submitted: set[tuple[Any, ...]] = set()
    completed: set[tuple[Any, ...]] = set()
    for kind, *rest in story:
        key = tuple(rest[:2])
        if kind == "StageSubmitted":
            assert key not in submitted
            submitted.add(key)
        elif kind == "StageCompleted":
            assert key in submitted and key not in completed
            completed.add(key)
        elif kind == "TaskEnd":
            assert key in submitted and key not in completed, f"TaskEnd of {key} out of order"
    assert completed == submitted or not over


def test_a_stage_completes_before_the_stage_it_unblocks_and_before_its_job_ends(
    ctx: Any,
) -> None:
    driver = _Driver()
    with driver.sched.lock:
        job_id = driver.sched.dag.submit_job(
            _two_stage_rdd(ctx), collect, [0, 1], _Announcer(driver.heard, 2)
        )
    for task_id, partition in driver.launched()["0.0"]:
        driver.finish_map(task_id, partition)
    for task_id, partition in driver.launched()["1.0"]:
        driver.finish_result(task_id, [partition])
    driver.sched.job_ended(job_id, "SUCCEEDED")  # what the waiting thread does when it wakes
    assert driver.story() == [
        ("JobStart", job_id),
        ("StageSubmitted", 0, 0),
        ("TaskEnd", 0, 0, True),
        ("TaskEnd", 0, 0, True),
        ("StageCompleted", 0, 0),
        ("StageSubmitted", 1, 0),
        ("TaskEnd", 1, 0, True),
        ("TaskEnd", 1, 0, True),
        ("StageCompleted", 1, 0),
        ("job done",),
        ("JobEnd", job_id),
    ]
    assert all(e.failure is None for e in driver.heard if isinstance(e, StageCompleted))
    assert not driver.sched.tsms


def test_a_fetch_failed_stage_completes_before_its_parent_is_resubmitted(ctx: Any) -> None:
    driver = _Driver()
    registry = JobRegistry()  # the status tracker's, counting tasks without events
    registry.listen(driver.sched.bus)
    tracker = StatusTracker(registry)
    with driver.sched.lock:
        job_id = driver.sched.dag.submit_job(
            _two_stage_rdd(ctx), collect, [0, 1], _Announcer(driver.heard, 2)
        )
    for task_id, partition in driver.launched()["0.0"]:
        driver.finish_map(task_id, partition)
    (first, _), (second, _) = driver.launched()["1.0"]
    driver.fetch_failed(first, shuffle_id=0, map_index=1)  # map output 1 is lost
    driver.killed(second)  # the executor kills the failed attempt's other task
    info = tracker.getStageInfo(1)  # the fetch-failed task counts as failed, as in Spark
    assert info is not None and info[:2] == (1, 0) and info[3:] == (2, 0, 0, 1)
    rerun = driver.launched()
    assert list(rerun) == ["0.1"]  # only the lost map output runs again
    ((task_id, partition),) = rerun["0.1"]
    driver.finish_map(task_id, partition)
    for task_id, partition in driver.launched()["1.1"]:
        driver.finish_result(task_id, [partition])
    driver.sched.job_ended(job_id, "SUCCEEDED")
    story = driver.story()
    assert story == [
        ("JobStart", job_id),
        ("StageSubmitted", 0, 0),
        ("TaskEnd", 0, 0, True),
        ("TaskEnd", 0, 0, True),
        ("StageCompleted", 0, 0),
        ("StageSubmitted", 1, 0),
        ("TaskEnd", 1, 0, False),  # the fetch failure, before its attempt completes
        ("StageCompleted", 1, 0),
        ("StageSubmitted", 0, 1),
        ("TaskEnd", 0, 1, True),
        ("StageCompleted", 0, 1),
        ("StageSubmitted", 1, 1),
        ("TaskEnd", 1, 1, True),
        ("TaskEnd", 1, 1, True),
        ("StageCompleted", 1, 1),
        ("job done",),
        ("JobEnd", job_id),
    ]
    _assert_causal(story)
    failed = [e for e in driver.heard if isinstance(e, StageCompleted) and e.failure]
    assert [(e.stage_id, e.attempt) for e in failed] == [(1, 0)]
    assert failed[0].failure is not None and "fetch failure: gone" in failed[0].failure
    (fetch_end,) = [e for e in driver.heard if isinstance(e, TaskEnd) and not e.ok]
    assert fetch_end.task_id == first and fetch_end.error_type == "FetchFailed"
    assert fetch_end.fetch_failure == FetchFailure(0, 1, "", "gone")


def test_a_late_task_of_an_aborted_attempt_gets_no_task_end(ctx: Any) -> None:
    driver = _Driver()
    with driver.sched.lock:
        driver.sched.dag.submit_job(
            _two_stage_rdd(ctx), collect, [0, 1], _Announcer(driver.heard, 2)
        )
    for task_id, partition in driver.launched()["0.0"]:
        driver.finish_map(task_id, partition)
    (first, _), (second, partition) = driver.launched()["1.0"]
    driver.fetch_failed(first, shuffle_id=0, map_index=1)
    driver.finish_result(second, [partition])  # it finished before the kill reached it
    story = driver.story()
    _assert_causal(story, over=False)  # the lost map output is still being recomputed
    assert ("TaskEnd", 1, 0, True) not in story
    assert story[-2:] == [("StageCompleted", 1, 0), ("StageSubmitted", 0, 1)]


def test_a_cancelled_jobs_running_stage_completes_before_the_job_ends(ctx: Any) -> None:
    driver = _Driver()
    with driver.sched.lock:
        job_id = driver.sched.dag.submit_job(
            _two_stage_rdd(ctx), collect, [0, 1], _Announcer(driver.heard, 2)
        )
    running = driver.launched()["0.0"]
    driver.sched.cancel_job(job_id, "by the test")
    for task_id, _ in running:  # the executor reports its tasks killed
        driver.killed(task_id)
    driver.sched.job_ended(job_id, "FAILED", RuntimeError(f"Job {job_id} cancelled by the test"))
    assert driver.story() == [
        ("JobStart", job_id),
        ("StageSubmitted", 0, 0),
        ("StageCompleted", 0, 0),
        ("job failed",),
        ("JobEnd", job_id),
    ]
    (completed,) = [e for e in driver.heard if isinstance(e, StageCompleted)]
    assert completed.failure is not None and "cancelled by the test" in completed.failure
    assert not driver.sched.tsms  # the killed tasks retired the set, with no second report


def test_a_storage_listener_gets_the_task_ends_of_storing_tasks_only(ctx: Any) -> None:
    """No TaskEnd is built per task for the storage status: only for tasks that stored."""
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    heard: list[SchedulerEvent] = []
    sched.bus.add(heard.append, kinds=(TaskEnd,), lineage=False, stored_task_ends=True)
    assert sched.bus.wants(TaskEnd) and not sched.bus.wants_every_task_end()
    sent: list[Message] = []
    sched.register_executor(ExecutorHandle("e1", "h1", 4, sent.append))
    with sched.lock:
        sched.dag.submit_job(ctx.parallelize([1, 2, 3], 3), collect, [0, 1, 2], Listener())
    tasks = [t.task_id for m in sent if isinstance(m, pb.LaunchTasks) for t in m.tasks]
    assert len(tasks) == 3
    extras = [
        ({}, [], {}),  # stored nothing: no event for this listener
        ({}, [(7, 1)], {}),  # cached a block on disk
        ({}, [], {"pythonWorker": (0, 4242), "memoryBlocks": [(7, 2, 64)]}),
    ]
    for task_id, extra in zip(tasks, extras, strict=True):
        status = pb.TaskStatus(
            task_id=task_id,
            state=pb.TASK_STATE_FINISHED,
            result=pickle.dumps([]),
            accumulators=pickle.dumps(extra),
            run_seconds=0.01,
        )
        sched.status_update("e1", [status])
    ends = [e for e in heard if isinstance(e, TaskEnd)]
    assert [e.task_id for e in ends] == tasks[1:]
    assert ends[0].blocks == ((7, 1),) and ends[1].metrics["pythonWorker"] == (0, 4242)
    every = ListenerBus()
    every.add(heard.append, kinds=(TaskEnd,), lineage=False, stored_task_ends=True)
    every.add(heard.append, kinds=(TaskEnd,))
    assert every.wants_every_task_end()
