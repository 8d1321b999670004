"""Cached partitions are read in the Python worker process that holds them (issue 13).

sparkctl-specific (PySpark's workers keep no objects between tasks). An end-to-end
guard: the caching pass is skewed (partition 0 is slow) and the later passes must
run each partition in the process that cached it. On a quiet machine arrival
order alone often gives the same placement; the routing decisions themselves are
pinned by unit/test_process_locality.py. The wait for a busy holder is bounded,
so a few tasks may move under load.
"""

from __future__ import annotations

import os
import time
from typing import Any


def _where(index: int, iterator: Any) -> list[tuple[int, int, float]]:
    return [(index, os.getpid(), sum(iterator))]


def _slow_first(index: int, iterator: Any) -> Any:
    if index == 0:
        time.sleep(0.5)
    return (float(x) for x in iterator)


def test_later_passes_run_where_the_partition_is_held(sc: Any) -> None:
    data = sc.parallelize(range(80_000), 8).mapPartitionsWithIndex(_slow_first).cache()
    try:
        expected = float(sum(range(80_000)))
        holder = {i: pid for i, pid, _ in data.mapPartitionsWithIndex(_where).collect()}
        stayed = moved = 0
        for _ in range(3):
            rows = data.mapPartitionsWithIndex(_where).collect()
            assert sum(total for _, _, total in rows) == expected
            for index, pid, _ in rows:
                stayed += holder[index] == pid
                moved += holder[index] != pid
        assert stayed >= 0.75 * (stayed + moved), (stayed, moved, holder)
    finally:
        data.unpersist()


def test_a_partition_unpersisted_then_cached_again_is_recomputed(sc: Any) -> None:
    calls = sc.accumulator(0)

    def count(x: int) -> int:
        calls.add(1)
        return x

    data = sc.parallelize(range(100), 4).map(count).cache()
    assert data.sum() == 4950
    assert data.sum() == 4950
    assert calls.value == 100  # the second pass read the cache
    data.unpersist()
    assert data.sum() == 4950
    assert calls.value == 200
