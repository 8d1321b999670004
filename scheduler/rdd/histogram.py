"""RDD.histogram: bucket boundaries and per-bucket counts (PySpark semantics). No I/O."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["histogram"]


def _comparable(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def histogram(rdd: RDD, buckets: Any) -> tuple[Any, list[int]]:
    """Counts of `rdd`'s items per bucket.

    Args:
        rdd: numbers (or other comparable items with explicit buckets).
        buckets: a count of evenly spaced buckets between min and max, or sorted boundaries.

    Raises:
        ValueError: bad buckets, or an empty RDD with a bucket count.
        TypeError: buckets of the wrong type, or non-numbers with a bucket count.
    """
    even = False
    inc: Any = None
    if isinstance(buckets, int):
        if buckets < 1:
            raise ValueError("number of buckets must be >= 1")
        filtered = rdd.filter(_comparable)

        def minmax(a: tuple[Any, Any], b: tuple[Any, Any]) -> tuple[Any, Any]:
            return min(a[0], b[0]), max(a[1], b[1])

        # An empty RDD: reduce's own ValueError ("Can not reduce() empty RDD"), as PySpark 4.
        minv, maxv = filtered.map(lambda x: (x, x)).reduce(minmax)
        if minv == maxv or buckets == 1:
            return [minv, maxv], [filtered.count()]
        try:
            inc = (maxv - minv) / buckets
        except TypeError:
            raise TypeError("Can not generate buckets with non-number in RDD") from None
        if math.isinf(inc):
            raise ValueError("Can not generate buckets with infinite value")
        inc = int(inc)
        if inc * buckets != maxv - minv:
            inc = (maxv - minv) * 1.0 / buckets
        bounds: list[Any] | tuple[Any, ...] = [i * inc + minv for i in range(buckets)]
        bounds = [*bounds, maxv]
        even = True
    elif isinstance(buckets, (list, tuple)):
        if len(buckets) < 2:
            raise ValueError("buckets should have more than one value")
        if any(not _comparable(b) for b in buckets):
            raise ValueError("can not have None or NaN in buckets")
        if sorted(buckets) != list(buckets):
            raise ValueError("buckets should be sorted")
        if len(set(buckets)) != len(buckets):
            raise ValueError("buckets should not contain duplicated values")
        bounds = buckets
        minv, maxv = bounds[0], bounds[-1]
        try:
            steps = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
        except TypeError:
            pass
        else:
            if max(steps) - min(steps) < 1e-10:
                even = True
                inc = (maxv - minv) / (len(bounds) - 1)
    else:
        raise TypeError("buckets should be a list or tuple or number(int or long)")

    def count(iterator: Iterator[Any]) -> Iterator[list[int]]:
        counters = [0] * len(bounds)
        for i in iterator:
            if not _comparable(i) or i > maxv or i < minv:
                continue
            t = int((i - minv) / inc) if even else bisect.bisect_right(bounds, i) - 1
            counters[t] += 1
        last = counters.pop()
        counters[-1] += last
        yield counters

    def merge(a: list[int], b: list[int]) -> list[int]:
        return [i + j for i, j in zip(a, b, strict=True)]

    return bounds, rdd.mapPartitions(count).reduce(merge)
