"""Joins and cogroup group their tagged values on the reduce side only (issue 13).

The answers are checked against a plain-Python join of the same pairs: repeated
keys on either side, keys on one side only (every outer join) and a co-partitioned
pair of inputs (no shuffle); test_join_spill.py repeats them with a memory budget
small enough to spill.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

LEFT = [(k % 7, f"l{k}") for k in range(40)] + [("only-left", 1), (None, "n")]
RIGHT = [(k % 5, f"r{k}") for k in range(0, 30, 2)] + [("only-right", 2), (None, "m")]


def _reference(left: list[Any], right: list[Any], pad_left: bool, pad_right: bool) -> list[Any]:
    lv: dict[Any, list[Any]] = defaultdict(list)
    rv: dict[Any, list[Any]] = defaultdict(list)
    for k, v in left:
        lv[k].append(v)
    for k, w in right:
        rv[k].append(w)
    out = []
    for k in set(lv) | set(rv):
        vs = lv.get(k) or ([None] if pad_left else [])
        ws = rv.get(k) or ([None] if pad_right else [])
        out += [(k, (v, w)) for v in vs for w in ws]
    return sorted(out, key=repr)


def _check_joins(sc: Any, partitions: int) -> None:
    left = sc.parallelize(LEFT, 3)
    right = sc.parallelize(RIGHT, 2)
    cases = {
        "join": (False, False),
        "leftOuterJoin": (False, True),
        "rightOuterJoin": (True, False),
        "fullOuterJoin": (True, True),
    }
    for name, (pad_left, pad_right) in cases.items():
        got = getattr(left, name)(right, partitions).collect()
        assert sorted(got, key=repr) == _reference(LEFT, RIGHT, pad_left, pad_right), name
    grouped = {
        k: (sorted(map(str, a)), sorted(map(str, b)))
        for k, (a, b) in left.cogroup(right, partitions).collect()
    }
    lv: dict[Any, list[str]] = defaultdict(list)
    rv: dict[Any, list[str]] = defaultdict(list)
    for k, v in LEFT:
        lv[k].append(str(v))
    for k, w in RIGHT:
        rv[k].append(str(w))
    assert grouped == {k: (sorted(lv[k]), sorted(rv[k])) for k in set(lv) | set(rv)}


def test_joins_match_a_plain_python_join(sc: Any) -> None:
    _check_joins(sc, 4)


def test_join_of_co_partitioned_inputs_keeps_the_partitioner(sc: Any) -> None:
    left = sc.parallelize([(k, k) for k in range(100)], 4).partitionBy(3)
    right = sc.parallelize([(k, -k) for k in range(0, 100, 3)], 2).partitionBy(3)
    joined = left.join(right)
    assert joined.getNumPartitions() == 3
    assert sorted(joined.collect()) == [(k, (k, -k)) for k in range(0, 100, 3)]


def test_join_of_alike_partitioned_inputs_into_another_count(sc: Any) -> None:
    # Each map task of this union holds both sides: the join tags values, as PySpark does.
    left = sc.parallelize(LEFT, 3).partitionBy(2)
    right = sc.parallelize(RIGHT, 2).partitionBy(2)
    for name, pads in {"join": (False, False), "fullOuterJoin": (True, True)}.items():
        joined = getattr(left, name)(right, 3)
        assert joined.getNumPartitions() == 3
        assert sorted(joined.collect(), key=repr) == _reference(LEFT, RIGHT, *pads), name
