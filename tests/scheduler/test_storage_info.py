"""getRDDStorageInfo and the storage page count the objects Python workers hold (issue 13).

sparkctl-specific: PySpark keeps no objects in its workers. Through a real
local[2] context (an executor process and two Python workers). The estimate of
a partition's objects is deterministic (`estimate_size` of its list), so the
reported bytes are checked exactly; with a cache budget of about one partition
per worker, evictions must show as fewer bytes in memory while every partition
keeps its serialized copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import _compat_support as support
import pytest

from scheduler.executor.pyworker import estimate_size
from scheduler.rdd.storagelevel import StorageLevel
from scheduler.shuffle.aggregation import dumps_records
from scheduler.status.ui import _views

pytestmark = pytest.mark.timeout(120)

N, SLICES = 40_000, 4


def _partitions() -> list[list[int]]:
    size = N // SLICES
    return [[2 * x for x in range(i * size, (i + 1) * size)] for i in range(SLICES)]


def _objects(part: list[int]) -> int:
    return estimate_size(part, len(dumps_records(part)))


@pytest.fixture
def context(request: pytest.FixtureRequest) -> Iterator[Any]:
    conf = {"spark.ui.enabled": "true", "spark.ui.port": "0"}
    conf.update(getattr(request, "param", {}))
    sc = support.new_context("local[2]", "storage-info", **conf)
    try:
        yield sc
    finally:
        sc.stop()


def test_cached_objects_are_reported_with_their_estimated_size(context: Any) -> None:
    sc = context
    data = sc.parallelize(range(N), SLICES).map(lambda x: 2 * x).cache()
    assert data.count() == N
    parts = _partitions()
    (info,) = sc.getRDDStorageInfo()
    assert (info.id, info.numPartitions, info.numCachedPartitions) == (data.id(), SLICES, SLICES)
    assert info.storageLevel == StorageLevel.MEMORY_ONLY and info.isCached
    assert info.memSize == sum(_objects(p) for p in parts)  # one copy each, in its worker
    assert info.diskSize == sum(len(dumps_records(p)) for p in parts)
    store = sc._runtime.status_store
    (row,) = _views.storage(store)
    assert (row["memoryUsed"], row["diskUsed"]) == (info.memSize, info.diskSize)
    assert 1 <= row["_workers"] <= 2
    (executor,) = _views.executors(store)
    assert executor["memoryUsed"] == info.memSize and executor["rddBlocks"] == SLICES
    data.unpersist()
    assert sc.getRDDStorageInfo() == [] and _views.storage(store) == []


@pytest.mark.parametrize(
    "context", [{"spark.executorEnv.SPARKCTL_WORKER_CACHE_MB": "0.4"}], indirect=True
)
def test_evicted_partitions_leave_memory_but_keep_their_serialized_copy(context: Any) -> None:
    sc = context
    data = sc.parallelize(range(N), SLICES).map(lambda x: 2 * x).cache()
    for _ in range(2):
        assert data.sum() == 2 * sum(range(N))
    sizes = [_objects(p) for p in _partitions()]
    assert 2 * min(sizes) > 0.4 * (1 << 20)  # a worker holds one partition at most
    (info,) = sc.getRDDStorageInfo()
    assert info.numCachedPartitions == SLICES
    assert info.diskSize == sum(len(dumps_records(p)) for p in _partitions())
    # Each of the two workers holds its last partition; the others were evicted. (A list
    # read back from its serialized copy is not over-allocated as a computed one is.)
    assert 0.95 * min(sizes) <= info.memSize <= 2.05 * max(sizes)
    held = sc._storage.worker_memory()
    assert 1 <= len(held) <= 2 and sum(held.values()) == info.memSize
