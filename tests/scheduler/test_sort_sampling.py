"""sortByKey's one-pass count and sample equal PySpark's count() then sample() jobs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler import SparkConf, SparkContext
from scheduler._pairs import _count_and_sample_keys


@pytest.fixture(scope="module")
def sc() -> Iterator[SparkContext]:
    conf = SparkConf().set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
    context = SparkContext("local[2]", "sort-sampling", conf=conf)
    yield context
    context.stop()


@pytest.mark.parametrize(
    ("size", "slices", "budget"),
    [(0, 3, 60.0), (25, 3, 60.0), (5000, 4, 80.0), (200_000, 8, 160.0)],
)
def test_one_pass_sample_is_the_two_job_sample(
    sc: SparkContext, size: int, slices: int, budget: float
) -> None:
    rdd = sc.parallelize(range(size), slices).map(lambda i: ((i * 7919) % 1009, i))
    count, keys = _count_and_sample_keys(rdd, budget)
    assert count == rdd.count() == size
    fraction = min(budget / max(size, 1), 1.0)
    assert keys == rdd.sample(False, fraction, 1).map(lambda kv: kv[0]).collect()
    if size > budget:
        assert 0 < len(keys) < 3 * budget
