"""Pure helpers: PySpark's parallelize slicing, portable_hash, master URLs, StatCounter merge,
text splits, and the public surface of `scheduler`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import scheduler
from scheduler.backend.master_url import parse_master
from scheduler.rdd.kinds import parallelize_slices
from scheduler.rdd.statcounter import StatCounter
from scheduler.shuffle.partitioner import Partitioner, portable_hash
from scheduler.status.progress import render_stage


@pytest.mark.parametrize(
    ("n", "slices", "expected"),
    [
        (7, 4, [[0], [1, 2], [3, 4], [5, 6]]),
        (10, 4, [[0, 1], [2, 3], [4, 5], [6, 7, 8, 9]]),
        (5, 2, [[0, 1], [2, 3, 4]]),
        (3, 5, [[], [0], [], [1], [2]]),
        (0, 3, [[], [], []]),
    ],
)
def test_parallelize_deals_batches_to_slices_like_pyspark(
    n: int, slices: int, expected: list[list[int]]
) -> None:
    assert parallelize_slices(list(range(n)), slices) == expected


def test_parallelize_of_many_items_uses_batches_of_1024() -> None:
    sizes = [len(s) for s in parallelize_slices(list(range(5000)), 2)]
    assert sizes == [2048, 2952]


def test_portable_hash_of_tuples_and_none_is_stable() -> None:
    assert portable_hash(None) == 0
    assert portable_hash((1, 2)) == portable_hash((1, 2))
    assert portable_hash((1, None)) != portable_hash((None, 1))
    assert Partitioner(3, portable_hash)(4) == 4 % 3
    assert Partitioner(3, portable_hash) == Partitioner(3, portable_hash)
    assert Partitioner(3, portable_hash) != Partitioner(4, portable_hash)


@pytest.mark.parametrize(
    ("url", "kind", "cores", "failures"),
    [
        ("local", "local", 1, None),
        ("local[3]", "local", 3, None),
        ("local[2,4]", "local", 2, 4),
        ("local[*]", "local", os.cpu_count() or 1, None),
        ("spark://h:7077", "standalone", 0, None),
    ],
)
def test_master_urls(url: str, kind: str, cores: int, failures: int | None) -> None:
    parsed = parse_master(url)
    assert parsed[:3] == (kind, cores, failures)


def test_several_masters_and_bad_urls() -> None:
    assert parse_master("spark://a:1,b:2")[3] == ["spark://a:1", "spark://b:2"]
    assert parse_master("spark://[::1]:7077,[fe80::2]:7078")[3] == [
        "spark://[::1]:7077",
        "spark://[fe80::2]:7078",
    ]
    for bad in ("yarn", "local[0]", "spark://nohost", "local[x]", "spark://::1:7077"):
        with pytest.raises(ValueError, match="bad master URL"):
            parse_master(bad)


def test_stat_counters_merge_exactly() -> None:
    left, right = StatCounter([1.0, 2.0, 3.0]), StatCounter([10.0, 20.0])
    merged = left.copy().mergeStats(right)
    whole = StatCounter([1.0, 2.0, 3.0, 10.0, 20.0])
    assert merged.count() == 5 and merged.mean() == pytest.approx(whole.mean())
    assert merged.variance() == pytest.approx(whole.variance())
    assert merged.max() == 20.0 and merged.min() == 1.0


def test_progress_bar_rendering() -> None:
    line = render_stage(3, 12, 2, 40, 50)
    assert line.startswith("[Stage 3:") and line.endswith("(12 + 2) / 40]")
    assert len(line) == 50 and "=" in line and ">" in line


def test_text_splits_assign_each_line_to_exactly_one_split(tmp_path: Path) -> None:
    from scheduler.rdd.fileio import _read_lines

    path = tmp_path / "f.txt"
    lines = [f"line {i} " + "x" * (i % 17) for i in range(500)]
    path.write_text("\n".join(lines) + "\n")
    size = path.stat().st_size
    for pieces in (1, 2, 3, 7):
        step = size // pieces
        starts = [i * step for i in range(pieces)]
        got: list[bytes] = []
        for i, start in enumerate(starts):
            length = (size - start) if i == pieces - 1 else step
            got.extend(_read_lines(str(path), start, length))
        assert [g.decode() for g in got] == lines


def test_all_names_are_exported() -> None:
    for name in scheduler.__all__:
        assert getattr(scheduler, name) is not None
    assert sorted(scheduler.__all__) == sorted(set(scheduler.__all__))
