"""Dynamic allocation end to end: a real Master and Workers as processes on 127.0.0.1.

An application starts with initialExecutors, gains executors while tasks are
backlogged, gives idle ones back after executorIdleTimeout down to
minExecutors (the Master and Workers see them gone), and keeps an executor
holding shuffle output while the program still references that shuffle.
Every wait is bounded; every process started here is stopped by PID.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import operator
import pathlib
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from cluster.testing import ProcCluster, wait_until
from scheduler import SparkConf, SparkContext

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[ProcCluster]:
    """A Master and two 2-core Workers, stopped (by PID) whatever happens."""
    c = ProcCluster(tmp_path, {"spark.worker.timeout": "3"})
    try:
        c.add_worker(cores=2, memory="1g")
        c.add_worker(cores=2, memory="1g")
        yield c
        c.assert_all_free()
    finally:
        c.close()


def context(url: str, **settings: str) -> SparkContext:
    conf = (
        SparkConf()
        .setMaster(url)
        .setAppName("dynamic-allocation")
        .set("spark.ui.enabled", "false")
        .set("spark.executor.cores", "1")
        .set("spark.executor.memory", "128m")
        .set("spark.dynamicAllocation.enabled", "true")
        .set("spark.dynamicAllocation.executorIdleTimeout", "1s")
        .set("spark.dynamicAllocation.schedulerBacklogTimeout", "200ms")
    )
    for key, value in settings.items():
        conf.set(f"spark.dynamicAllocation.{key}", value)
    return SparkContext(conf=conf)


def executor_ids(sc: SparkContext) -> set[str]:
    return {e.executorId for e in sc.statusTracker().getExecutorInfos()}


def worker_processes(c: ProcCluster) -> int:
    """Executor processes the Workers run (their direct children)."""
    total = 0
    for worker in c.workers:
        with contextlib.suppress(psutil.Error):
            total += len(psutil.Process(worker.pid).children())
    return total


def master_view(c: ProcCluster) -> tuple[int, int]:
    """(executors of the running app, cores used on the workers) as the Master sees them."""
    state = c.state()
    apps = list(state.active_apps)
    return (len(apps[0].executors) if apps else 0, sum(w.cores_used for w in state.workers))


def test_scales_up_under_backlog_and_releases_idle_executors(cluster: ProcCluster) -> None:
    sc = context(cluster.url, minExecutors="1", initialExecutors="1", maxExecutors="3")
    try:
        assert len(executor_ids(sc)) == 1
        assert master_view(cluster) == (1, 1)
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.05):
                seen.append(len(executor_ids(sc)))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rdd = sc.parallelize(range(24), 24).map(lambda x: (time.sleep(0.25), x * x)[1])
        try:
            assert rdd.collect() == [x * x for x in range(24)]
        finally:
            done.set()
            watcher.join(5)
        assert max(seen) >= 2, f"no executor was added under backlog: {seen}"
        assert max(seen) <= 3
        # Idle for executorIdleTimeout (1 s): back down to minExecutors, Master and Workers too.
        wait_until(lambda: len(executor_ids(sc)) == 1, 10, "executors back to minExecutors")
        wait_until(lambda: master_view(cluster) == (1, 1), 10, "the Master to see them gone")
        wait_until(lambda: worker_processes(cluster) == 1, 10, "the Workers to stop them")
        assert sc.parallelize(range(10), 2).sum() == 45  # still works on what is left
    finally:
        sc.stop()


def test_executor_holding_shuffle_output_is_kept_while_referenced(cluster: ProcCluster) -> None:
    sc = context(cluster.url, initialExecutors="3", maxExecutors="3")
    try:
        wait_until(lambda: len(executor_ids(sc)) == 3, 10, "the initial executors")
        counts = sc.parallelize(range(100), 2).map(lambda x: (x % 5, 1)).reduceByKey(operator.add)
        assert sorted(counts.collect()) == [(k, 20) for k in range(5)]
        dag = sc._scheduler.dag
        holders = {o.executor_id for outs in dag.map_outputs.values() for o in outs if o}
        assert holders and len(holders) < 3, holders
        # The others go after the idle timeout; the holders stay while `counts` lives.
        wait_until(lambda: executor_ids(sc) == holders, 10, "idle executors released")
        time.sleep(1.5)
        assert executor_ids(sc) == holders
        assert master_view(cluster) == (len(holders), len(holders))
        assert sorted(counts.collect()) == [(k, 20) for k in range(5)]  # map output reused
        assert {o.executor_id for outs in dag.map_outputs.values() for o in outs if o} == holders
        # Once the program drops the shuffle, its executors are plain idle ones (min is 0).
        del counts
        gc.collect()
        wait_until(lambda: not executor_ids(sc), 10, "the shuffle's executors released")
        wait_until(lambda: master_view(cluster) == (0, 0), 10, "the Master to see them gone")
        wait_until(lambda: worker_processes(cluster) == 0, 10, "the Workers to stop them")
        # From zero executors, a new job's backlog brings one back.
        assert sc.parallelize(range(4), 2).map(lambda x: x + 1).collect() == [1, 2, 3, 4]
    finally:
        sc.stop()


def test_developer_api_kills_and_requests_executors(cluster: ProcCluster) -> None:
    """Without dynamic allocation: killExecutors lowers the total, requestExecutors raises it."""
    conf = (
        SparkConf()
        .setMaster(cluster.url)
        .setAppName("developer-api")
        .set("spark.ui.enabled", "false")
        .set("spark.executor.cores", "1")
        .set("spark.executor.memory", "128m")
        .set("spark.cores.max", "3")
    )
    sc = SparkContext(conf=conf)
    try:
        wait_until(lambda: len(executor_ids(sc)) == 3, 10, "three executors")
        victim = sorted(executor_ids(sc))[0]
        assert sc.killExecutors([victim]) is True
        assert victim not in executor_ids(sc)
        wait_until(lambda: master_view(cluster) == (2, 2), 10, "the Master to see it gone")
        time.sleep(0.3)
        assert master_view(cluster) == (2, 2)  # not replaced: the total was lowered
        assert sc.requestExecutors(1) is True
        wait_until(lambda: len(executor_ids(sc)) == 3, 10, "a new executor")
        assert sc.parallelize(range(6), 3).map(lambda x: x * 2).sum() == 30
    finally:
        sc.stop()


def test_invalid_settings_fail_at_start_naming_the_key() -> None:
    conf = (
        SparkConf()
        .setMaster("spark://127.0.0.1:1")
        .setAppName("bad")
        .set("spark.dynamicAllocation.enabled", "true")
        .set("spark.dynamicAllocation.minExecutors", "4")
        .set("spark.dynamicAllocation.maxExecutors", "2")
    )
    with pytest.raises(ValueError, match=r"spark\.dynamicAllocation\.minExecutors"):
        SparkContext(conf=conf)
    assert SparkContext._active_spark_context is None


def test_local_mode_ignores_dynamic_allocation(caplog: pytest.LogCaptureFixture) -> None:
    conf = (
        SparkConf()
        .setMaster("local[1]")
        .setAppName("local-da")
        .set("spark.ui.enabled", "false")
        .set("spark.dynamicAllocation.enabled", "true")
        .set("spark.dynamicAllocation.minExecutors", "-1")  # not even checked, as Spark
    )
    with caplog.at_level(logging.WARNING, logger="scheduler"):
        sc = SparkContext(conf=conf)
    try:
        assert "dynamicAllocation.enabled is ignored in local mode" in caplog.text
        assert sc.parallelize([1, 2, 3]).sum() == 6
        assert sc.requestExecutors(1) is False
    finally:
        sc.stop()
