"""PySpark compatibility: broadcast variables, accumulators, TaskContext, status tracking.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_rdd.py, test_taskcontext.py, test_join.py and the
doctests of python/pyspark/core/context.py. Expected values were checked on
PySpark 4.x (local[2]) first.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import _compat_support as support
import pytest

# -- broadcast variables ----------------------------------------------------------------


def test_broadcast_value_reaches_tasks(sc: Any) -> None:
    mapping = {1: 10001, 2: 10002}
    bc = sc.broadcast(mapping)
    assert bc.value == mapping
    looked_up = sc.range(5).map(lambda i: bc.value.get(i, -1))
    assert looked_up.collect() == [-1, 10001, 10002, -1, -1]
    bc.destroy()


def test_large_and_multiple_broadcasts(sc: Any) -> None:
    rows = 2000
    big = sc.broadcast([[float(i) for i in range(300)] for _ in range(rows)])  # ~5 MB pickled
    assert sc.parallelize(range(1), 1).map(lambda x: len(big.value)).sum() == rows
    numbers = list(range(1 << 15))
    random.Random(7).shuffle(numbers)
    blob = str(numbers).encode()
    checksum = hashlib.md5(blob).hexdigest()
    as_set = sc.broadcast(set(range(1 << 18)))
    as_bytes = sc.broadcast(blob)
    seen = (
        sc.parallelize(range(10), 10)
        .map(lambda x: (len(as_set.value), hashlib.md5(as_bytes.value).hexdigest()))
        .collect()
    )
    assert set(seen) == {(1 << 18, checksum)}
    for b in (big, as_set, as_bytes):
        b.destroy()


def test_broadcast_unpersist_keeps_it_usable_destroy_does_not(sc: Any) -> None:
    data = [[float(i) for i in range(300)] for _ in range(1000)]
    bc = sc.broadcast(data)
    bc.unpersist()
    assert sc.parallelize(range(1), 1).map(lambda x: len(bc.value)).sum() == 1000
    bc.unpersist(blocking=True)
    assert sc.parallelize(range(2), 2).map(lambda x: len(bc.value)).sum() == 2000
    bc.destroy(blocking=True)
    with pytest.raises(Exception):  # noqa: B017 - PySpark fails the job with a Py4J error
        sc.parallelize(range(1), 1).map(lambda x: len(bc.value)).sum()


# -- accumulators -----------------------------------------------------------------------


def test_accumulator_add_and_iadd_on_the_driver_and_in_tasks(sc: Any) -> None:
    acc = sc.accumulator(9)
    assert acc.value == 9
    acc += 1
    assert acc.value == 10

    def bump(x: int) -> None:
        acc.add(1)

    sc.range(5).foreach(bump)
    assert acc.value == 15
    total = sc.accumulator(0.0)
    sc.parallelize([1.5, 2.5, 3.0], 3).foreach(lambda x: total.add(x))
    assert total.value == 7.0
    acc.value = 0
    assert acc.value == 0


def test_accumulator_with_a_custom_param(sc: Any) -> None:
    from scheduler import AccumulatorParam

    class VectorParam(AccumulatorParam):  # type: ignore[misc]
        def zero(self, value: list[float]) -> list[float]:
            return [0.0] * len(value)

        def addInPlace(self, v1: list[float], v2: list[float]) -> list[float]:
            for i in range(len(v1)):
                v1[i] += v2[i]
            return v1

    vector = sc.accumulator([1.0, 2.0, 3.0], VectorParam())
    sc.parallelize(range(4), 2).foreach(lambda x: vector.add([float(x), 1.0, 0.0]))
    assert vector.value == [7.0, 6.0, 3.0]


def test_accumulator_value_cannot_be_read_inside_a_task(sc: Any) -> None:
    acc = sc.accumulator(0)
    with pytest.raises(
        Exception, match=r"Accumulator\.value\W{0,3}cannot be accessed inside tasks"
    ):
        sc.parallelize([1], 1).map(lambda x: acc.value).collect()


def test_accumulators_updated_in_transformations_count_per_computation(sc: Any) -> None:
    seen = sc.accumulator(0)

    def tally(x: int) -> int:
        seen.add(1)
        return x

    rdd = sc.parallelize(range(10), 2).map(tally)
    rdd.count()
    assert seen.value == 10
    rdd.count()
    assert seen.value == 20


# -- TaskContext ------------------------------------------------------------------------


def test_task_context_is_none_on_the_driver(sc: Any) -> None:
    from scheduler import TaskContext

    assert TaskContext.get() is None


def test_stage_ids_increase_from_job_to_job(sc: Any) -> None:
    from scheduler import TaskContext

    rdd = sc.parallelize(range(10))
    first = rdd.map(lambda x: TaskContext.get().stageId()).take(1)[0]
    second = rdd.map(lambda x: TaskContext.get().stageId()).take(1)[0]
    third = rdd.map(lambda x: TaskContext().stageId()).take(1)[0]
    assert second == first + 1
    assert third == first + 2


def test_partition_ids_and_attempts(sc: Any) -> None:
    from scheduler import TaskContext

    one = sc.parallelize(range(10), 1).map(lambda x: TaskContext.get().partitionId()).collect()
    assert one == [0] * 10
    two = sc.parallelize(range(10), 2).map(lambda x: TaskContext.get().partitionId()).collect()
    assert two == [0] * 5 + [1] * 5

    def describe(it: Any) -> Any:
        tc = TaskContext.get()
        yield (tc.partitionId(), tc.attemptNumber(), tc.taskAttemptId(), tc.stageId())

    seen = sc.parallelize(range(10), 4).mapPartitions(describe).collect()
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert [s[1] for s in seen] == [0, 0, 0, 0]
    assert len({s[2] for s in seen}) == 4
    assert len({s[3] for s in seen}) == 1


def test_local_properties_reach_the_task_context(sc: Any) -> None:
    from scheduler import TaskContext

    sc.setLocalProperty("testkey", "testvalue")
    try:
        assert sc.getLocalProperty("testkey") == "testvalue"
        rdd = sc.parallelize(range(1), 1)
        assert rdd.map(lambda _: TaskContext.get().getLocalProperty("testkey")).collect() == [
            "testvalue"
        ]
        assert rdd.map(lambda _: TaskContext.get().getLocalProperty("otherkey")).collect() == [None]
    finally:
        sc.setLocalProperty("testkey", None)
    assert sc.getLocalProperty("testkey") is None


# -- status tracker and job groups ------------------------------------------------------


def test_job_group_and_description_are_local_properties(sc: Any) -> None:
    from scheduler import TaskContext

    sc.setJobGroup("compat-props", "job group as a local property")
    sc.setJobDescription("my job")
    try:
        assert sc.getLocalProperty("spark.jobGroup.id") == "compat-props"
        assert sc.getLocalProperty("spark.job.description") == "my job"
        seen = sc.parallelize([1], 1).map(
            lambda _: TaskContext.get().getLocalProperty("spark.jobGroup.id")
        )
        assert seen.collect() == ["compat-props"]
        assert sc.cancelJobGroup("compat-no-such-group") is None
    finally:
        sc.setJobDescription(None)
        sc.setJobGroup("compat-after-props", "reset")


def test_status_tracker_reports_finished_jobs_of_a_group(sc: Any) -> None:
    tracker = sc.statusTracker()
    sc.setJobGroup("compat-tracked", "a group for the status tracker test")
    try:
        assert sc.parallelize(range(10), 3).map(lambda x: (x % 2, x)).reduceByKey(max).count() == 2
    finally:
        sc.setJobGroup("compat-other", "after the tracked job")
    job_ids = tracker.getJobIdsForGroup("compat-tracked")
    assert len(job_ids) == 1
    info = tracker.getJobInfo(job_ids[0])
    assert info.jobId == job_ids[0]
    assert info.status == "SUCCEEDED"
    assert len(info.stageIds) == 2
    result_stage = tracker.getStageInfo(max(info.stageIds))
    if result_stage is not None:  # PySpark may have forgotten a finished stage already
        # reduceByKey without numPartitions keeps its parent's partition count.
        assert result_stage.numTasks == 3
        assert result_stage.numCompletedTasks == 3
    assert tracker.getJobIdsForGroup("compat-never-used") == []
    assert tracker.getJobInfo(10**6) is None
    assert tracker.getActiveJobsIds() == []
    assert tracker.getActiveStageIds() == []


def test_concurrent_jobs_from_several_driver_threads(sc: Any) -> None:
    import threading

    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            sc.setJobGroup(f"compat-thread-{n}", f"thread {n}")
            pairs = sc.parallelize(range(n * 100), 3).map(lambda x: (x % 7, 1))
            results[n] = sorted(pairs.reduceByKey(lambda a, b: a + b).collect())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a driver thread's job did not finish"
    assert errors == []
    for n in (1, 2, 3, 4):
        expected = [(k, len(range(k, n * 100, 7))) for k in range(7)]
        assert results[n] == expected
    tracker = sc.statusTracker()
    for n in (1, 2, 3, 4):
        assert len(tracker.getJobIdsForGroup(f"compat-thread-{n}")) == 1


# -- errors surface in the driver -------------------------------------------------------


def _explode_on_seven(x: int) -> int:
    if x == 7:
        raise ValueError(f"compat boom at {x}")
    return x


def test_exception_in_a_task_reaches_the_driver_with_the_remote_traceback(sc: Any) -> None:
    with pytest.raises(Exception) as raised:  # PySpark raises Py4JJavaError
        sc.parallelize(range(10), 2).map(_explode_on_seven).collect()
    text = str(raised.value)
    assert "compat boom at 7" in text
    assert "ValueError" in text
    assert "_explode_on_seven" in text  # the remote frame, not only the message
    # The context stays usable after a failed job.
    assert sc.parallelize(range(10), 2).map(lambda x: x + 1).sum() == 55


def test_stop_iteration_in_user_code_fails_the_task(sc: Any) -> None:
    def stop(*args: Any) -> Any:
        raise StopIteration()

    with pytest.raises(Exception, match="StopIteration"):
        sc.parallelize(range(10)).map(stop).collect()
    with pytest.raises(Exception, match="StopIteration"):
        sc.parallelize(range(10)).filter(stop).collect()
    with pytest.raises(Exception, match="StopIteration"):
        sc.parallelize(range(10)).reduce(stop)
    with pytest.raises(Exception, match="StopIteration"):
        sc.parallelize(range(10)).flatMap(stop).collect()

    def stop_on_last(x: int) -> list[int]:
        if x == 9:
            raise StopIteration()
        return [x]

    with pytest.raises(Exception, match="StopIteration"):  # not a silently shorter result
        sc.parallelize(range(10), 1).flatMap(stop_on_last).collect()


# -- which partitions an action computes (visible through accumulators) ----------------


@pytest.mark.parametrize(
    ("action", "expected", "partitions_computed"),
    [
        (lambda rdd: rdd.take(1), [0], 1),
        (lambda rdd: rdd.take(3), [0, 1, 2], 2),
        (lambda rdd: rdd.take(9), list(range(9)), 5),
        (lambda rdd: rdd.take(19), list(range(19)), 10),
        (lambda rdd: rdd.first(), 0, 1),
        (lambda rdd: rdd.isEmpty(), False, 1),
        (lambda rdd: rdd.filter(lambda x: x > 17).take(1), [18], 10),
        (lambda rdd: rdd.top(2), [19, 18], 10),
    ],
    ids=["take1", "take3", "take9", "take19", "first", "isEmpty", "take-sparse", "top"],
)
def test_take_scans_partitions_like_pyspark(
    sc: Any, action: Any, expected: Any, partitions_computed: int
) -> None:
    computed = sc.accumulator(0)

    def tally(it: Any) -> Any:
        computed.add(1)
        return it

    rdd = sc.parallelize(range(20), 10).mapPartitions(tally)
    assert action(rdd) == expected
    assert computed.value == partitions_computed


def test_task_attempt_ids_grow_across_jobs(sc: Any) -> None:
    from scheduler import TaskContext

    def describe(it: Any) -> Any:
        tc = TaskContext.get()
        yield (tc.stageId(), tc.partitionId(), tc.taskAttemptId())

    first = sc.parallelize(range(4), 2).mapPartitions(describe).collect()
    second = sc.parallelize(range(4), 2).mapPartitions(describe).collect()
    stage0, tid0 = first[0][0], first[0][2]
    relative = [(s - stage0, p, t - tid0) for s, p, t in first + second]
    assert relative == [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)]


def test_every_job_gets_new_stage_ids_even_for_skipped_stages(sc: Any) -> None:
    tracker = sc.statusTracker()
    summed = sc.parallelize(range(10), 2).map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: a + b)

    def stage_ids(group: str, action: Any) -> list[int]:
        sc.setJobGroup(group, "stage ids")
        action()
        (job_id,) = tracker.getJobIdsForGroup(group)
        return sorted(tracker.getJobInfo(job_id).stageIds)

    first = stage_ids("compat-ids-1", summed.collect)
    second = stage_ids("compat-ids-2", summed.collect)
    third = stage_ids("compat-ids-3", summed.mapValues(str).collect)
    base = first[0]
    assert [[s - base for s in ids] for ids in (first, second, third)] == [[0, 1], [2, 3], [4, 5]]


def test_stage_info_of_a_running_stage(sc: Any, tmp_path: Any) -> None:
    import os
    import threading
    import time

    tracker = sc.statusTracker()
    # Executors see the driver's files (one machine): the test releases its tasks with a
    # file; they also give up by themselves after 30 s if the test fails first.
    release = str(tmp_path / "release")

    def slow(x: int) -> int:
        deadline = time.monotonic() + 30.0
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        return x

    def run() -> None:
        sc.setJobGroup("compat-running-stage", "a job the test watches")
        sc.parallelize(range(2), 2).map(slow).count()

    job = threading.Thread(target=run, daemon=True)
    job.start()
    try:
        support.wait_until(
            lambda: tracker.getActiveStageIds() != [], timeout=20, what="an active stage"
        )
        (stage_id,) = tracker.getActiveStageIds()
        info = tracker.getStageInfo(stage_id)
        assert info.stageId == stage_id
        assert info.numTasks == 2
        assert info.numCompletedTasks == 0
        assert len(tracker.getActiveJobsIds()) == 1
    finally:
        open(release, "w").close()
        job.join(timeout=60)
    assert not job.is_alive()


def test_stage_info_of_finished_stages_is_kept(sc: Any) -> None:
    tracker = sc.statusTracker()
    sc.setJobGroup("compat-finished-stages", "stage info after the job")
    sc.parallelize(range(10), 3).map(lambda x: (x % 2, x)).reduceByKey(max, 2).count()
    (job_id,) = tracker.getJobIdsForGroup("compat-finished-stages")
    map_stage, result_stage = sorted(tracker.getJobInfo(job_id).stageIds)
    for stage_id, tasks in ((map_stage, 3), (result_stage, 2)):
        info = tracker.getStageInfo(stage_id)
        assert info is not None
        assert (info.numTasks, info.numCompletedTasks, info.numActiveTasks) == (tasks, tasks, 0)
        assert info.numFailedTasks == 0


# -- the names a PySpark RDD program imports, and threads -----------------------------

CORE_NAMES = [
    "Accumulator",
    "AccumulatorParam",
    "Broadcast",
    "RDD",
    "SparkConf",
    "SparkContext",
    "SparkJobInfo",
    "SparkStageInfo",
    "StatCounter",
    "StatusTracker",
    "StorageLevel",
    "TaskContext",
]


def test_the_core_names_of_the_rdd_api_can_be_imported() -> None:
    import scheduler

    assert [name for name in CORE_NAMES if not hasattr(scheduler, name)] == []


def test_local_properties_and_job_groups_belong_to_the_thread_that_set_them(sc: Any) -> None:
    import threading

    from scheduler import TaskContext

    sc.setLocalProperty("compat-owner", "main")
    sc.setJobGroup("compat-main-group", "set by the main thread")
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        seen["driver"] = (
            sc.getLocalProperty("compat-owner"),
            sc.getLocalProperty("spark.jobGroup.id"),
        )
        seen["task"] = (
            sc.parallelize([1], 1)
            .map(lambda _: TaskContext.get().getLocalProperty("compat-owner"))
            .collect()
        )
        sc.setLocalProperty("compat-owner", "other")

    try:
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(timeout=60)
        assert seen == {"driver": (None, None), "task": [None]}
        assert sc.getLocalProperty("compat-owner") == "main"
    finally:
        sc.setLocalProperty("compat-owner", None)
        sc.setJobGroup("compat-after-threads", "reset")


def test_inheritable_thread_carries_the_local_properties(sc: Any) -> None:
    from scheduler import InheritableThread, TaskContext, inheritable_thread_target

    sc.setLocalProperty("compat-owner", "main")
    seen: dict[str, Any] = {}

    def child() -> None:
        seen["driver"] = sc.getLocalProperty("compat-owner")
        seen["task"] = (
            sc.parallelize([1], 1)
            .map(lambda _: TaskContext.get().getLocalProperty("compat-owner"))
            .collect()
        )

    try:
        thread = InheritableThread(target=child)
        thread.start()
        thread.join(timeout=60)
        assert seen == {"driver": "main", "task": ["main"]}
        seen.clear()
        wrapped = inheritable_thread_target(child)
        import threading

        plain = threading.Thread(target=wrapped)
        plain.start()
        plain.join(timeout=60)
        assert seen == {"driver": "main", "task": ["main"]}
    finally:
        sc.setLocalProperty("compat-owner", None)
