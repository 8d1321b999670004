"""Tiny tasks' held-back replies reach the driver while a long task runs behind them.

A worker holds the replies of tiny tasks to send them with the next task's; when
that next task runs long (or hangs), the earlier tasks must still be reported
within milliseconds, not when the long one ends.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from scheduler import SparkConf, SparkContext

TASKS = 300
SLEEP_S = 60.0
#: How long after the long task started the tiny ones before it may take to be counted:
#: the worker holds their replies for ~5 ms and the executor batches statuses briefly.
BOUND_S = 1.0
DEADLINE_S = 60.0


def test_tiny_tasks_are_reported_while_the_next_one_runs_long(tmp_path: Path) -> None:
    conf = (
        SparkConf()
        .setMaster("local[1]")  # one worker: the long task runs right after the tiny ones
        .setAppName("held-replies-behind-a-long-task")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    sc = SparkContext(conf=conf)
    marker = tmp_path / "long-task-started"
    outcome: dict[str, Any] = {}
    last = 2 * TASKS - 1

    def long_at_the_end(x: int) -> int:
        if x == last:
            marker.write_text(repr(time.time()))
            time.sleep(SLEEP_S)
        return x

    def run_job() -> None:
        sc.setJobGroup("tiny-then-long", "tiny tasks, then one that runs long", True)
        try:
            outcome["result"] = sc.parallelize(range(2 * TASKS), TASKS).map(long_at_the_end).count()
        except Exception as exc:
            outcome["error"] = exc

    job = threading.Thread(target=run_job, daemon=True)
    try:
        # The executor learns these tasks are tiny and lets the worker hold replies.
        assert sc.parallelize(range(2 * TASKS), TASKS).map(lambda x: x + 1).count() == 2 * TASKS
        job.start()
        deadline = time.monotonic() + DEADLINE_S
        while not marker.exists():
            assert time.monotonic() < deadline, "the long task never started"
            time.sleep(0.01)
        started = float(marker.read_text())
        tracker = sc.statusTracker()
        completed = 0
        while time.time() < started + BOUND_S:
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            completed = max((s.numCompletedTasks for s in stages if s is not None), default=0)
            if completed >= TASKS - 1:
                break
            time.sleep(0.01)
        assert completed == TASKS - 1, (
            f"{BOUND_S} s into the long task, {completed} of the {TASKS - 1} tiny tasks "
            "before it were reported"
        )
        assert job.is_alive() and not outcome  # the long task still runs
    finally:
        sc.cancelJobGroup("tiny-then-long")
        job.join(timeout=DEADLINE_S)
        sc.stop()
    assert not job.is_alive(), "the cancelled job did not return"
    assert "cancel" in str(outcome.get("error", "")).lower()
