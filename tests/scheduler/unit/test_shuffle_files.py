"""Shuffle files written as flat chunks and read as pairs or columns (issue 13).

A map task's buckets are flat lists (k0, v0, k1, v1, ...); readers get the
pairs back in order, or each chunk's keys and values as two lists. Covers the
spilling writer, custom partitioners, PySpark's record rules (a list or a
2-character string is a pair, a triple fails), and the hash join fed columns.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from scheduler.shuffle import files
from scheduler.shuffle.files import ShufflePairs, read_shuffle_block, write_shuffle_output
from scheduler.shuffle.hashjoin import hash_join
from scheduler.shuffle.mapoutput import MapOutput
from scheduler.shuffle.partitioner import Partitioner, portable_hash


def _write(tmp_path: Path, name: str, items: Any, partitions: int, **kw: Any) -> MapOutput:
    path = str(tmp_path / name)
    partitioner = kw.pop("partitioner", Partitioner(partitions, portable_hash))
    write_shuffle_output(items, partitioner, partitions, path, kw.pop("memory_mb", 4096.0))
    return MapOutput("0", "127.0.0.1", path, "")


def _expected(maps: list[list[Any]], partitions: int, reduce_id: int) -> list[Any]:
    return [p for pairs in maps for p in pairs if portable_hash(p[0]) % partitions == reduce_id]


@pytest.mark.parametrize("partitions", [5, 700])  # buckets pickled early / a wide shuffle's
def test_pairs_come_back_in_map_order_per_reduce_partition(tmp_path: Path, partitions: int) -> None:
    maps = [
        [(i % 997, f"v{i}") for i in range(m * 20_000, (m + 1) * 20_000)] + [(None, m), ((1, 2), m)]
        for m in range(3)
    ]
    outs = [_write(tmp_path, f"m{m}", iter(pairs), partitions) for m, pairs in enumerate(maps)]
    expected_of: dict[int, list[Any]] = {r: [] for r in range(partitions)}
    for pair in (p for pairs in maps for p in pairs):
        expected_of[portable_hash(pair[0]) % partitions].append(pair)
    for r in range(partitions):
        block = read_shuffle_block(0, r, list(outs))
        assert isinstance(block, ShufflePairs)
        assert list(block) == expected_of[r]
    # Only map tasks 1..2 (a join's right side).
    expected = _expected(maps[1:], partitions, 2)
    assert list(read_shuffle_block(0, 2, list(outs), maps=(1, 3))) == expected


def test_columns_are_each_chunks_keys_and_values(tmp_path: Path) -> None:
    pairs = [(i, -i) for i in range(3 * files._CHUNK + 5)]
    out = _write(tmp_path, "m", pairs, 1)
    chunks = list(read_shuffle_block(0, 0, [out]).columns())
    assert len(chunks) > 1 and all(len(k) == len(v) <= files._BATCH for k, v in chunks)
    assert [k for ks, _ in chunks for k in ks] == [k for k, _ in pairs]
    assert [v for _, vs in chunks for v in vs] == [v for _, v in pairs]
    # Some pairs read first: the columns are those of the rest.
    block = read_shuffle_block(0, 0, [out])
    assert next(block) == (0, 0) and next(iter(block)) == (1, -1)
    rest = [k for ks, _ in block.columns() for k in ks]
    assert rest == list(range(2, len(pairs)))


def test_pyspark_record_rules(tmp_path: Path) -> None:
    out = _write(tmp_path, "m", [[1, "a"], "xy", (2, "b")], 1)
    assert list(read_shuffle_block(0, 0, [out])) == [(1, "a"), ("x", "y"), (2, "b")]
    with pytest.raises(ValueError, match="too many values to unpack"):
        _write(tmp_path, "bad", [(1, 2), (1, 2, 3)], 1)


def test_spilled_buckets_read_as_the_in_memory_ones(tmp_path: Path) -> None:
    pairs = [(i % 13, i) for i in range(50_000)]
    kept = _write(tmp_path, "kept", iter(pairs), 4)
    before = files.SPILL_STATS["spills"]
    spilled = _write(tmp_path, "spilled", iter(pairs), 4, memory_mb=0.0)
    assert files.SPILL_STATS["spills"] > before
    assert not os.path.exists(spilled.path + ".spill")
    for r in range(4):
        assert list(read_shuffle_block(0, r, [spilled])) == list(read_shuffle_block(0, r, [kept]))


def test_a_custom_partitioner_places_each_key(tmp_path: Path) -> None:
    out = _write(tmp_path, "m", [(k, k) for k in range(10)], 3, partitioner=lambda k: k // 4)
    assert [[k for k, _ in read_shuffle_block(0, r, [out])] for r in range(3)] == [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
    ]


def test_hash_join_of_shuffled_columns_keeps_pysparks_order(tmp_path: Path) -> None:
    left = [(k % 50, f"l{k}") for k in range(200)]  # repeated keys on the left
    right = [(k, f"r{k}") for k in range(25, 75)] + [(30, "again")]
    outs = [_write(tmp_path, "l", left, 2), _write(tmp_path, "r", right, 2)]
    for r in range(2):
        lpairs, rpairs = _expected([left], 2, r), _expected([right], 2, r)
        joined = list(
            hash_join(
                4096.0,
                True,
                True,
                read_shuffle_block(0, r, list(outs), maps=(0, 1)),
                read_shuffle_block(0, r, list(outs), maps=(1, 2)),
            )
        )
        assert joined == list(hash_join(4096.0, True, True, iter(lpairs), iter(rpairs)))
        assert len(joined) == sum(max(1, sum(k == j for j, _ in rpairs)) for k, _ in lpairs) + len(
            {k for k, _ in rpairs} - {k for k, _ in lpairs}
        )


@pytest.mark.parametrize("pad", [(False, False), (True, True)])
def test_a_key_join_where_every_left_key_matches(tmp_path: Path, pad: tuple[bool, bool]) -> None:
    left = [(k, -k) for k in range(0, 3000, 3)]
    right = [(k, 2 * k) for k in reversed(range(3000))]  # every left key, and more
    outs = [_write(tmp_path, "l", left, 1), _write(tmp_path, "r", right, 1)]
    joined = list(
        hash_join(
            4096.0,
            *pad,
            read_shuffle_block(0, 0, list(outs), maps=(0, 1)),
            read_shuffle_block(0, 0, list(outs), maps=(1, 2)),
        )
    )
    inner = [(k, (-k, 2 * k)) for k in range(0, 3000, 3)]
    only_right = [(k, (None, 2 * k)) for k in reversed(range(3000)) if k % 3]
    assert joined == (inner + only_right if pad[0] else inner)
