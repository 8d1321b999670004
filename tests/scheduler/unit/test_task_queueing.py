"""How many tasks the driver queues on an executor: deep for tiny tasks, shallow otherwise."""

from __future__ import annotations

import logging
import pickle

import pytest
from google.protobuf.message import Message

from scheduler.core.dag import TaskSet
from scheduler.core.taskscheduler import (
    PROVEN_TASKS,
    ExecutorHandle,
    SchedulerSettings,
    TaskScheduler,
    queue_depth,
)
from scheduler.rdd.stagespec import TaskSetSpec
from sparkctl.v1 import scheduler_pb2 as pb

_EXTRA = pickle.dumps(({}, [], {}))


def _task_set(stage_id: int, num_tasks: int) -> TaskSet:
    spec = TaskSetSpec(stage_id, 0, None, None, None, {}, {})  # type: ignore[arg-type]
    indices = list(range(num_tasks))
    return TaskSet(stage_id, 0, stage_id, indices, indices, [[] for _ in indices], spec, {})


def _scheduler(cores: int) -> tuple[TaskScheduler, list[Message]]:
    sent: list[Message] = []
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    sched.register_executor(ExecutorHandle("0", "h", cores, sent.append))
    return sched, sent


def _submit(sched: TaskScheduler, task_set: TaskSet) -> None:
    with sched.lock:
        sched.submit_task_set(task_set)


def _launched(sent: list[Message], taskset: str) -> list[int]:
    return [
        t.task_id
        for m in sent
        if isinstance(m, pb.LaunchTasks)
        for t in m.tasks
        if t.taskset == taskset
    ]


def _finish(sched: TaskScheduler, task_id: int, run_seconds: float, executor: str = "0") -> None:
    status = pb.TaskStatus(
        task_id=task_id,
        state=pb.TASK_STATE_FINISHED,
        result=pickle.dumps(None),
        accumulators=_EXTRA,
        run_seconds=run_seconds,
    )
    sched.status_update(executor, [status])


def test_queue_depth_follows_task_duration() -> None:
    assert queue_depth(0.0005) > queue_depth(0.02) > queue_depth(2.0) >= 1
    assert queue_depth(None) == queue_depth(2.0)


def test_a_new_task_set_queues_shallow_then_deep_once_its_tasks_prove_tiny() -> None:
    sched, sent = _scheduler(cores=2)
    _submit(sched, _task_set(0, 1000))
    assert len(_launched(sent, "0.0")) == 2 * queue_depth(None)
    for done in range(10):  # tiny tasks finish one by one: the queue deepens
        _finish(sched, _launched(sent, "0.0")[done], run_seconds=0.0005)
    # Refilled once a quarter of the deep queue has drained (launches go many to a message).
    deep = 2 * queue_depth(0.0005)
    assert deep - deep // 4 <= len(sched.executors["0"].running) <= deep


def test_long_tasks_keep_the_queue_shallow() -> None:
    sched, sent = _scheduler(cores=2)
    _submit(sched, _task_set(0, 100))
    for done in range(10):
        _finish(sched, _launched(sent, "0.0")[done], run_seconds=3.0)
        assert len(sched.executors["0"].running) <= 2 * queue_depth(3.0)
    assert len(_launched(sent, "0.0")) == 10 + 2 * queue_depth(3.0)


def test_a_long_stage_after_a_tiny_one_does_not_inherit_its_deep_queue() -> None:
    sched, sent = _scheduler(cores=2)
    _submit(sched, _task_set(0, 40))
    for _ in range(40):  # each round finishes what runs; the queue deepens on the way
        for task_id in sorted(sched.executors["0"].running):
            _finish(sched, task_id, run_seconds=0.0005)
    assert len(_launched(sent, "0.0")) == 40
    assert not sched.executors["0"].running
    _submit(sched, _task_set(1, 100))
    assert len(_launched(sent, "1.0")) == 2 * queue_depth(None)


