"""How many tasks the driver keeps queued on an executor: deep for tiny tasks, shallow for long."""

from __future__ import annotations

import pickle

from google.protobuf.message import Message

from scheduler._dag import TaskSet, TaskSetSpec
from scheduler._taskscheduler import ExecutorHandle, SchedulerSettings, TaskScheduler, queue_depth
from sparkctl.v1 import scheduler_pb2 as pb

_EXTRA = pickle.dumps(({}, [], {}))


def _scheduler(num_tasks: int, cores: int) -> tuple[TaskScheduler, list[Message]]:
    sent: list[Message] = []
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    sched.register_executor(ExecutorHandle("0", "h", cores, sent.append))
    spec = TaskSetSpec(0, 0, None, None, None, {}, {})  # type: ignore[arg-type]
    indices = list(range(num_tasks))
    task_set = TaskSet(0, 0, 0, indices, indices, [[] for _ in indices], spec, {})
    with sched.lock:
        sched.submit_task_set(task_set)
    return sched, sent


def _launched(sent: list[Message]) -> list[int]:
    return [t.task_id for m in sent if isinstance(m, pb.LaunchTasks) for t in m.tasks]


def _finish(sched: TaskScheduler, task_ids: list[int], run_seconds: float) -> None:
    statuses = [
        pb.TaskStatus(
            task_id=t,
            state=pb.TASK_STATE_FINISHED,
            result=pickle.dumps(None),
            accumulators=_EXTRA,
            run_seconds=run_seconds,
        )
        for t in task_ids
    ]
    sched.status_update("0", statuses)


def test_queue_depth_follows_task_duration() -> None:
    assert queue_depth(0.0005) > queue_depth(0.02) > queue_depth(2.0) >= 1


def test_a_new_executor_gets_a_moderate_queue_then_a_deep_one_for_tiny_tasks() -> None:
    sched, sent = _scheduler(num_tasks=1000, cores=2)
    first = _launched(sent)
    assert len(first) == 2 * queue_depth(0.01)
    for done in range(20):  # tiny tasks finish one by one: the queue deepens
        _finish(sched, [_launched(sent)[done]], run_seconds=0.0005)
    handle = sched.executors["0"]
    assert handle.capacity == 2 * queue_depth(0.0005)
    assert len(handle.running) == handle.capacity


def test_long_tasks_keep_the_queue_short() -> None:
    sched, sent = _scheduler(num_tasks=100, cores=2)
    for done in range(15):
        _finish(sched, [_launched(sent)[done]], run_seconds=3.0)
    done = 15
    handle = sched.executors["0"]
    assert handle.capacity == 2 * queue_depth(3.0)
    # Tasks launched earlier stay queued; no new ones go out while the queue is over capacity.
    running_before = len(handle.running)
    _finish(sched, [_launched(sent)[done]], run_seconds=3.0)
    assert len(handle.running) <= max(running_before - 1, handle.capacity)
    while len(handle.running) > handle.capacity:
        done += 1
        _finish(sched, [_launched(sent)[done]], run_seconds=3.0)
    assert len(handle.running) <= handle.capacity
