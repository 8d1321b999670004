"""Tiny tasks travel several to a message and their replies may be held back (issue 13).

An executor then does not know which of a worker's first few tasks is running:
a worker that dies names no task at first (its tasks run again, replying one by
one, so a second death names the culprit), and killing a task that may be
running restarts the worker even when it is not the head of the worker's queue.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from scheduler import JobFailedError, SparkConf, SparkContext

DEADLINE_S = 60.0


def _context(master: str) -> SparkContext:
    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName("tiny-task-replies")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    return SparkContext(conf=conf)


def _warm(sc: SparkContext) -> None:
    """Many tiny tasks: the executor learns they are tiny and starts batching them."""
    assert sc.parallelize(range(600), 300).map(lambda x: x + 1).count() == 600


def test_a_tiny_task_that_kills_its_worker_is_the_one_that_fails() -> None:
    sc = _context("local[2,3]")
    try:
        _warm(sc)

        def lethal(x: int) -> Any:
            if x == 301:
                os._exit(13)
            return x

        started = time.monotonic()
        with pytest.raises(JobFailedError) as failure:
            sc.parallelize(range(600), 300).map(lethal).collect()
        assert time.monotonic() - started < DEADLINE_S
        message = str(failure.value)
        assert "Python worker exited unexpectedly (crashed) with exit code 13" in message
        # Partition 150 holds 300 and 301: only that task used up its attempts.
        assert "Task 150 " in message or "task 150 " in message.lower(), message
        _warm(sc)  # the context still works
    finally:
        sc.stop()


def test_cancelling_a_long_task_among_tiny_ones_returns_promptly() -> None:
    sc = _context("local[2]")
    outcome: dict[str, Any] = {}

    def slow_at_the_end(x: int) -> int:
        if x == 590:
            time.sleep(300)
        return x

    def run_job() -> None:
        sc.setJobGroup("tiny-then-long", "tiny tasks, then one that hangs", True)
        try:
            outcome["result"] = sc.parallelize(range(600), 300).map(slow_at_the_end).count()
        except Exception as exc:
            outcome["error"] = exc

    try:
        _warm(sc)
        job = threading.Thread(target=run_job, daemon=True)
        job.start()
        tracker = sc.statusTracker()
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            if any(s is not None and s.numCompletedTasks >= 290 for s in stages):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the tiny tasks did not finish")
        sc.cancelJobGroup("tiny-then-long")
        job.join(timeout=DEADLINE_S)
        assert not job.is_alive(), "the cancelled job did not return"
        assert "cancel" in str(outcome.get("error", "")).lower()
        _warm(sc)  # no worker is left stuck in the sleeping task
    finally:
        sc.stop()
