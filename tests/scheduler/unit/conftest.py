"""Fixtures of the scheduler's unit tests: a fake context to build lineages without processes."""

from __future__ import annotations

import itertools
from typing import Any

import pytest


class _Conf:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def contains(self, key: str) -> bool:
        return key in self.values


class FakeContext:
    """Just enough of SparkContext for RDD constructors: ids and settings, no RpcEnv."""

    def __init__(self) -> None:
        self._rdd_ids = itertools.count()
        self._shuffle_ids = itertools.count()
        self._conf = _Conf()
        self._persisted: dict[int, Any] = {}
        self.defaultParallelism = 2
        #: spark.python.profile is off: RDDs made here carry no profiler.
        self.profiler_collector = None

    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    def _python_worker_memory_mb(self) -> int:
        return 512

    def parallelize(self, data: list[Any], n: int) -> Any:
        from scheduler.rdd.kinds import ParallelCollectionRDD, parallelize_slices

        return ParallelCollectionRDD(self, parallelize_slices(data, n))  # type: ignore[arg-type]


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()