def test_tasks_waiting_with_no_executor_are_warned_about_every_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    _submit(sched, _task_set(0, 3))
    with caplog.at_level(logging.WARNING, logger="scheduler.core.taskscheduler"):
        assert not sched.check_starvation(100.0, timeout=15.0)  # starts the clock
        assert not sched.check_starvation(114.0, timeout=15.0)
        assert sched.check_starvation(115.0, timeout=15.0)
        assert not sched.check_starvation(120.0, timeout=15.0)
        assert sched.check_starvation(130.0, timeout=15.0)
    assert "has not accepted any resources" in caplog.text and "3 task(s)" in caplog.text
    sent: list[Message] = []
    sched.register_executor(ExecutorHandle("0", "h", 2, sent.append))
    assert not sched.check_starvation(200.0, timeout=15.0)  # an executor came: no warning


def test_a_set_queues_beyond_free_cores_only_after_enough_of_its_own_tasks_ended() -> None:
    sched, sent = _scheduler(cores=2)
    _submit(sched, _task_set(0, 1000))
    for done in range(PROVEN_TASKS - 1):  # tiny, but too few to judge the set by
        _finish(sched, _launched(sent, "0.0")[done], run_seconds=0.0005)
        assert len(sched.executors["0"].running) == 2
    _finish(sched, _launched(sent, "0.0")[PROVEN_TASKS - 1], run_seconds=0.0005)
    assert len(sched.executors["0"].running) > 2


def test_the_last_tasks_of_a_set_go_to_free_cores_only() -> None:
    """A proven-tiny set's last task goes to a free core, not behind another's queue."""
    sent_a: list[Message] = []
    sent_b: list[Message] = []
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    _submit(sched, _task_set(0, PROVEN_TASKS + 1))
    tsm = sched.tsms["0.0"]
    # Its first tasks ended tiny (elsewhere); one is left to launch.
    tsm.pending, tsm.num_done, tsm.run_seconds = [PROVEN_TASKS], PROVEN_TASKS, 0.0005
    busy = ExecutorHandle("a", "h", 1, sent_a.append)
    busy.running.update(range(10_000, 10_020))  # 20 tiny tasks queued: room for more
    with sched.lock:
        sched.executors["a"] = busy  # (no offers yet)
    sched.register_executor(ExecutorHandle("b", "h", 1, sent_b.append))
    assert len(_launched(sent_b, "0.0")) == 1
    assert not _launched(sent_a, "0.0")  # not queued behind a's 20 while b's core is free


def _tail_imbalance(seconds: float) -> float:
    """Seconds of queued work on the slower of two 1-core executors when the set's last
    task leaves the driver, as a share of that executor's queue: b runs tasks twice as
    fast as a, so a deep queue on a at the end keeps a busy while b idles."""
    sent: list[Message] = []
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    sched.register_executor(ExecutorHandle("a", "h", 1, sent.append))
    sched.register_executor(ExecutorHandle("b", "h", 1, sent.append))
    _submit(sched, _task_set(0, 200))
    tsm = sched.tsms["0.0"]
    a, b = sched.executors["a"], sched.executors["b"]
    clock = {"a": 0.0, "b": 0.0}  # when each executor's running task ends
    while tsm.pending:
        name = min(clock, key=lambda n: clock[n])  # whichever executor's task ends first
        handle = a if name == "a" else b
        clock[name] += seconds * (2 if name == "a" else 1)
        _finish(sched, min(handle.running), run_seconds=seconds, executor=name)
    # Work queued on each when nothing is left to hand out.
    left_a = len(a.running) * 2 * seconds + clock["a"]
    left_b = len(b.running) * seconds + clock["b"]
    return abs(left_a - left_b)


@pytest.mark.parametrize("seconds", [0.0005, 0.02])
def test_across_executors_a_set_ends_with_short_queues(seconds: float) -> None:
    """Executors running at different speeds end a set within a few tasks' time."""
    assert _tail_imbalance(seconds) <= 4 * seconds
