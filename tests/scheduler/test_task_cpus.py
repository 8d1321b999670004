"""spark.task.cpus: a task takes that many of its executor's cores (Spark's semantics)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from scheduler import SparkConf, SparkContext, TaskContext


def _context(master: str, task_cpus: str) -> SparkContext:
    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName("task-cpus")
        .set("spark.task.cpus", task_cpus)
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    return SparkContext(conf=conf)


def test_an_executor_runs_cores_divided_by_task_cpus_tasks_at_once() -> None:
    sc = _context("local[4]", "2")
    try:

        def probe(_: Any) -> tuple[int, int, float, float]:
            context = TaskContext.get()
            assert context is not None
            start = time.monotonic()
            time.sleep(0.3)
            return os.getpid(), context.cpus(), start, time.monotonic()

        results = sc.parallelize(range(6), 6).map(probe).collect()
        assert {cpus for _, cpus, _, _ in results} == {2}
        assert len({pid for pid, _, _, _ in results}) == 2  # 4 cores / 2 per task
        events = sorted([(s, 1) for _, _, s, _ in results] + [(e, -1) for _, _, _, e in results])
        running = peak = 0
        for _, delta in events:
            running += delta
            peak = max(peak, running)
        assert peak == 2
    finally:
        sc.stop()


@pytest.mark.parametrize(
    ("master", "task_cpus", "message"),
    [
        ("local[1]", "2", r"local\[1\] = 1\) must be at least spark.task.cpus \(2\)"),
        ("local[2]", "0", r"^spark\.task\.cpus: expected an integer \(1\.\.2147483647\), not '0'$"),
        ("local[2]", "two", r"^spark\.task\.cpus: expected an integer .*, not 'two'$"),
    ],
)
def test_impossible_task_cpus_fail_at_start_naming_the_key(
    master: str, task_cpus: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _context(master, task_cpus)
    assert SparkContext._active_spark_context is None
