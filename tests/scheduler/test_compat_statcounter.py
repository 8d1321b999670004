"""PySpark compatibility: StatCounter on its own (no SparkContext needed).

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_statcounter.py; expected values were checked on
PySpark 4.x first. ``RDD.stats()`` itself is covered in test_compat_rdd.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest


def _counter(values: Any = None) -> Any:
    from scheduler import StatCounter

    return StatCounter(values)


def test_basic_statistics() -> None:
    stats = _counter([1.0, 2.0, 3.0, 4.0])
    assert stats.count() == 4
    assert stats.max() == 4.0
    assert stats.min() == 1.0
    assert stats.mean() == 2.5
    assert stats.sum() == 10.0
    assert stats.stdev() == pytest.approx(1.118033988749895)
    assert stats.sampleStdev() == pytest.approx(1.2909944487358056)
    assert stats.variance() == pytest.approx(1.25)
    assert stats.sampleVariance() == pytest.approx(1.6666666666666667)


def test_as_dict_uses_sample_statistics_unless_told_otherwise() -> None:
    stats = _counter([1.0, 2.0, 3.0, 4.0])
    as_dict = stats.asDict()
    assert as_dict["count"] == 4 and as_dict["sum"] == 10.0
    assert as_dict["mean"] == 2.5 and as_dict["min"] == 1.0 and as_dict["max"] == 4.0
    assert as_dict["stdev"] == pytest.approx(1.2909944487358056)
    assert as_dict["variance"] == pytest.approx(1.6666666666666667)
    population = stats.asDict(sample=True)
    assert population["stdev"] == pytest.approx(1.118033988749895)
    assert population["variance"] == pytest.approx(1.25)


def test_merge_a_value() -> None:
    stats = _counter([1.0, 2.0, 3.0, 4.0])
    stats.merge(5.0)
    assert stats.count() == 5
    assert stats.max() == 5.0 and stats.mean() == 3.0
    assert stats.stdev() == pytest.approx(1.414213562373095)
    assert stats.sampleStdev() == pytest.approx(1.5811388300841898)
    assert stats.sum() == 15.0
    assert stats.variance() == pytest.approx(2.0)
    assert stats.sampleVariance() == pytest.approx(2.5)


def test_merge_stats() -> None:
    merged = _counter([1.0, 2.0, 3.0, 4.0]).mergeStats(_counter([1.0, 2.0, 3.0, 4.0]))
    assert merged.count() == 8 and merged.sum() == 20.0
    assert merged.max() == 4.0 and merged.min() == 1.0 and merged.mean() == 2.5
    assert merged.stdev() == pytest.approx(1.118033988749895)
    assert merged.sampleStdev() == pytest.approx(1.1952286093343936)
    assert merged.variance() == pytest.approx(1.25)
    assert merged.sampleVariance() == pytest.approx(1.4285714285714286)
    for small_first in (True, False):
        small, large = _counter([1.0, 2.0]), _counter(range(1, 301))
        both = small.mergeStats(large) if small_first else large.mergeStats(small)
        assert both.count() == 302 and both.max() == 300.0 and both.min() == 1.0
        assert both.mean() == pytest.approx(149.51324503311)
        assert both.variance() == pytest.approx(7596.302804701549)
        assert both.sampleVariance() == pytest.approx(7621.539691095905)


def test_merge_stats_with_itself() -> None:
    stats = _counter([1.0, 2.0, 3.0, 4.0])
    stats.mergeStats(stats)
    assert stats.count() == 8
    assert stats.mean() == 2.5
    assert stats.sampleVariance() == pytest.approx(1.4285714285714286)


@pytest.mark.parametrize("empty", [[], None])
def test_empty_counter(empty: Any) -> None:
    stats = _counter(empty)
    assert stats.count() == 0
    assert math.isnan(stats.variance())
    assert math.isnan(stats.sampleVariance())
    assert math.isinf(stats.max()) and stats.max() < 0
    assert math.isinf(stats.min()) and stats.min() > 0
    assert stats.mean() == 0.0


def test_copy_is_independent() -> None:
    stats = _counter([1.0, 2.0])
    copied = stats.copy()
    copied.merge(10.0)
    assert stats.count() == 2 and copied.count() == 3
