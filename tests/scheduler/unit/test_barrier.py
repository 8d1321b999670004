"""Barrier execution without processes: all-or-nothing launches, the coordinator's syncs,
and the DAGScheduler's checks and whole-stage retries."""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any

import pytest
from _fakes import Listener, Sink, collect, fake_executor
from google.protobuf.message import Message

from scheduler.core.barrier import BarrierCoordinator
from scheduler.core.dag import DAGScheduler, TaskSet
from scheduler.core.errors import BarrierJobSlotsNumberCheckFailed, JobFailedError
from scheduler.core.taskscheduler import ExecutorHandle, SchedulerSettings, TaskScheduler
from scheduler.core.tasksetmanager import TaskSetManager
from scheduler.rdd.barrier import BARRIER_CHAIN_MESSAGE
from scheduler.rdd.stagespec import TaskSetSpec
from scheduler.shuffle.mapoutput import MapOutput
from sparkctl.v1 import scheduler_pb2 as pb


def _task_set(n: int, barrier: bool = True, preferred: list[list[str]] | None = None) -> TaskSet:
    spec = TaskSetSpec(0, 0, None, None, None, {}, {}, barrier)  # type: ignore[arg-type]
    indices = list(range(n))
    return TaskSet(0, 0, 0, indices, indices, preferred or [[] for _ in indices], spec, {},
                   barrier)  # fmt: skip


# -- TaskSetManager ---------------------------------------------------------------------


def test_a_barrier_set_launches_nothing_with_fewer_free_slots_than_tasks() -> None:
    tsm = TaskSetManager(_task_set(3))
    assert tsm.barrier_offer(["e1", "e2"], 0.0, 10) == []
    assert tsm.pending == [0, 1, 2] and not tsm.running


def test_a_barrier_set_launches_every_task_in_one_offer() -> None:
    tsm = TaskSetManager(_task_set(3))
    attempts = tsm.barrier_offer(["e1", "e1", "e2", "e2"], 0.0, 10)
    assert [a.index for a in attempts] == [0, 1, 2]
    assert [a.task_id for a in attempts] == [10, 11, 12]
    assert [a.executor_id for a in attempts] == ["e1", "e1", "e2"]
    assert not tsm.pending and not tsm.has_pending()
    assert tsm.barrier_offer(["e3"] * 3, 0.0, 20) == []  # nothing is launched twice


def test_a_barrier_task_goes_to_a_slot_on_the_executor_it_prefers() -> None:
    tsm = TaskSetManager(_task_set(2, preferred=[["e2"], []]))
    attempts = tsm.barrier_offer(["e1", "e2"], 0.0, 0)
    assert {a.index: a.executor_id for a in attempts} == {0: "e2", 1: "e1"}


def test_one_failed_barrier_task_fails_the_attempt_without_requeueing() -> None:
    tsm = TaskSetManager(_task_set(2), max_failures=4)
    tsm.barrier_offer(["e1", "e2"], 0.0, 0)
    tsm.handle_failure(1, "ValueError: boom")
    assert tsm.zombie and tsm.barrier_failure is not None
    assert "ValueError: boom" in tsm.barrier_failure and "TID 1" in tsm.barrier_failure
    assert not tsm.pending and not tsm.has_pending()
    assert tsm.abort_reason is None  # the DAGScheduler decides: retry the stage or abort


def test_a_barrier_task_lost_with_its_executor_fails_the_attempt() -> None:
    tsm = TaskSetManager(_task_set(2))
    tsm.barrier_offer(["e1", "e2"], 0.0, 0)
    assert tsm.executor_lost("e2", "gone") == [1]
    assert tsm.zombie and tsm.barrier_failure is not None and not tsm.pending


def test_barrier_sets_never_speculate() -> None:
    tsm = TaskSetManager(_task_set(4), speculation=True, speculation_quantile=0.25)
    tsm.barrier_offer(["e1"] * 4, 0.0, 0)
    tsm.handle_success(0, 0.1)
    assert tsm.check_speculation(100.0) == []


# -- TaskScheduler ----------------------------------------------------------------------


def _scheduler(*cores: int) -> tuple[TaskScheduler, dict[str, list[Message]]]:
    sent: dict[str, list[Message]] = {}
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    for i, n in enumerate(cores):
        sent[str(i)] = []
        sched.register_executor(ExecutorHandle(str(i), f"h{i}", n, sent[str(i)].append))
    return sched, sent


