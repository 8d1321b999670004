"""Failures the driver must survive or report: lost executors and workers, poison tasks,
spilling aggregations and cancelled job groups. Real processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from _faults_support import new_context, wait_until

from cluster.testing import ProcCluster

pytestmark = pytest.mark.timeout(180)


def _slow_pairs(marker_dir: str, delay: float) -> Any:
    def f(x: int) -> tuple[int, int]:
        Path(marker_dir, f"started-{os.getpid()}-{x}").touch()
        time.sleep(delay)
        return x % 10, x

    return f


def _executor_workers(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def test_executor_sigkill_mid_stage_gives_the_exact_result(tmp_path: Path) -> None:
    sc = new_context("local[2]", "executor-sigkill")
    try:
        old_pid = sc._executor_pids[0]
        old_workers = _executor_workers(old_pid)
        rdd = sc.parallelize(range(40), 8).map(_slow_pairs(str(tmp_path), 0.2))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = sorted(rdd.reduceByKey(lambda a, b: a + b).collect())
            except BaseException as exc:
                result["error"] = exc

        job = threading.Thread(target=run)
        job.start()
        wait_until(lambda: any(tmp_path.iterdir()), 30, "a map task to start")
        os.kill(old_pid, signal.SIGKILL)
        job.join(120)
        assert not job.is_alive()
        assert "error" not in result, result.get("error")
        expected = sorted({k: sum(x for x in range(40) if x % 10 == k) for k in range(10)}.items())
        assert result["value"] == expected
        assert sc._executor_pids and sc._executor_pids[0] != old_pid
        # The dead executor's Python workers went with it.
        wait_until(
            lambda: not any(p.is_running() and p.status() != "zombie" for p in old_workers),
            10,
            "the killed executor's workers to exit",
        )
    finally:
        sc.stop()


def test_lost_map_outputs_are_recomputed(tmp_path: Path) -> None:
    sc = new_context("local[2]", "lost-map-outputs")
    try:
        pairs = sc.parallelize(range(100), 4).map(lambda x: (x % 7, x))
        grouped = pairs.reduceByKey(lambda a, b: a + b)
        first = sorted(grouped.collect())
        pid = sc._executor_pids[0]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: sc._executor_pids and sc._executor_pids[0] != pid, 30, "a new executor")
        wait_until(lambda: len(sc._scheduler.executors) == 1, 30, "the new executor to register")
        # The shuffle of `grouped` lived on the dead executor: the reduce stage must not
        # read stale outputs; the map stage is recomputed.
        assert sorted(grouped.collect()) == first
        assert sorted(grouped.mapValues(lambda v: v * 2).collect()) == [
            (k, v * 2) for k, v in first
        ]
    finally:
        sc.stop()


def test_poison_task_fails_its_job_after_four_attempts_while_another_job_finishes() -> None:
    from scheduler import JobFailedError

    sc = new_context("local[2,4]", "poison")
    try:
        outcome: dict[str, Any] = {}

        def poison(x: int) -> int:
            if x == 3:
                raise ValueError(f"poisoned record {x}")
            return x

        def run_poison() -> None:
            try:
                sc.parallelize(range(8), 4).map(poison).collect()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run_poison)
        thread.start()
        assert sc.parallelize(range(1000), 4).map(lambda x: x * 2).sum() == 999000
        thread.join(60)
        assert not thread.is_alive()
        error = outcome.get("error")
        assert isinstance(error, JobFailedError), error
        text = str(error)
        assert "failed 4 times" in text
        assert "ValueError: poisoned record 3" in text
        assert "in stage" in text and "TID" in text
        # The context stays usable after a failed job.
        assert sc.parallelize([1, 2, 3]).count() == 3
    finally:
        sc.stop()


def test_a_task_that_kills_its_executor_fails_its_job_after_four_lost_executors() -> None:
    """Lost executors are not a task's failures, but not forever: the job ends clearly."""
    from scheduler import JobFailedError

    sc = new_context("local[2]", "executor-killer")
    try:

        def kill_executor(x: int) -> int:
            if x == 3:
                os.kill(os.getppid(), signal.SIGKILL)
            return x

        start = time.monotonic()
        with pytest.raises(JobFailedError) as failed:
            sc.parallelize(range(8), 4).map(kill_executor).collect()
        assert time.monotonic() - start < 60
        text = str(failed.value)
        # Task 1 kills; task 0 may die with it each time (running beside it, or finished with
        # its status still queued in the executor), count the same four losses and be named.
        assert re.search(r"Task [01] in stage", text), text
        assert "was running on 4 executors that were lost" in text
        # A new executor replaces the last one: the context stays usable.
        assert sc.parallelize([1, 2, 3]).count() == 3
    finally:
        sc.stop()


