"""A Python worker dying mid-task (SIGKILL, os._exit) is replaced; its task retried or failed."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from scheduler import JobFailedError, SparkConf, SparkContext, TaskContext


def _context(master: str) -> SparkContext:
    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName("worker-crash")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    return SparkContext(conf=conf)


def test_a_worker_killed_mid_task_is_replaced_and_the_task_retried(tmp_path: Path) -> None:
    marker = tmp_path / "died-once"
    sc = _context("local[2,4]")  # up to 4 attempts per task
    try:

        def fragile(x: int) -> int:
            context = TaskContext.get()
            assert context is not None
            if x == 7 and not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return x * 2

        assert sc.parallelize(range(20), 4).map(fragile).sum() == sum(x * 2 for x in range(20))
        assert marker.exists()
        # The workers that remain serve later jobs, the dead one's replacement included.
        pids = set(sc.parallelize(range(8), 8).map(lambda _: os.getpid()).collect())
        assert int(marker.read_text()) not in pids
        assert 1 <= len(pids) <= 2
    finally:
        sc.stop()


def test_a_task_that_always_kills_its_worker_fails_the_job_with_the_reason() -> None:
    sc = _context("local[2,2]")
    try:

        def lethal(x: int) -> Any:
            if x == 3:
                os._exit(13)
            return x

        expected = r"Python worker exited unexpectedly \(crashed\) with exit code 13"
        with pytest.raises(JobFailedError, match=expected):
            sc.parallelize(range(6), 3).map(lethal).collect()
        assert sc.parallelize(range(6), 3).sum() == 15  # the context still works
    finally:
        sc.stop()
