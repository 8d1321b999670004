"""An executor starts Python workers on demand beyond the machine's CPUs.

local[64] (or --executor-cores 64 on a small machine) must not spawn 64
processes that no task needs: as many workers as the machine has CPUs start
with the executor, and more only while tasks wait for one.
"""

from __future__ import annotations

import os
import time

import psutil
import pytest

from scheduler import SparkConf, SparkContext

pytestmark = pytest.mark.timeout(120)


def _workers(sc: SparkContext) -> list[psutil.Process]:
    executors = [h.pid for h in sc._scheduler.executors.values()]
    found = []
    for pid in executors:
        for child in psutil.Process(pid).children():
            if "scheduler.executor.pyworker" in " ".join(child.cmdline()):
                found.append(child)
    return found


def test_workers_beyond_the_cpus_start_only_when_tasks_need_them() -> None:
    conf = SparkConf().set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
    sc = SparkContext("local[64]", "lazy-workers", conf=conf)
    try:
        cpus = os.cpu_count() or 1
        assert sc.parallelize(range(10), 1).count() == 10
        assert len(_workers(sc)) == min(cpus, 64)
        # Three tasks that overlap in time need three workers at once.
        slow = sc.parallelize(range(3), 3).map(lambda x: time.sleep(0.5) or x)
        assert sorted(slow.collect()) == [0, 1, 2]
        assert len(_workers(sc)) == max(min(cpus, 64), 3)
        assert sc.defaultParallelism == 64
    finally:
        sc.stop()
