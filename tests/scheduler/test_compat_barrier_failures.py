"""PySpark compatibility: barrier execution's failures, each with its own SparkContext.

One failed task reruns the whole barrier map stage; a stage needing more
slots than the cluster has fails with Spark's message; a sync that not every
task joins times out. Observed on PySpark 4.3 first (local[2]); the cluster
variant has two one-core workers, so two slots as well.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

from scheduler import BarrierTaskContext

#: How long the late task of the timeout test sleeps before it calls barrier().
LATE_TASK_SLEEP_S = 20.0

#: Settings that make the slot check fail at once instead of after 40 checks 15 s apart.
FAST_SLOT_CHECK = {
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "1",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "100ms",
}


def test_a_failing_task_reruns_the_whole_barrier_map_stage(master: str, tmp_path: Path) -> None:
    sc = support.new_context(master, "compat-barrier-retry")
    runs = str(tmp_path)
    try:

        def flaky(index: int, iterator: Any) -> Any:
            ctx = BarrierTaskContext.get()
            Path(runs, f"run-{index}-{time.monotonic_ns()}").touch()
            if index == 1 and not Path(runs, "failed").exists():
                # Fail only once task 0 has started (it then waits in barrier()), so that
                # its first attempt surely ran and must be killed and rerun with this one.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not any(
                    n.startswith("run-0-") for n in os.listdir(runs)
                ):
                    time.sleep(0.01)
                Path(runs, "failed").touch()
                raise ValueError("first attempt fails")
            ctx.barrier()
            return [(x % 2, x) for x in iterator]

        rdd = sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(flaky)
        assert sorted(rdd.reduceByKey(lambda a, b: a + b).collect()) == [(0, 2), (1, 4)]
        names = os.listdir(runs)
        # Both tasks ran twice: the one that was waiting in barrier() was killed and rerun.
        assert sum(n.startswith("run-0-") for n in names) == 2
        assert sum(n.startswith("run-1-") for n in names) == 2
    finally:
        sc.stop()


def test_a_barrier_stage_needing_more_slots_than_the_cluster_has_fails(master: str) -> None:
    sc = support.new_context(master, "compat-barrier-slots", **FAST_SLOT_CHECK)
    try:
        with pytest.raises(Exception) as failure:
            sc.parallelize(range(6), 3).barrier().mapPartitions(lambda it: it).collect()
        assert (
            "[SPARK-24819]: Barrier execution mode does not allow run a barrier stage that "
            "requires more slots than the total number of slots in the cluster currently."
        ) in str(failure.value)
        # The same job on as many partitions as slots runs.
        assert sc.parallelize(range(6), 2).barrier().mapPartitions(lambda it: it).sum() == 15
    finally:
        sc.stop()


def test_a_barrier_sync_not_every_task_joins_times_out(master: str) -> None:
    sc = support.new_context(
        master,
        "compat-barrier-timeout",
        **{"spark.barrier.sync.timeout": "1s"},
    )
    try:

        def late(index: int, iterator: Any) -> Any:
            ctx = BarrierTaskContext.get()
            if index == 1:
                time.sleep(LATE_TASK_SLEEP_S)
            ctx.barrier()
            return list(iterator)

        started = time.monotonic()
        with pytest.raises(Exception) as failure:
            sc.parallelize(range(4), 2).barrier().mapPartitionsWithIndex(late).collect()
        # The waiting task failed after the timeout; the late one was killed, not awaited.
        assert time.monotonic() - started < LATE_TASK_SLEEP_S - 5.0
        text = str(failure.value)
        assert "Could not recover from a failed barrier ResultStage" in text
        if support.IMPL == "sparkctl":
            # PySpark's task sees only an EOFError (Spark logs the reason on the driver).
            assert "didn't get all barrier sync requests for barrier epoch 0" in text
            assert "within 1 second(s)" in text
    finally:
        sc.stop()
