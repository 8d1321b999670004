"""PySpark compatibility: results that once differed from PySpark's (issue 14).

A local checkpoint reports itself checkpointed once collect() computed it; a
StopIteration in ``reduceByKeyLocally``'s function fails as PySpark says;
``toLocalIterator(prefetchPartitions=True)`` computes the next partition while
the current one is read (namedtuples: test_compat_namedtuple.py). Every
expected value was observed on PySpark 4.3 first.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

#: How long a prefetched partition may take to start while the current one is read.
PREFETCH_TIMEOUT_S = 20.0


def test_local_checkpoint_is_checkpointed_once_computed(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    assert not rdd.isCheckpointed() and not rdd.isLocallyCheckpointed()
    rdd.localCheckpoint()
    assert rdd.isLocallyCheckpointed()
    assert not rdd.isCheckpointed()
    assert rdd.collect() == list(range(0, 20, 2))
    assert rdd.isCheckpointed() and rdd.isLocallyCheckpointed()
    assert rdd.getCheckpointFile() is None
    child = rdd.map(lambda x: x + 1)
    assert not child.isCheckpointed()
    assert child.sum() == 100
    assert not child.isCheckpointed()


def test_only_collect_marks_a_local_checkpoint(sc: Any) -> None:
    """PySpark marks it in the one action that runs a job on the RDD itself: collect."""
    parent = sc.parallelize(range(6), 3).map(lambda x: (x % 2, x))
    parent.localCheckpoint()
    assert parent.count() == 6 and parent.take(2) == [(0, 0), (1, 1)]
    assert parent.reduceByKey(lambda a, b: a + b).collectAsMap() == {0: 6, 1: 9}
    assert parent.map(lambda kv: kv[1]).sum() == 15
    assert not parent.isCheckpointed()
    assert parent.collectAsMap() == {0: 4, 1: 5}
    assert parent.isCheckpointed()


def _stop_iteration(a: int, b: int) -> int:
    raise StopIteration()


def test_stop_iteration_in_reduce_by_key_locally_fails_with_pysparks_message(sc: Any) -> None:
    pairs = sc.parallelize([(1, 1), (1, 2), (2, 3)], 1)
    with pytest.raises(Exception, match="Caught StopIteration thrown from user's code"):
        pairs.reduceByKeyLocally(_stop_iteration)
    # Only merged on the driver: each partition holds one value per key.
    spread = sc.parallelize([(1, 1), (1, 2)], 2)
    with pytest.raises(RuntimeError, match="Caught StopIteration thrown from user's code"):
        spread.reduceByKeyLocally(_stop_iteration)


def _mark_started(marks: str) -> Any:
    def compute(index: int, iterator: Any) -> Any:
        Path(marks, f"started-{index}").touch()
        return iterator

    return compute


def test_to_local_iterator_prefetches_the_next_partition(sc: Any, tmp_path: Path) -> None:
    rdd = sc.parallelize(range(8), 4).mapPartitionsWithIndex(_mark_started(str(tmp_path)))
    items = rdd.toLocalIterator(prefetchPartitions=True)
    assert next(items) == 0
    support.wait_until(
        lambda: (tmp_path / "started-1").exists(), PREFETCH_TIMEOUT_S, "partition 1's job"
    )
    assert not (tmp_path / "started-2").exists()
    assert list(items) == list(range(1, 8))


def test_to_local_iterator_without_prefetch_computes_on_demand(sc: Any, tmp_path: Path) -> None:
    rdd = sc.parallelize(range(8), 4).mapPartitionsWithIndex(_mark_started(str(tmp_path)))
    items = rdd.toLocalIterator()
    assert next(items) == 0
    time.sleep(1.0)
    assert not (tmp_path / "started-1").exists()
    assert list(items) == list(range(1, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"started-{i}" for i in range(4)]
