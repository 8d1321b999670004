"""PySpark compatibility: ``RDD.cleanShuffleDependencies``.

Observed on PySpark 4.3 (local[2]): the call drops the shuffles an RDD reads and
those of its ancestors up to a persisted RDD; their files leave spark.local.dir;
the next job that needs them runs their map side again (once: the new outputs
are kept), and a persisted ancestor's own shuffle is kept until it is unpersisted.
An RDD without a shuffle returns None too.
"""

from __future__ import annotations

from operator import add
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest


def _shuffle_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("shuffle_*") if p.is_file())


def _counted(sc: Any) -> tuple[Any, Any]:
    """An RDD with two shuffles whose map side counts its calls in an accumulator."""
    calls = sc.accumulator(0)

    def tag(x: int) -> tuple[int, int]:
        calls.add(1)
        return (x % 3, x)

    sums = sc.parallelize(range(10), 2).map(tag).reduceByKey(add)
    grouped = sums.map(lambda kv: (kv[0] % 2, kv[1])).groupByKey().mapValues(sorted)
    return grouped, calls


def test_cleaned_shuffles_run_again_once(master: str) -> None:
    sc = support.new_context(master, "compat-clean-shuffles")
    try:
        grouped, calls = _counted(sc)
        expected = [(0, [15, 18]), (1, [12])]
        assert sorted(grouped.collect()) == expected and calls.value == 10
        assert sorted(grouped.collect()) == expected and calls.value == 10  # reused
        assert grouped.cleanShuffleDependencies() is None
        assert sorted(grouped.collect()) == expected and calls.value == 20  # recomputed
        assert sorted(grouped.collect()) == expected and calls.value == 20  # and kept
        grouped.cleanShuffleDependencies(blocking=True)
        assert sorted(grouped.collect()) == expected and calls.value == 30
        assert sc.parallelize([1, 2]).cleanShuffleDependencies() is None
    finally:
        sc.stop()


def test_a_persisted_ancestor_keeps_its_shuffle(master: str) -> None:
    from scheduler import StorageLevel

    sc = support.new_context(master, "compat-clean-shuffles-persisted")
    try:
        calls = sc.accumulator(0)

        def tag(x: int) -> tuple[int, int]:
            calls.add(1)
            return (x % 3, x)

        cached = sc.parallelize(range(10), 2).map(tag).reduceByKey(add)
        cached.persist(StorageLevel.MEMORY_ONLY)
        top = cached.map(lambda kv: (kv[0] % 2, kv[1])).reduceByKey(add)
        expected = [(0, 33), (1, 12)]
        assert sorted(top.collect()) == expected and calls.value == 10
        top.cleanShuffleDependencies(True)
        assert sorted(top.collect()) == expected and calls.value == 10
        cached.unpersist(blocking=True)
        assert sorted(top.collect()) == expected and calls.value == 10
        top.cleanShuffleDependencies(True)  # the walk now goes past `cached`
        assert sorted(top.collect()) == expected and calls.value == 20
    finally:
        sc.stop()


@pytest.mark.parametrize("master", ["local[2]"], indirect=True)
def test_cleaned_shuffle_files_leave_the_local_dir(master: str, tmp_path: Path) -> None:
    sc = support.new_context(
        master, "compat-clean-shuffle-files", **{"spark.local.dir": str(tmp_path)}
    )
    try:
        grouped, _ = _counted(sc)
        grouped.collect()
        assert _shuffle_files(tmp_path), "the shuffles wrote no files under spark.local.dir"
        grouped.cleanShuffleDependencies(blocking=True)
        support.wait_until(
            lambda: not _shuffle_files(tmp_path), 10.0, "the cleaned shuffles' files to go"
        )
        grouped.collect()
        assert _shuffle_files(tmp_path), "the recomputed shuffles wrote no files"
    finally:
        sc.stop()