def test_group_by_key_larger_than_the_memory_budget_spills_and_finishes() -> None:
    sc = new_context("local[2]", "spill", {"spark.python.worker.memory": "1m"})
    try:
        n = 200_000
        pairs = sc.parallelize(range(n), 4).map(lambda x: (x % 1000, x))
        sizes = pairs.groupByKey(4).mapValues(len).collect()
        assert len(sizes) == 1000 and all(v == n // 1000 for _, v in sizes)
        assert sc._scheduler.metrics["diskBytesSpilled"] > 0
        ordered = sc.parallelize(range(50_000), 2).map(lambda x: (-x, x)).sortByKey().values()
        assert ordered.take(3) == [49999, 49998, 49997]
    finally:
        sc.stop()


def test_cancel_job_group_stops_its_jobs_and_keeps_the_context(tmp_path: Path) -> None:
    from scheduler import JobCancelledError

    sc = new_context("local[2]", "cancel")
    try:
        outcome: dict[str, Any] = {}

        def sleepy(x: int) -> int:
            Path(tmp_path, f"started-{x}").touch()
            time.sleep(30)
            return x

        def run() -> None:
            sc.setJobGroup("slow-group", "jobs to cancel")
            try:
                sc.parallelize(range(4), 4).map(sleepy).collect()
            except BaseException as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: any(tmp_path.iterdir()), 30, "a task to start")
        started = time.monotonic()
        sc.cancelJobGroup("slow-group")
        thread.join(30)
        assert not thread.is_alive()
        assert time.monotonic() - started < 10
        assert isinstance(outcome.get("error"), JobCancelledError), outcome
        assert "slow-group" in str(outcome["error"])
        assert sc.statusTracker().getJobIdsForGroup("slow-group")
        assert sc.parallelize(range(10), 2).sum() == 45
    finally:
        sc.stop()


def test_worker_sigkill_after_a_shuffle_map_stage_gives_the_exact_result(
    node_cluster: ProcCluster, tmp_path: Path
) -> None:
    sc = new_context(node_cluster.master.url, "worker-sigkill")
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 2, 30, "two executors")
        pairs = sc.parallelize(range(200), 4).map(lambda x: (x % 13, x))
        summed = pairs.reduceByKey(lambda a, b: a + b, 4)
        expected = sorted(summed.collect())
        # Both executors hold map outputs of `summed`'s shuffle; kill one worker (and with it
        # its executor) and use the shuffle again.
        victim = node_cluster.workers[0]
        victim_children = victim.children()
        victim.popen.kill()
        victim.popen.wait(10)
        wait_until(lambda: len(sc._scheduler.executors) == 1, 60, "the lost executor to go")
        assert sorted(summed.collect()) == expected
        assert sorted(summed.map(lambda kv: (kv[0], kv[1] + 1)).collect()) == [
            (k, v + 1) for k, v in expected
        ]
        wait_until(
            lambda: (
                not any(
                    psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                    for p in victim_children
                )
            ),
            30,
            "the killed worker's executor to exit",
        )
    finally:
        sc.stop()


def test_shuffle_blocks_fetched_over_the_rpc_env_give_the_same_result() -> None:
    # Executors on other hosts fetch map outputs through the driver; force that path here.
    conf = {"spark.executorEnv.SPARKCTL_FORCE_REMOTE_FETCH": "1"}
    sc = new_context("local[2]", "remote-fetch", conf)
    try:
        words = sc.parallelize([f"w{i % 37}" for i in range(5000)], 5)
        counts = dict(words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 3).collect())
        assert len(counts) == 37 and sum(counts.values()) == 5000
        big = sc.parallelize(range(300_000), 2).map(lambda x: (x % 2, x)).groupByKey(2)
        assert sorted(big.mapValues(len).collect()) == [(0, 150_000), (1, 150_000)]
    finally:
        sc.stop()


def test_a_frozen_executor_is_declared_lost_after_the_heartbeat_timeout(tmp_path: Path) -> None:
    conf = {"spark.network.timeout": "3s", "spark.executor.heartbeatInterval": "500ms"}
    sc = new_context("local[2]", "frozen-executor", conf)
    try:
        frozen = sc._executor_pids[0]
        rdd = sc.parallelize(range(16), 8).map(_slow_pairs(str(tmp_path), 0.1))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = rdd.values().sum()
            except BaseException as exc:
                result["error"] = exc

        job = threading.Thread(target=run)
        job.start()
        wait_until(lambda: any(tmp_path.iterdir()), 30, "a task to start")
        os.kill(frozen, signal.SIGSTOP)
        try:
            job.join(60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGKILL)
        assert not job.is_alive()
        assert result.get("value") == sum(range(16)), result
        assert frozen not in sc._executor_pids
    finally:
        sc.stop()


