"""The reduce side of a join (scheduler/shuffle/hashjoin.py) against PySpark's cogroup join.

PySpark tags values, groups them by key in the order keys are first seen (left
side first) and pairs each key's lists; the hash join must give the same pairs
in the same order while it stays in memory, and the same pairs per key (in the
same per-key order) when it spills to hash buckets on disk.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.shuffle import aggregation, hashjoin
from scheduler.shuffle.hashjoin import HashJoin, hash_join

PADS = [(False, False), (False, True), (True, False), (True, True)]


def _cogroup_join(left: list[Any], right: list[Any], pad_left: bool, pad_right: bool) -> list[Any]:
    """The pairs PySpark's join yields for one partition: tagged union, groupByKey, product."""
    groups: dict[Any, tuple[list[Any], list[Any]]] = {}
    for side, pairs in ((0, left), (1, right)):
        for k, v in pairs:
            groups.setdefault(k, ([], []))[side].append(v)
    out = []
    for k, (vs, ws) in groups.items():
        vs = vs or ([None] if pad_left else [])
        ws = ws or ([None] if pad_right else [])
        out += [(k, (v, w)) for v in vs for w in ws]
    return out


def _by_key(pairs: list[Any]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = {}
    for k, vw in pairs:
        grouped.setdefault(k, []).append(vw)
    return grouped


@pytest.fixture
def spill_root(tmp_path: Path) -> Iterator[Path]:
    aggregation.SPILL_ROOT[:] = [str(tmp_path)]
    try:
        yield tmp_path
    finally:
        aggregation.SPILL_ROOT.clear()


def _sides(seed: int, repeats: bool) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    if repeats:
        keys: list[Any] = [*range(40), None, (1, 2), "k"]
        left = [(rng.choice(keys), f"l{i}") for i in range(400)]
        right = [(rng.choice(keys[5:]), None if i % 7 == 0 else i) for i in range(300)]
        return left, right
    left_keys = rng.sample(range(10_000), 4000)
    right_keys = rng.sample(range(10_000), 3000)
    return [(k, k) for k in left_keys], [[k, -k] for k in right_keys]  # lists as pairs too


@pytest.mark.parametrize("repeats", [False, True], ids=["unique-keys", "repeated-keys"])
@pytest.mark.parametrize(("pad_left", "pad_right"), PADS)
def test_in_memory_join_gives_pyspark_s_pairs_in_its_order(
    repeats: bool, pad_left: bool, pad_right: bool
) -> None:
    left, right = _sides(1, repeats)
    # No budget: the pytest process itself may hold more than any finite one late in
    # the suite, and a spill would change the order this test checks.
    got = list(hash_join(float("inf"), pad_left, pad_right, iter(left), iter(right)))
    assert got == _cogroup_join(left, right, pad_left, pad_right)


@pytest.mark.parametrize("step", [1, 2, 5])
@pytest.mark.parametrize("order", ["missing-first", "missing-later"])
@pytest.mark.parametrize(("pad_left", "pad_right"), PADS)
def test_a_join_probed_a_few_left_keys_at_a_time_keeps_pyspark_s_pairs_and_order(
    monkeypatch: pytest.MonkeyPatch, step: int, order: str, pad_left: bool, pad_right: bool
) -> None:
    # Steps of left keys all on the right and steps with some missing, either first;
    # keys equal across sides but of other types (1.0 and 1, None), right-only keys.
    monkeypatch.setattr(hashjoin, "_PROBE", step)
    rng = random.Random(f"{step}-{order}")
    left_keys: list[Any] = [None, 1.0, *range(2, 40), "a", (1, 2)]
    missing = {7, 8, 9, 23, "a"} if order == "missing-later" else {None, 1.0, 2, 30}
    right_keys: list[Any] = [1 if k == 1.0 else k for k in left_keys if k not in missing]
    right_keys += [100, "b", (3,)]
    rng.shuffle(right_keys)
    left = [(k, f"l{i}") for i, k in enumerate(left_keys)]
    right = [(k, None if i % 5 == 0 else i) for i, k in enumerate(right_keys)]
    got = list(hash_join(float("inf"), pad_left, pad_right, iter(left), iter(right)))
    expected = _cogroup_join(left, right, pad_left, pad_right)
    # repr: the key objects themselves (the left's 1.0, not the right's 1), as PySpark's.
    assert [(repr(k), vw) for k, vw in got] == [(repr(k), vw) for k, vw in expected]


def test_a_join_of_sides_larger_than_a_probe_step_keeps_its_order() -> None:
    n = 3 * hashjoin._PROBE + 17
    left = [(k, -k) for k in range(n)]
    right = [(k, 2 * k) for k in random.Random(4).sample(range(n + 5), n + 5)]
    for pads in PADS:
        got = list(hash_join(float("inf"), *pads, iter(left), iter(right)))
        assert got == _cogroup_join(left, right, *pads)


@pytest.mark.parametrize("repeats", [False, True], ids=["unique-keys", "repeated-keys"])
@pytest.mark.parametrize(("pad_left", "pad_right"), PADS)
def test_spilled_join_gives_the_same_pairs_per_key(
    spill_root: Path, repeats: bool, pad_left: bool, pad_right: bool
) -> None:
    left, right = _sides(2, repeats)
    joiner = HashJoin(0)  # every memory check is over budget: both sides go to disk
    joiner.add(0, iter(left))
    joiner.add(1, iter(right))
    assert joiner.spills >= 1
    got = list(joiner.pairs(pad_left, pad_right))
    expected = _cogroup_join(left, right, pad_left, pad_right)
    assert len(got) == len(expected)
    assert _by_key(got) == _by_key(expected)
    assert list(spill_root.iterdir()) == []  # the buckets are gone once read


def test_a_join_read_halfway_removes_its_spill_files(spill_root: Path) -> None:
    left, right = _sides(3, True)
    pairs = hash_join(0, False, False, iter(left), iter(right))
    next(pairs)
    assert list(spill_root.iterdir()) != []
    pairs.close()  # type: ignore[attr-defined]
    assert list(spill_root.iterdir()) == []


def test_a_record_that_is_not_a_pair_fails_and_leaves_no_files(spill_root: Path) -> None:
    with pytest.raises(ValueError):
        hash_join(0, False, False, iter([(1, 2)] * 2000 + [(1, 2, 3)]), iter([]))
    assert list(spill_root.iterdir()) == []