def _launched(sent: dict[str, list[Message]], key: str) -> dict[str, list[int]]:
    return {
        executor: [
            t.task_id for m in messages if isinstance(m, pb.LaunchTasks) for t in m.tasks
            if t.taskset == key
        ]
        for executor, messages in sent.items()
    }  # fmt: skip


def _finish(sched: TaskScheduler, executor: str, task_id: int) -> None:
    status = pb.TaskStatus(
        task_id=task_id,
        state=pb.TASK_STATE_FINISHED,
        result=pickle.dumps(None),
        accumulators=pickle.dumps(({}, [], {})),
        run_seconds=1.0,
    )
    sched.status_update(executor, [status])


def test_the_scheduler_launches_a_barrier_set_across_executors_in_one_round() -> None:
    sched, sent = _scheduler(2, 1)
    with sched.lock:
        sched.submit_task_set(_task_set(3))
    launched = _launched(sent, "0.0")
    assert sorted(len(v) for v in launched.values()) == [1, 2]
    assert sched.max_slots() == 3


def test_the_scheduler_waits_until_every_barrier_task_has_a_free_slot() -> None:
    sched, sent = _scheduler(2)
    busy = _task_set(1, barrier=False)
    busy.stage_id, busy.attempt, busy.spec.stage_id = 5, 0, 5
    with sched.lock:
        sched.submit_task_set(busy)
        sched.submit_task_set(_task_set(2))
    assert _launched(sent, "0.0") == {"0": []}  # one slot is taken: no barrier task starts
    (busy_id,) = _launched(sent, "5.0")["0"]
    _finish(sched, "0", busy_id)
    assert len(_launched(sent, "0.0")["0"]) == 2  # both at once


# -- BarrierCoordinator -----------------------------------------------------------------


class _Replies:
    def __init__(self) -> None:
        self.ok: dict[int, list[str]] = {}
        self.failed: dict[int, str] = {}

    def bind(self, partition: int) -> tuple[Any, Any]:
        return (
            lambda messages: self.ok.__setitem__(partition, messages),
            lambda reason: self.failed.__setitem__(partition, reason),
        )


def test_all_gather_answers_every_task_in_partition_order_once_all_asked() -> None:
    coordinator = BarrierCoordinator(60.0, threading.RLock())
    coordinator.launched(3, 0, {0: "a:1", 1: "b:2", 2: "c:3"})
    replies = _Replies()
    for partition in (2, 0):
        coordinator.request(3, 0, partition, 0, "allGather", f"m{partition}",
                            *replies.bind(partition))  # fmt: skip
    assert replies.ok == {} and replies.failed == {}
    coordinator.request(3, 0, 1, 0, "allGather", "m1", *replies.bind(1))
    assert replies.ok == {p: ["m0", "m1", "m2"] for p in range(3)}
    infos = _Replies()
    coordinator.request(3, 0, 1, 1, "getTaskInfos", "", *infos.bind(1))
    assert infos.ok == {1: ["a:1", "b:2", "c:3"]}


def test_a_sync_of_an_old_epoch_or_another_method_fails() -> None:
    coordinator = BarrierCoordinator(60.0, threading.RLock())
    coordinator.launched(0, 0, {0: "a", 1: "b"})
    replies = _Replies()
    coordinator.request(0, 0, 0, 0, "barrier", "", *replies.bind(0))
    coordinator.request(0, 0, 1, 0, "barrier", "", *replies.bind(1))
    assert replies.ok == {0: [], 1: []}
    stale = _Replies()
    coordinator.request(0, 0, 0, 0, "barrier", "", *stale.bind(0))
    assert "has already finished" in stale.failed[0]
    mixed = _Replies()
    coordinator.request(0, 0, 0, 1, "barrier", "", *mixed.bind(0))
    coordinator.request(0, 0, 1, 1, "allGather", "x", *mixed.bind(1))
    assert set(mixed.failed) == {0, 1} and "Different barrier sync types" in mixed.failed[0]