def test_stage_code_and_broadcasts_larger_than_the_inline_limit_are_fetched_in_chunks() -> None:
    sc = new_context("local[2]", "large-payloads")
    try:
        blob = "x" * (40 << 20)
        big = sc.broadcast(blob)
        assert (
            sc.parallelize(range(4), 2).map(lambda i: len(big.value) + i).sum() == 4 * len(blob) + 6
        )
        data = [bytes([i % 256]) * 1000 for i in range(45_000)]  # ~45 MB of stage code
        assert sc.parallelize(data, 3).map(len).sum() == 45_000_000
    finally:
        sc.stop()


def test_a_result_larger_than_the_message_limit_fails_the_task_clearly() -> None:
    from scheduler import JobFailedError

    sc = new_context("local[2]", "large-result", {"spark.rpc.message.maxSize": "1"})
    try:
        with pytest.raises(JobFailedError, match=r"spark\.rpc\.message\.maxSize"):
            sc.parallelize([0], 1).map(lambda _: b"y" * (3 << 20)).collect()
        assert sc.parallelize(range(3), 1).sum() == 3
    finally:
        sc.stop()


DRIVER_APP = """
import sys, time
from scheduler import SparkConf, SparkContext
conf = SparkConf(loadDefaults=False).setMaster("local[2]").setAppName("doomed")
sc = SparkContext(conf=conf.set("spark.ui.enabled", "false"))
assert sc.parallelize(range(10), 2).sum() == 45
print("PIDS", *sc._executor_pids, flush=True)
time.sleep(120)
"""


def test_executors_and_their_workers_exit_when_the_driver_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys

    app = tmp_path / "app.py"
    app.write_text(DRIVER_APP)
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(repo))
    driver = subprocess.Popen(
        [sys.executable, str(app)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    family: list[psutil.Process] = []
    try:
        assert driver.stdout is not None
        line = driver.stdout.readline().decode()
        assert line.startswith("PIDS"), line
        executors = [psutil.Process(int(pid)) for pid in line.split()[1:]]
        family = executors + [c for e in executors for c in e.children(recursive=True)]
        assert len(family) >= 3  # the executor and its two Python workers
        driver.kill()
        driver.wait(10)

        def gone() -> bool:
            return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)

        wait_until(gone, 30, "the executor and its workers to exit after the driver died")
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)
        for proc in family:
            with contextlib.suppress(psutil.Error):
                proc.kill()


def test_local_n_runs_n_tasks_at_once_in_separate_processes(tmp_path: Path) -> None:
    sc = new_context("local[2]", "parallel")
    try:
        marker_dir = str(tmp_path)

        def meet(index: int, iterator: Any) -> Any:
            # Each task waits for the other to start: only truly parallel tasks meet.
            Path(marker_dir, f"task-{index}").touch()
            deadline = time.monotonic() + 30
            while len(os.listdir(marker_dir)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            yield index, len(os.listdir(marker_dir)), os.getpid()

        met = sc.parallelize(range(2), 2).mapPartitionsWithIndex(meet).collect()
        assert [m[1] for m in met] == [2, 2]
        assert met[0][2] != met[1][2] and os.getpid() not in (met[0][2], met[1][2])
    finally:
        sc.stop()


def test_speculation_reruns_a_straggler_on_another_executor(node_cluster: ProcCluster) -> None:
    conf = {
        "spark.speculation": "true",
        "spark.speculation.quantile": "0.5",
        "spark.speculation.multiplier": "2",
    }
    sc = new_context(node_cluster.master.url, "speculation", conf)
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 2, 30, "two executors")

        def straggle(index: int, iterator: Any) -> Any:
            from scheduler import TaskContext

            attempt = TaskContext.get().attemptNumber()
            if index == 0 and attempt == 0:
                time.sleep(60)  # only the first attempt of task 0 is slow
            yield index, attempt, sum(iterator)

        result = sc.parallelize(range(40), 4).mapPartitionsWithIndex(straggle).collect()
        assert [r[2] for r in result] == [sum(range(i * 10, i * 10 + 10)) for i in range(4)]
        assert result[0][1] >= 1  # partition 0 came from the speculative copy
    finally:
        sc.stop()


def test_cached_partitions_are_read_where_they_live(node_cluster: ProcCluster) -> None:
    sc = new_context(node_cluster.master.url, "cache-locality", {"spark.locality.wait": "10s"})
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 2, 30, "two executors")
        computed = sc.accumulator(0)

        def tally(x: int) -> int:
            computed.add(1)
            return x

        cached = sc.parallelize(range(40), 8).map(tally).cache()

        def where(index: int, iterator: Any) -> Any:
            yield index, os.getppid(), sum(iterator)  # a Python worker's parent: its executor

        first = dict((i, (pid, s)) for i, pid, s in cached.mapPartitionsWithIndex(where).collect())
        assert computed.value == 40
        second = dict((i, (pid, s)) for i, pid, s in cached.mapPartitionsWithIndex(where).collect())
        assert computed.value == 40  # nothing recomputed
        assert second == first  # every partition ran on the executor that caches it
        assert len({pid for pid, _ in first.values()}) == 2
    finally:
        sc.stop()
