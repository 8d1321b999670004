"""Tiny-task queueing never makes a long task wait while a slot idles.

Tasks queue ahead of free slots (on the driver, per executor core; in the
executor, in a busy Python worker's pipe) only once their own stage's tasks
proved tiny. Earlier tiny jobs in the same context must not make a later
stage of long tasks queue one behind another while another worker, or another
executor, has nothing to run. Each task records when and in which Python
worker process it ran; the checks read those records.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import _compat_support as support

#: How long a worker may sit idle before a task that was ready all along starts on
#: another one (dispatch and wake-ups on a loaded 2-core machine take milliseconds).
IDLE_SLACK_S = 0.25
#: A stage of one long task and four short ones: queued round-robin two to a slot,
#: a short one waits behind the long one while the other slot runs out of work.
SKEWED = [1.0, 0.2, 0.2, 0.2, 0.2]
#: Four equal tasks on two slots: two rounds.
EVEN = [0.3, 0.3, 0.3, 0.3]

Record = tuple[int, int, float, float]  # (partition, worker pid, start, end)


def _sleeper(seconds: list[float]) -> Any:
    def run(index: int, _: Iterator[Any]) -> Iterator[Record]:
        start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process here
        time.sleep(seconds[index])
        yield (index, os.getpid(), start, time.monotonic())

    return run


def _warm_up_with_tiny_jobs(sc: Any) -> None:
    """W1- and W2-like jobs: the executors' run-time averages become tiny."""
    for _ in range(20):
        assert sc.parallelize(range(10), 2).count() == 10
    assert sc.parallelize(range(400), 400).count() == 400


def _run(sc: Any, seconds: list[float]) -> list[Record]:
    rdd = sc.parallelize(range(len(seconds)), len(seconds))
    records: list[Record] = rdd.mapPartitionsWithIndex(_sleeper(seconds)).collect()
    assert sorted(r[0] for r in records) == list(range(len(seconds)))
    return records


def _waits_while_idle(records: list[Record]) -> list[str]:
    """Tasks that started while another worker had been idle for over IDLE_SLACK_S.

    All of a stage's tasks are ready when it starts, so such a task waited in some
    queue while a worker that could have run it had nothing to do.
    """
    found = []
    for index, pid, start, _ in records:
        for other in {r[1] for r in records} - {pid}:
            before = [r for r in records if r[1] == other and r[2] < start]
            if not before:
                continue  # that worker had not started yet: nothing says it was free
            last_end = max(r[3] for r in before)
            if start - last_end > IDLE_SLACK_S:
                found.append(
                    f"partition {index} started {start - last_end:.2f} s after worker "
                    f"{other} finished its last task and idled"
                )
    return found


def test_a_long_stage_after_tiny_jobs_never_waits_behind_another_task(master: str) -> None:
    sc = support.new_context(master, "queue-long-after-tiny")
    try:
        _warm_up_with_tiny_jobs(sc)
        skewed = _run(sc, SKEWED)
        even = _run(sc, EVEN)
    finally:
        sc.stop()
    assert len({r[1] for r in skewed}) >= 2, skewed  # two slots, both used
    assert not _waits_while_idle(skewed), (_waits_while_idle(skewed), skewed)
    # Two rounds of 0.3 s on two slots: ~0.6 s; a third round (a task queued behind
    # another while a slot idled) would make it 0.9.
    span = max(r[3] for r in even) - min(r[2] for r in even)
    assert span < 0.85, even
    assert not _waits_while_idle(even), (_waits_while_idle(even), even)