def test_a_sync_times_out_with_sparks_message() -> None:
    lock = threading.RLock()
    coordinator = BarrierCoordinator(0.2, lock)
    coordinator.launched(7, 1, {0: "a", 1: "b"})
    replies = _Replies()
    with lock:
        coordinator.request(7, 1, 0, 0, "barrier", "", *replies.bind(0))
    deadline = time.monotonic() + 5.0
    while not replies.failed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert replies.failed[0] == (
        "The coordinator didn't get all barrier sync requests for barrier epoch 0 from "
        "Stage 7 (Stage Attempt 1) within 0.2 second(s)."
    )


def test_an_ended_attempt_fails_its_waiting_syncs_and_refuses_new_ones() -> None:
    coordinator = BarrierCoordinator(60.0, threading.RLock())
    coordinator.launched(0, 0, {0: "a", 1: "b"})
    replies = _Replies()
    coordinator.request(0, 0, 0, 0, "barrier", "", *replies.bind(0))
    coordinator.finished(0, 0, "a barrier task failed")
    assert replies.failed == {0: "a barrier task failed"}
    late = _Replies()
    coordinator.request(0, 0, 1, 0, "barrier", "", *late.bind(1))
    assert "not a running barrier stage attempt" in late.failed[1]


# -- DAGScheduler -----------------------------------------------------------------------


_Sink, _Listener, _collect = Sink, Listener, collect


def test_a_barrier_job_needing_more_slots_than_exist_is_refused(ctx: Any) -> None:
    dag = DAGScheduler(_Sink())
    dag.max_slots = lambda profile: 2
    rdd = ctx.parallelize(list(range(6)), 3).barrier().mapPartitions(lambda it: it)
    with pytest.raises(BarrierJobSlotsNumberCheckFailed, match=r"\[SPARK-24819\]"):
        dag.submit_job(rdd, _collect, [0, 1, 2], _Listener())
    # The same lineage without barrier() runs on any number of slots.
    plain = ctx.parallelize(list(range(6)), 3).mapPartitions(lambda it: it)
    dag.submit_job(plain, _collect, [0, 1, 2], _Listener())


def test_a_barrier_stage_over_part_of_its_partitions_or_a_union_is_refused(ctx: Any) -> None:
    dag = DAGScheduler(_Sink())
    rdd = ctx.parallelize(list(range(6)), 3).barrier().mapPartitions(lambda it: it)
    with pytest.raises(JobFailedError) as first:
        dag.submit_job(rdd, _collect, [0], _Listener())  # what first()/take() do
    assert str(first.value) == BARRIER_CHAIN_MESSAGE
    union = rdd.union(ctx.parallelize([1, 2], 2))
    with pytest.raises(JobFailedError, match=r"SPARK-24820"):
        dag.submit_job(union, _collect, list(range(5)), _Listener())
    dag.dynamic_allocation = True
    with pytest.raises(JobFailedError, match=r"SPARK-24942"):
        dag.submit_job(rdd, _collect, [0, 1, 2], _Listener())


def test_a_failed_barrier_map_stage_reruns_all_its_tasks(ctx: Any) -> None:
    sink, listener = _Sink(), _Listener()
    dag = DAGScheduler(sink)
    pairs = ctx.parallelize(list(range(6)), 3).barrier().mapPartitions(lambda it: it)
    summed = pairs.map(lambda x: (x, x)).reduceByKey(max, 2)
    dag.submit_job(summed, _collect, [0, 1], listener)
    map_ts = sink.task_sets[0]
    assert map_ts.barrier and map_ts.spec.barrier
    dag.task_succeeded(map_ts.stage_id, 0, 0, MapOutput("e1", "h", "/tmp/m0"))
    dag.barrier_task_failed(map_ts.stage_id, 0, "boom")
    assert map_ts.stage_id in sink.cancelled
    again = sink.task_sets[1]
    assert again.stage_id == map_ts.stage_id and again.attempt == 1
    assert again.indices == [0, 1, 2]  # the finished task runs again too
    assert listener.error is None


def test_a_failed_barrier_result_stage_aborts_the_job(ctx: Any) -> None:
    sink, listener = _Sink(), _Listener()
    dag = DAGScheduler(sink)
    rdd = ctx.parallelize(list(range(4)), 2).barrier().mapPartitions(lambda it: it)
    dag.submit_job(rdd, _collect, [0, 1], listener)
    dag.barrier_task_failed(sink.task_sets[0].stage_id, 0, "boom")
    assert len(sink.task_sets) == 1
    assert isinstance(listener.error, JobFailedError)
    assert "Could not recover from a failed barrier ResultStage" in str(listener.error)
    assert "boom" in str(listener.error)


