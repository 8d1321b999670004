"""A barrier job waiting for slots says so each time it checks again.

As Spark, a barrier stage with more tasks than the executors have slots is
checked again `maxConcurrentTasksCheck.maxFailures` times (40, 15 s apart by
default) before the job fails; ten silent minutes looked like a hang.
"""

from __future__ import annotations

import logging

import pytest

from scheduler import SparkConf, SparkContext
from scheduler.core.errors import BarrierJobSlotsNumberCheckFailed


def test_each_slot_check_that_fails_is_warned_with_the_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("barrier-wait")
        .set("spark.ui.enabled", "false")
        .set("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", "2")
        .set("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "50ms")
    )
    with (
        SparkContext(conf=conf) as sc,
        caplog.at_level(logging.WARNING, "scheduler.api.jobs"),
        pytest.raises(BarrierJobSlotsNumberCheckFailed, match=r"\[SPARK-24819\]"),
    ):
        sc.parallelize(range(8), 4).barrier().mapPartitions(lambda it: it).collect()
    warnings = [r.getMessage() for r in caplog.records if r.name == "scheduler.api.jobs"]
    assert warnings == [
        "Barrier stage of this job requires 4 slots, but only 2 are available; "
        f"checking again in 0.05s, up to {left} more time(s)"
        for left in (2, 1)
    ]
