"""PySpark compatibility: the SparkContext's life cycle, retries and job cancellation.

These tests create and stop their own SparkContext (only one may be active),
on ``local[2]`` and on the real cluster. Ported (re-expressed) from the
behaviours of apache/spark python/pyspark/tests/test_context.py,
test_taskcontext.py and the doctests of python/pyspark/core/context.py;
expected values were checked on PySpark 4.x first.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import _compat_support as support
import pytest

#: A cancelled job must fail in the driver well before its tasks would finish.
CANCEL_DEADLINE_S = 30.0


def test_with_statement_stops_the_context(master: str) -> None:
    from scheduler import SparkContext

    with SparkContext(conf=support.compat_conf("compat-with").setMaster(master)) as sc:
        assert sc.parallelize(range(10), 2).count() == 10
        assert sc.master == master
        assert sc.appName == "compat-with"
        assert SparkContext.getOrCreate() is sc
    # After the block a new context can be made, which proves the old one stopped.
    with SparkContext(conf=support.compat_conf("compat-with-2").setMaster(master)) as again:
        assert again.parallelize([1, 2]).sum() == 3


def test_with_statement_stops_the_context_on_error(master: str) -> None:
    from scheduler import SparkContext

    with (
        pytest.raises(RuntimeError, match="inside the block"),
        SparkContext(conf=support.compat_conf("compat-with-error").setMaster(master)),
    ):
        raise RuntimeError("inside the block")
    with SparkContext(conf=support.compat_conf("compat-after-error").setMaster(master)) as sc:
        assert sc.parallelize(range(3)).collect() == [0, 1, 2]


def test_only_one_active_context_and_get_or_create(master: str) -> None:
    from scheduler import SparkConf, SparkContext

    sc = support.new_context(master, "compat-single")
    try:
        with pytest.raises(ValueError):
            SparkContext(conf=support.compat_conf("compat-second").setMaster(master))
        assert SparkContext.getOrCreate() is sc
        assert SparkContext.getOrCreate(SparkConf().setMaster(master)) is sc
    finally:
        sc.stop()
    created = SparkContext.getOrCreate(support.compat_conf("compat-created").setMaster(master))
    try:
        assert created is not sc
        assert created.appName == "compat-created"
        assert created.parallelize(range(4)).count() == 4
    finally:
        created.stop()


def test_stop_is_idempotent_and_conf_is_kept(master: str) -> None:
    sc = support.new_context(master, "compat-conf", **{"spark.compat.custom": "42"})
    try:
        conf = sc.getConf()
        assert conf.get("spark.compat.custom") == "42"
        assert conf.get("spark.app.name") == "compat-conf"
        assert conf.get("spark.compat.missing") is None
        assert conf.get("spark.compat.missing", "fallback") == "fallback"
        assert sc.defaultParallelism == 2
        assert isinstance(sc.applicationId, str) and sc.applicationId
        assert sc.startTime > 0
    finally:
        sc.stop()
    sc.stop()


def test_local_master_urls_set_the_default_parallelism() -> None:
    import os

    for url, cores in (("local", 1), ("local[3]", 3), ("local[*]", os.cpu_count())):
        sc = support.new_context(url, "compat-local-urls")
        try:
            assert sc.defaultParallelism == cores
            assert sc.parallelize(range(12)).getNumPartitions() == cores
            assert sc.parallelize(range(12)).sum() == 66
        finally:
            sc.stop()


@pytest.mark.parametrize("url", ["bogus://x", "local[0]", "local[abc]"])
def test_a_bad_master_url_is_refused(url: str) -> None:
    from scheduler import SparkContext

    with pytest.raises(Exception):  # noqa: B017 - PySpark raises Py4J/gateway errors
        SparkContext(conf=support.compat_conf("compat-bad-master").setMaster(url))


@pytest.mark.skipif(support.IMPL == "pyspark", reason="checks sparkctl's own, clearer message")
@pytest.mark.parametrize("url", ["bogus://x", "local[0]", "local[abc]"])
def test_a_bad_master_url_is_named_in_a_value_error(url: str) -> None:
    from scheduler import SparkContext

    with pytest.raises(ValueError, match=r"bad master URL"):
        SparkContext(conf=support.compat_conf("compat-bad-master").setMaster(url))


def test_a_stopped_context_refuses_new_jobs(master: str) -> None:
    sc = support.new_context(master, "compat-stopped")
    sc.stop()
    with pytest.raises(Exception):  # noqa: B017 - PySpark raises AttributeError here
        sc.parallelize([1]).count()
    if support.IMPL == "sparkctl":
        with pytest.raises(RuntimeError, match="stopped SparkContext"):
            sc.parallelize([1]).count()


def test_set_log_level(master: str) -> None:
    sc = support.new_context(master, "compat-log-level")
    try:
        for level in ("ERROR", "WARN", "INFO", "DEBUG", "OFF", "warn"):
            sc.setLogLevel(level)
        with pytest.raises(Exception):  # noqa: B017 - PySpark raises a Py4J error
            sc.setLogLevel("NOT_A_LEVEL")
        sc.setLogLevel("ERROR")
        assert sc.parallelize([1]).count() == 1
    finally:
        sc.stop()


def test_spark_conf_api() -> None:
    from scheduler import SparkConf

    conf = SparkConf(loadDefaults=False)
    assert conf.setMaster("local[3]").setAppName("name") is conf
    conf.set("spark.executor.memory", "2g").setAll([("spark.a", "1"), ("spark.b", "2")])
    conf.setIfMissing("spark.a", "overwritten?").setIfMissing("spark.c", "3")
    assert conf.get("spark.master") == "local[3]"
    assert conf.get("spark.app.name") == "name"
    assert conf.get("spark.a") == "1" and conf.get("spark.c") == "3"
    assert conf.contains("spark.b") and not conf.contains("spark.zzz")
    assert ("spark.executor.memory", "2g") in conf.getAll()
    conf.set("spark.int", 5)
    assert conf.get("spark.int") == "5"


def test_spark_conf_executor_env_takes_a_pair_or_pairs() -> None:
    from scheduler import SparkConf
    from scheduler.errors import PySparkRuntimeError

    conf = SparkConf(loadDefaults=False).setExecutorEnv("A", "1")
    conf.setExecutorEnv(pairs=[("B", "2"), ("C", "3")])
    assert sorted(conf.getAll()) == [
        ("spark.executorEnv.A", "1"),
        ("spark.executorEnv.B", "2"),
        ("spark.executorEnv.C", "3"),
    ]
    for args, kwargs in [((), {}), (("K", "V", [("A", "B")]), {}), ((), {"value": "V"})]:
        with pytest.raises(PySparkRuntimeError) as refused:
            conf.setExecutorEnv(*args, **kwargs)
        assert refused.value.getCondition() == "KEY_VALUE_PAIR_REQUIRED"
        assert refused.value.getMessageParameters() == {}
        assert isinstance(refused.value, RuntimeError)
        assert refused.value.getSqlState() is None and refused.value.getQueryContext() == []


def test_attempt_numbers_with_retries(master: str) -> None:
    from scheduler import TaskContext

    sc = support.new_context(support.retrying_master(master), "compat-attempts")
    try:

        def fail_first_attempt_of_partition_zero(x: int) -> list[int]:
            tc = TaskContext.get()
            if tc.attemptNumber() == 0 and tc.partitionId() == 0:
                raise RuntimeError("failing on first attempt")
            return [x, tc.partitionId(), tc.attemptNumber(), tc.taskAttemptId()]

        result = sc.parallelize(range(10), 4).map(fail_first_attempt_of_partition_zero).collect()
        assert result[0][:3] == [0, 0, 1]
        assert result[9][:3] == [9, 3, 0]
        assert all(r[2] == 1 for r in result if r[1] == 0)
        assert all(r[2] == 0 for r in result if r[1] != 0)
        assert result[0][3] != result[9][3]
    finally:
        sc.stop()


def test_accumulators_count_only_successful_attempts(master: str) -> None:
    from scheduler import TaskContext

    sc = support.new_context(support.retrying_master(master), "compat-acc-retry")
    try:
        acc = sc.accumulator(0)

        def add_then_fail_once(it: Any) -> Any:
            for x in it:
                acc.add(x)
            tc = TaskContext.get()
            if tc.partitionId() == 1 and tc.attemptNumber() == 0:
                raise RuntimeError("fail after updating the accumulator")
            yield 1

        assert sc.parallelize(range(1, 11), 2).mapPartitions(add_then_fail_once).sum() == 2
        assert acc.value == 55
    finally:
        sc.stop()


def test_a_task_failing_every_attempt_fails_the_job(master: str) -> None:
    sc = support.new_context(support.retrying_master(master), "compat-poison")
    try:

        def poison(x: int) -> int:
            raise ZeroDivisionError(f"poisoned {x}")

        with pytest.raises(Exception, match="poisoned"):
            sc.parallelize([1], 1).map(poison).collect()
        assert sc.parallelize(range(5), 2).sum() == 10
    finally:
        sc.stop()


def _slow(x: int) -> int:
    """Runs until CANCEL_DEADLINE_S unless its job is cancelled first."""
    deadline = time.monotonic() + CANCEL_DEADLINE_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return x


def test_cancel_job_group(master: str) -> None:
    sc = support.new_context(master, "compat-cancel")
    outcome: dict[str, Any] = {}

    def run_job() -> None:
        sc.setJobGroup("compat-to-cancel", "a job that the test cancels", True)
        started = time.monotonic()
        try:
            outcome["result"] = sc.parallelize(range(4), 2).map(_slow).collect()
        except Exception as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    try:
        tracker = sc.statusTracker()
        worker = threading.Thread(target=run_job, daemon=True)
        worker.start()
        support.wait_until(
            lambda: any(
                tracker.getJobInfo(j) is not None and tracker.getJobInfo(j).status == "RUNNING"
                for j in tracker.getJobIdsForGroup("compat-to-cancel")
            ),
            timeout=20,
            what="the job of group compat-to-cancel to run",
        )
        sc.cancelJobGroup("compat-to-cancel")
        worker.join(timeout=CANCEL_DEADLINE_S)
        assert not worker.is_alive(), "the cancelled job did not return"
        assert "result" not in outcome
        assert "cancel" in str(outcome["error"]).lower()
        assert outcome["seconds"] < CANCEL_DEADLINE_S
        job_ids = tracker.getJobIdsForGroup("compat-to-cancel")
        assert [tracker.getJobInfo(j).status for j in job_ids] == ["FAILED"]
        # Jobs of other groups still run.
        sc.setJobGroup("compat-after-cancel", "after the cancelled group")
        assert sc.parallelize(range(10), 2).count() == 10
    finally:
        sc.stop()


def test_stopping_the_context_fails_a_running_job_saying_so(master: str) -> None:
    sc = support.new_context(master, "compat-stop-running")
    outcome: dict[str, Any] = {}
    release = threading.Event()

    def run_job() -> None:
        sc.setJobGroup("compat-stopped", "a job running when the context stops", True)
        try:
            outcome["result"] = sc.parallelize(range(4), 2).map(_slow).collect()
        except Exception as exc:
            outcome["error"] = exc
        release.set()

    try:
        tracker = sc.statusTracker()
        worker = threading.Thread(target=run_job, daemon=True)
        worker.start()

        def both_tasks_run() -> bool:
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            return any(s is not None and s.numActiveTasks == 2 for s in stages)

        support.wait_until(both_tasks_run, timeout=20, what="the job's two tasks to run")
    finally:
        sc.stop()
    worker.join(timeout=CANCEL_DEADLINE_S)
    assert not worker.is_alive() and release.is_set(), "the job did not return"
    assert "result" not in outcome
    assert "cancelled because SparkContext was shut down" in str(outcome["error"])


def test_results_past_spark_driver_max_result_size_fail_the_job(master: str) -> None:
    sc = support.new_context(master, "compat-max-result", **{"spark.driver.maxResultSize": "1m"})
    try:
        big = sc.parallelize(range(3), 3).map(lambda i: b"x" * 600000)
        with pytest.raises(
            Exception,
            match=r"Total size of serialized results of 2 tasks \(11\d\d\.\d KiB\) is bigger "
            r"than spark\.driver\.maxResultSize \(1024\.0 KiB\)",
        ):
            big.collect()
        # Only what reaches the driver counts: map outputs and small results do not.
        assert big.count() == 3
        assert big.map(lambda b: (1, b)).reduceByKey(lambda a, b: a[:10]).count() == 1
        assert len(sc.parallelize([0], 1).map(lambda i: b"y" * 900000).first()) == 900000
    finally:
        sc.stop()


def test_binary_files_split_by_the_files_settings(master: str, tmp_path: Any) -> None:
    import os

    for i in range(6):
        (tmp_path / f"f{i}").write_bytes(b"z" * (30 * (i + 1)))
    settings = {"spark.files.openCostInBytes": "10", "spark.files.maxPartitionBytes": "100"}
    sc = support.new_context(master, "compat-files-settings", **settings)
    try:
        # Splits take files in listing order until they hold 100 bytes or more.
        listed = os.listdir(tmp_path)
        expected: list[list[str]] = [[]]
        for name in listed:
            if sum(os.path.getsize(tmp_path / n) for n in expected[-1]) >= 100:
                expected.append([])
            expected[-1].append(name)
        for files in (sc.binaryFiles(str(tmp_path)), sc.binaryFiles(str(tmp_path), 4)):
            layout = files.glom().map(lambda p: [os.path.basename(k) for k, _ in p]).collect()
            assert layout == expected
    finally:
        sc.stop()