def test_a_barrier_map_stage_failing_every_attempt_aborts_the_job(ctx: Any) -> None:
    sink, listener = _Sink(), _Listener()
    dag = DAGScheduler(sink, max_stage_attempts=2)
    pairs = ctx.parallelize(list(range(4)), 2).barrier().mapPartitions(lambda it: it)
    dag.submit_job(pairs.map(lambda x: (x, x)).groupByKey(2), _collect, [0, 1], listener)
    dag.barrier_task_failed(sink.task_sets[0].stage_id, 0, "boom")
    dag.barrier_task_failed(sink.task_sets[1].stage_id, 1, "boom again")
    assert isinstance(listener.error, JobFailedError)
    assert "has failed the maximum allowable number of times: 2" in str(listener.error)
    assert "boom again" in str(listener.error)


# -- the executor -----------------------------------------------------------------------


@pytest.fixture
def executor(monkeypatch: pytest.MonkeyPatch) -> Any:
    for rt in fake_executor(monkeypatch):
        rt._run_seconds = 0.001
        rt._set_prefetch.update(b=2, s=2)  # proven tiny tasks: workers would queue two each
        yield rt


def test_barrier_tasks_never_queue_behind_another_on_the_worker_caching_them(
    executor: Any,
) -> None:
    """Worker 1 caches both partitions; locality would queue both tasks on it."""
    executor.add_stage("b", b"code", True)
    with executor._lock:
        executor._note_cached(executor._slots[1], [(7, 0), (7, 1)], [], 1000)
    executor.launch([(10, "b", 0, 0), (11, "b", 1, 0)])
    sent = [executor._slots[i].conn.tasks for i in range(2)]
    assert sorted(sent) == [[10], [11]]  # one each, both started at once
    executor.add_stage("s", b"code")
    executor.launch([(12, "s", 0, 0)])
    assert executor._slots[1].conn.tasks[-1] == 12  # other stages keep their locality


def test_a_lost_output_of_a_barrier_map_stage_reruns_all_its_tasks(ctx: Any) -> None:
    sink, listener = _Sink(), _Listener()
    dag = DAGScheduler(sink)
    pairs = ctx.parallelize(list(range(6)), 3).barrier().mapPartitions(lambda it: it)
    dag.submit_job(pairs.map(lambda x: (x, x)).groupByKey(2), _collect, [0, 1], listener)
    map_ts = sink.task_sets[0]
    for index, executor in ((0, "e1"), (1, "e2"), (2, "e2")):
        out = MapOutput(executor, "h", f"/tmp/m{index}")
        dag.task_succeeded(map_ts.stage_id, 0, index, out)
    result_ts = sink.task_sets[1]
    shuffle_id = map_ts.spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
    dag.fetch_failed(result_ts.stage_id, 0, shuffle_id, 0, "e1")  # only output 0 is lost
    again = sink.task_sets[2]
    assert again.stage_id == map_ts.stage_id and again.indices == [0, 1, 2]


def test_a_fetch_failure_in_a_barrier_result_stage_aborts_the_job(ctx: Any) -> None:
    sink, listener = _Sink(), _Listener()
    dag = DAGScheduler(sink)
    grouped = ctx.parallelize(list(range(6)), 2).map(lambda x: (x, x)).groupByKey(2)
    rdd = grouped.barrier().mapPartitions(lambda it: it)
    dag.submit_job(rdd, _collect, [0, 1], listener)
    map_ts = sink.task_sets[0]
    for index in (0, 1):
        dag.task_succeeded(map_ts.stage_id, 0, index, MapOutput("e1", "h", f"/tmp/m{index}"))
    result_ts = sink.task_sets[1]
    assert result_ts.barrier and not map_ts.barrier
    shuffle_id = map_ts.spec.shuffle_dep.shuffle_id  # type: ignore[union-attr]
    dag.fetch_failed(result_ts.stage_id, 0, shuffle_id, 0, "e1")
    assert isinstance(listener.error, JobFailedError)
    assert "Could not recover from a failed barrier ResultStage" in str(listener.error)
