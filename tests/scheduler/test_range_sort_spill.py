"""sortByKey's sorted runs spill to disk past spark.python.worker.memory and stay exact.

A context of its own (a tiny worker memory budget), so not in test_range_sort.py's.
"""

from __future__ import annotations

import pytest

from scheduler import SparkConf, SparkContext

pytestmark = pytest.mark.timeout(120)

CONF = (
    SparkConf()
    .set("spark.ui.enabled", "false")
    .set("spark.ui.showConsoleProgress", "false")
    .set("spark.python.worker.memory", "1m")
)


def test_runs_larger_than_the_memory_budget_spill_and_sort_exactly() -> None:
    sc = SparkContext("local[2]", "range-sort-spill", conf=CONF)
    try:
        n = 60_000
        data = [((i * 7919) % 30011, i) for i in range(n)]
        got = sc.parallelize(data, 3).sortByKey(False, 4).collect()
        assert got == sorted(data, key=lambda kv: kv[0], reverse=True)
        assert sc._scheduler.metrics["diskBytesSpilled"] > 0
    finally:
        sc.stop()
