"""PySpark compatibility: RDD programs ported from PySpark, corner by corner.

Each test is a slice of a user's program (an inverted index, page rank,
sessionization, log analysis...) that leans on an API corner the other compat
files leave alone: mutable combiners, three-way cogroups, outer joins with
None keys, sorted repartitions, union of co-partitioned RDDs, local
checkpoints of persisted RDDs, input directories, compressed whole files.
Every expected value was checked on PySpark 4.3 (local[2], ``make
test-oracle``); partition layouts (glom) are part of the contract.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import subprocess
import sys
import threading
import time
import zlib
from operator import add
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

# -- input directories are read in the file system's listing order ---------------------

#: File names created in an order that is neither sorted nor reverse-sorted.
_SHUFFLED_NAMES = [f"f{i:02d}.txt" for i in (7, 2, 11, 0, 9, 4, 1, 10, 5, 8, 3, 6)]


def test_input_directories_are_read_in_listing_order_and_globs_sorted(
    sc: Any, tmp_path: Path
) -> None:
    """Hadoop lists a local directory as readdir does (os.listdir); a glob comes back sorted."""
    texts, pickles = tmp_path / "texts", tmp_path / "pickles"
    texts.mkdir()
    for name in _SHUFFLED_NAMES:
        (texts / name).write_text(name + "\n")
    listed = os.listdir(texts)
    assert sc.textFile(str(texts)).collect() == listed
    assert sc.textFile(str(texts / "f*.txt")).collect() == sorted(listed)
    assert [os.path.basename(k) for k, _ in sc.wholeTextFiles(str(texts), 12).collect()] == listed
    assert [os.path.basename(k) for k, _ in sc.binaryFiles(str(texts)).collect()] == listed
    sc.parallelize(range(12), 12).saveAsPickleFile(str(pickles))
    parts = [n for n in os.listdir(pickles) if n.startswith("part-")]
    assert sc.pickleFile(str(pickles)).collect() == [int(n[len("part-") :]) for n in parts]


def test_a_checkpoint_reads_its_partitions_back_in_order(sc: Any, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path / "ckpt"))
    summed = sc.parallelize([(i % 5, i) for i in range(30)], 3).reduceByKey(add, 5)
    summed.checkpoint()
    layout = [[(0, 75)], [(1, 81)], [(2, 87)], [(3, 93)], [(4, 99)]]
    assert summed.glom().collect() == layout
    assert summed.isCheckpointed()
    assert summed.mapValues(lambda v: -v).glom().collect() == [
        [(k, -v) for k, v in part] for part in layout
    ]
    assert summed.join(summed).getNumPartitions() == 5


def test_text_file_skips_a_utf8_byte_order_mark_at_the_start_of_a_file(
    sc: Any, tmp_path: Path
) -> None:
    """Hadoop's LineRecordReader drops a leading BOM; wholeTextFiles keeps it."""
    bom = "\ufeff".encode()
    (tmp_path / "a.txt").write_bytes(bom + b"head\nbody\n")
    (tmp_path / "twice.txt").write_bytes(bom + bom + b"x\n" + bom + b"y")
    (tmp_path / "only.txt").write_bytes(bom)
    with gzip.open(tmp_path / "c.txt.gz", "wb") as f:
        f.write(bom + b"head\r\nbody")
    with gzip.open(tmp_path / "d.gz", "wb") as f:
        f.write(bom + b"\n")
    assert sc.textFile(str(tmp_path / "a.txt")).collect() == ["head", "body"]
    assert sc.textFile(str(tmp_path / "a.txt"), use_unicode=False).collect() == [b"head", b"body"]
    assert sc.textFile(str(tmp_path / "c.txt.gz")).collect() == ["head", "body"]
    assert sc.textFile(str(tmp_path / "d.gz")).collect() == [""]
    assert sc.textFile(str(tmp_path / "only.txt")).collect() == []
    assert sc.textFile(str(tmp_path / "twice.txt")).collect() == ["\ufeffx", "\ufeffy"]
    assert [v for _, v in sc.wholeTextFiles(str(tmp_path / "a.txt")).collect()] == [
        "\ufeffhead\nbody\n"
    ]


# -- wholeTextFiles: compressed files, bad UTF-8, bytes, empty files -------------------


def test_whole_text_files_decompress_and_decode_as_java_strings(sc: Any, tmp_path: Path) -> None:
    with gzip.open(tmp_path / "g.txt.gz", "wb") as f:
        f.write("gzipped \u00fc\n".encode())
    with bz2.open(tmp_path / "b.bz2", "wb") as f:
        f.write(b"bzipped")
    (tmp_path / "z.deflate").write_bytes(zlib.compress(b"deflated"))
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe end\r\nline2")
    (tmp_path / "sp ace \u00fc.txt").write_text("spaced", encoding="utf-8")
    texts = sorted((os.path.basename(k), v) for k, v in sc.wholeTextFiles(str(tmp_path)).collect())
    assert texts == [
        ("b.bz2", "bzipped"),
        ("bad.txt", "ok \ufffd\ufffd end\r\nline2"),
        ("g.txt.gz", "gzipped \u00fc\n"),
        ("sp ace \u00fc.txt", "spaced"),
        ("z.deflate", "deflated"),
    ]
    raw = sorted(sc.wholeTextFiles(str(tmp_path), use_unicode=False).collect())
    assert all(isinstance(k, bytes) and k.startswith(b"file:") for k, _ in raw)
    assert sorted((os.path.basename(k), v) for k, v in raw) == [
        (b"b.bz2", b"bzipped"),
        (b"bad.txt", b"ok \xef\xbf\xbd\xef\xbf\xbd end\r\nline2"),
        (b"g.txt.gz", b"gzipped \xc3\xbc\n"),
        ("sp ace \u00fc.txt".encode(), b"spaced"),
        (b"z.deflate", b"deflated"),
    ]


def test_whole_text_files_pack_empty_files_into_the_last_split(sc: Any, tmp_path: Path) -> None:
    """CombineFileInputFormat packs files with a block (non-empty) first, empty ones last."""
    for name in ["e1", "n1", "n2", "e2", "n3", "e3", "n4"]:
        (tmp_path / name).write_text("" if name.startswith("e") else "x" * 10)
    layout = sc.wholeTextFiles(str(tmp_path), 4).glom().collect()
    assert [len(part) for part in layout] == [1, 1, 1, 1, 3]
    assert [v for _, v in layout[-1]] == ["", "", ""]
    everything = sc.wholeTextFiles(str(tmp_path), 1).glom().collect()
    assert [len(part) for part in everything] == [4, 3]


# -- localCheckpoint of persisted RDDs, sc.union of nothing ----------------------------


def test_local_checkpoint_adds_disk_to_the_storage_level(sc: Any) -> None:
    from scheduler import StorageLevel

    plain = sc.parallelize(range(6), 3).map(lambda x: x)
    plain.localCheckpoint()
    assert plain.getStorageLevel() == StorageLevel(True, True, False, True, 1)
    assert str(plain.getStorageLevel()) == "Disk Memory Deserialized 1x Replicated"
    assert (plain.sum(), plain.isLocallyCheckpointed(), plain.isCheckpointed()) == (15, True, False)
    for level, shown in [
        (StorageLevel.MEMORY_ONLY, "Disk Memory Serialized 1x Replicated"),
        (StorageLevel.DISK_ONLY, "Disk Serialized 1x Replicated"),
        (StorageLevel.MEMORY_AND_DISK_2, "Disk Memory Serialized 2x Replicated"),
    ]:
        rdd = sc.parallelize(range(6), 3).map(lambda x: x * 2).persist(level)
        rdd.localCheckpoint()
        assert str(rdd.getStorageLevel()) == shown
        assert (rdd.sum(), rdd.is_cached) == (30, True)
        rdd.unpersist()
        assert rdd.getStorageLevel() == StorageLevel.NONE
        assert rdd.sum() == 30
    checkpointed = sc.parallelize(range(6), 3)
    checkpointed.localCheckpoint()
    checkpointed.persist(StorageLevel.DISK_ONLY)
    assert str(checkpointed.getStorageLevel()) == "Disk Serialized 1x Replicated"
    checkpointed.cache()
    assert str(checkpointed.getStorageLevel()) == "Disk Memory Serialized 1x Replicated"


def test_union_of_co_partitioned_rdds_keeps_the_partitioner(sc: Any) -> None:
    a = sc.parallelize([(i, i) for i in range(10)], 3).partitionBy(4)
    b = sc.parallelize([(i, -i) for i in range(5, 15)], 2).partitionBy(4)
    c = sc.parallelize([(i, 1) for i in range(3)], 2).partitionBy(3)
    both = a.union(b)
    assert both.partitioner == a.partitioner
    assert both.glom().collect() == [
        [(0, 0), (4, 4), (8, 8), (8, -8), (12, -12)],
        [(1, 1), (5, 5), (9, 9), (5, -5), (9, -9), (13, -13)],
        [(2, 2), (6, 6), (6, -6), (10, -10), (14, -14)],
        [(3, 3), (7, 7), (7, -7), (11, -11)],
    ]
    assert sc.union([a, b]).glom().collect() == both.glom().collect()
    assert both.reduceByKey(add).glom().collect() == [
        [(0, 0), (4, 4), (8, 0), (12, -12)],
        [(1, 1), (5, 0), (9, 0), (13, -13)],
        [(2, 2), (6, 0), (10, -10), (14, -14)],
        [(3, 3), (7, 0), (11, -11)],
    ]
    mixed = a.union(c)
    assert (mixed.partitioner, mixed.getNumPartitions()) == (None, 7)
    assert a.join(c).getNumPartitions() == 7
    assert sc.union([sc.parallelize([1], 1), sc.parallelize([2, 3], 2), sc.emptyRDD()]).glom(
    ).collect() == [[1], [2], [3]]  # fmt: skip
    with pytest.raises(IndexError):
        sc.union([])


def test_archives_and_resource_profiles_are_reported_empty(sc: Any) -> None:
    rdd = sc.parallelize([1], 1)
    assert (sc.listArchives, rdd.getResourceProfile(), rdd.has_resource_profile) == (
        [],
        None,
        False,
    )


# -- combiners, zeros and three-way groupings ------------------------------------------


def _new_list(v: int) -> list[int]:
    return [v]


def _append(acc: list[int], v: int) -> list[int]:
    acc.append(v)
    return acc


def _extend(acc: list[int], other: list[int]) -> list[int]:
    acc.extend(other)
    return acc


_EVENTS = [("a", 1), ("b", 2), ("a", 3), (None, 4), ("c", 5), ("b", 6), (None, 7), ("a", 8)]


def test_combiners_and_zero_values_that_mutate(sc: Any) -> None:
    rdd = sc.parallelize(_EVENTS, 3)
    assert rdd.combineByKey(_new_list, _append, _extend, 4).glom().collect() == [
        [(None, [4, 7])],
        [],
        [("b", [2, 6]), ("c", [5])],
        [("a", [1, 3, 8])],
    ]
    by_str = rdd.combineByKey(
        lambda v: {v % 3}, lambda s, v: s | {v % 3}, lambda x, y: x | y, 2, lambda k: len(str(k))
    )
    assert by_str.glom().collect() == [
        [(None, {1})],
        [("a", {0, 1, 2}), ("b", {0, 2}), ("c", {2})],
    ]
    assert rdd.aggregateByKey([], _append, _extend, 2).glom().collect() == [
        [("b", [2, 6]), (None, [4, 7]), ("c", [5])],
        [("a", [1, 3, 8])],
    ]
    assert rdd.foldByKey(1, lambda x, y: x * y, 3).glom().collect() == [
        [("b", 12), (None, 28)],
        [("a", 24), ("c", 5)],
        [],
    ]
    folded = rdd.mapValues(str).foldByKey("<", add).collect()
    assert sorted(folded, key=str) == [("a", "<1<3<8"), ("b", "<2<6"), ("c", "<5"), (None, "<4<7")]
    assert [[(k, list(v)) for k, v in part] for part in rdd.groupByKey(3).glom().collect()] == [
        [("b", [2, 6]), (None, [4, 7])],
        [("a", [1, 3, 8]), ("c", [5])],
        [],
    ]
    assert sc.emptyRDD().foldByKey(0, add).glom().collect() == []
    assert sc.parallelize([], 3).combineByKey(_new_list, _append, _extend).collect() == []


def _as_lists(kv: tuple[Any, Any]) -> tuple[Any, tuple[list[Any], ...]]:
    return kv[0], tuple(sorted(v, key=str) for v in kv[1])


def test_three_way_groupings_and_outer_joins_with_none_and_tuple_keys(sc: Any) -> None:
    a = sc.parallelize([(1, "a"), (2, "b"), (2, "bb"), (None, "n"), ((1, 2), "t"), (3, None)], 2)
    b = sc.parallelize([(2, "x"), (4, "y"), (None, "m"), ((1, 2), "u"), (2, "xx")], 3)
    c = sc.parallelize([(1, 1.0), (4, 4.0), (5, 5.0)], 1)
    assert sorted(a.groupWith(b, c).map(_as_lists).collect(), key=str) == [
        ((1, 2), (["t"], ["u"], [])),
        (1, (["a"], [], [1.0])),
        (2, (["b", "bb"], ["x", "xx"], [])),
        (3, ([None], [], [])),
        (4, ([], ["y"], [4.0])),
        (5, ([], [], [5.0])),
        (None, (["n"], ["m"], [])),
    ]
    assert a.groupWith(b, c, a).getNumPartitions() == 8
    assert [[_as_lists(kv) for kv in p] for p in a.cogroup(b, 4).glom().collect()] == [
        [(None, (["n"], ["m"])), (4, ([], ["y"]))],
        [(1, (["a"], [])), ((1, 2), (["t"], ["u"]))],
        [(2, (["b", "bb"], ["x", "xx"]))],
        [(3, ([None], []))],
    ]
    assert a.fullOuterJoin(b, 2).glom().collect() == [
        [
            *[(2, (left, right)) for left in ("b", "bb") for right in ("x", "xx")],
            (None, ("n", "m")),
            (4, (None, "y")),
        ],
        [(1, ("a", None)), ((1, 2), ("t", "u")), (3, (None, None))],
    ]
    assert sorted(a.rightOuterJoin(c).collect()) == [
        (1, ("a", 1.0)),
        (4, (None, 4.0)),
        (5, (None, 5.0)),
    ]
    assert a.subtractByKey(b).glom().collect() == [[], [(1, "a")], [], [(3, None)], []]
    assert a.subtract(b).glom().collect() == [
        [(1, "a")],
        [(None, "n")],
        [(2, "bb"), ((1, 2), "t"), (3, None)],
        [(2, "b")],
        [],
    ]
    values = sc.parallelize([1, 2, 2, 3, None, "x", 3, (1,)], 2)
    assert values.intersection(sc.parallelize([2, None, 3, 3, (1,)], 3)).glom().collect() == [
        [None],
        [(1,)],
        [2],
        [3],
        [],
    ]
    assert values.intersection(sc.emptyRDD()).collect() == []
    assert sorted(sc.emptyRDD().fullOuterJoin(c).collect()) == [
        (1, (None, 1.0)),
        (4, (None, 4.0)),
        (5, (None, 5.0)),
    ]
    assert sc.parallelize([1, 2, 3], 2).cartesian(sc.parallelize("ab", 3)).glom().collect() == [
        [],
        [(1, "a")],
        [(1, "b")],
        [],
        [(2, "a"), (3, "a")],
        [(2, "b"), (3, "b")],
    ]
    assert sc.parallelize([1, 2, 3], 2).cartesian(sc.emptyRDD()).getNumPartitions() == 0


def test_a_shuffle_turns_list_pairs_into_tuples(sc: Any) -> None:
    rows = sc.parallelize(["b,2", "a,1", "c,3", "a,4"], 2).map(lambda line: line.split(","))
    assert rows.partitionBy(2).glom().collect() == [
        [("b", "2"), ("c", "3")],
        [("a", "1"), ("a", "4")],
    ]
    assert rows.sortByKey().collect() == [("a", "1"), ("a", "4"), ("b", "2"), ("c", "3")]
    assert rows.repartitionAndSortWithinPartitions(2).glom().collect() == [
        [("b", "2"), ("c", "3")],
        [("a", "1"), ("a", "4")],
    ]
    assert sc.parallelize(["ab", "cd"], 1).partitionBy(2).glom().collect() == [
        [("c", "d")],
        [("a", "b")],
    ]
    with pytest.raises(Exception, match="unpack"):
        sc.parallelize([(1, 2, 3)], 1).partitionBy(2).collect()


# -- ordering with keys, descending sorts, sorted repartitions --------------------------


def test_ordering_with_keys_descending_sorts_and_sorted_repartitions(sc: Any) -> None:
    words = sc.parallelize(["banana", "Apple", "cherry", "apple", "date", "Elder", "fig"], 3)
    assert words.takeOrdered(4, key=str.lower) == ["Apple", "apple", "banana", "cherry"]
    assert words.top(3, key=len) == ["banana", "cherry", "Apple"]
    assert (words.max(key=len), words.min(key=len), words.top(0)) == ("banana", "fig", [])
    assert sc.parallelize(range(20), 4).sortBy(
        lambda x: x % 7, ascending=False, numPartitions=3
    ).glom().collect() == [
        [6, 13, 5, 12, 19],
        [4, 11, 18, 3, 10, 17],
        [2, 9, 16, 1, 8, 15, 0, 7, 14],
    ]
    assert words.map(lambda w: (w, len(w))).sortByKey(
        False, 2, keyfunc=str.lower
    ).glom().collect() == [
        [("fig", 3), ("Elder", 5), ("date", 4)],
        [("cherry", 6), ("banana", 6), ("Apple", 5), ("apple", 5)],
    ]
    pairs = sc.parallelize([(i % 5, i) for i in range(15)], 3)
    assert pairs.repartitionAndSortWithinPartitions(
        2, lambda k: k % 2, ascending=False
    ).glom().collect() == [
        [(4, 4), (4, 9), (4, 14), (2, 2), (2, 7), (2, 12), (0, 0), (0, 5), (0, 10)],
        [(3, 3), (3, 8), (3, 13), (1, 1), (1, 6), (1, 11)],
    ]
    mixed_case = sc.parallelize([("b", 1), ("A", 2), ("a", 3), ("C", 4)], 2)
    assert mixed_case.repartitionAndSortWithinPartitions(
        2, lambda k: 0, True, keyfunc=str.lower
    ).glom().collect() == [[("A", 2), ("a", 3), ("b", 1), ("C", 4)], []]
    assert sc.parallelize([], 3).sortByKey().glom().collect() == [[], [], []]
    with pytest.raises(TypeError):
        sc.parallelize([(None, 1), (1, 2)], 2).sortByKey().collect()


# -- seeded sampling and histograms -----------------------------------------------------


def test_seeded_sampling_by_key_splits_and_histograms(sc: Any) -> None:
    pairs = sc.parallelize([(i % 3, i) for i in range(60)], 4)
    sampled = pairs.sampleByKey(True, {0: 1.5, 1: 0.3, 2: 0.0}, seed=11)
    assert sampled.glom().collect() == [
        [(0, 3), (0, 3), (0, 6), (0, 6), (0, 6), (0, 9), (0, 9), (0, 12)],
        [(0, 15), (0, 18), (1, 19), (0, 21), (0, 24), (1, 25), (1, 25)],
        [(0, 30), (0, 30), (0, 33), (0, 33), (0, 36), (0, 36), (0, 36), (0, 42), (0, 42)],
        [(0, 45), (0, 48), (0, 48), (0, 51), (0, 51), (1, 52), (1, 55)],
    ]
    splits = sc.parallelize(range(20), 2).randomSplit([0, 1, 1], seed=3)
    assert [s.collect() for s in splits] == [
        [],
        [1, 3, 5, 15],
        [0, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19],
    ]
    assert sc.parallelize(range(100), 4).takeSample(True, 10, 3) == [
        16, 86, 19, 12, 82, 79, 91, 6, 13, 29,
    ]  # fmt: skip
    assert sc.parallelize([1.5, 2, 3, 7, 9.9, 10, 100], 2).histogram([0, 2, 3, 50, 100]) == (
        [0, 2, 3, 50, 100],
        [1, 1, 4, 1],
    )
    assert sc.parallelize(range(11), 2).histogram(3) == (
        [0.0, 3.3333333333333335, 6.666666666666667, 10],
        [4, 3, 4],
    )
    assert sc.parallelize([5, 5, 5], 2).histogram(3) == ([5, 5], [3])
    nan = float("nan")
    assert sc.parallelize([1.0, nan, 2.0], 2).histogram([0, 1, 2]) == ([0, 1, 2], [0, 2])
    assert sc.parallelize([1.0, nan, 2.0], 2).histogram(2) == ([1.0, 1.5, 2.0], [1, 1])
    assert sc.parallelize(["a", "b", "c", "d", "z"], 2).histogram(["a", "c", "e"]) == (
        ["a", "c", "e"],
        [2, 2],
    )
    big = [2**70, 2**71, 3 * 2**70]
    assert sc.parallelize(big, 2).histogram(2) == ([2**70, 2**71, 3 * 2**70], [1, 2])
    assert sc.parallelize([1, None, 3], 2).histogram([0, 2, 4]) == ([0, 2, 4], [1, 1])
    with pytest.raises(ValueError):
        sc.parallelize([1, 2, 3], 2).histogram([3, 1])
    with pytest.raises(ValueError, match=r"^Can not generate buckets with infinite value$"):
        sc.parallelize([1.0, float("inf")], 2).histogram(2)
    with pytest.raises(ValueError, match=r"^Can not reduce\(\) empty RDD$"):
        sc.parallelize([], 3).histogram(2)
    with pytest.raises(TypeError, match=r"^Can not generate buckets with non-number in RDD$"):
        sc.parallelize(["a", "b"], 2).histogram(2)
    assert sc.parallelize([], 2).histogram([0, 1]) == ([0, 1], [0])


# -- keys of unusual types: placement and grouping --------------------------------------

_ODD_KEYS = [
    *(None, (1, (2, "x")), "\u00fcn\u00efcode", "\u65e5\u672c\u8a9e", 2**100, -(2**65)),
    *(0.0, -0.0, 1, True, 1.0, 3.5, (None,), "", b"bytes", frozenset([1, 2]), (), -1, -2),
]


def test_keys_of_unusual_types_are_placed_and_merged_as_in_pyspark(sc: Any) -> None:
    pairs = sc.parallelize([(k, i) for i, k in enumerate(_ODD_KEYS)], 3)
    assert pairs.partitionBy(5).glom().map(lambda p: [v for _, v in p]).collect() == [
        [0, 2, 3, 6, 7, 12, 13],
        [1, 8, 9, 10],
        [],
        [4, 14, 15, 16, 17, 18],
        [5, 11],
    ]
    assert pairs.reduceByKey(add, 4).glom().collect() == [
        [(None, 0), ((1, (2, "x")), 1), (2**100, 4), (-(2**65), 5), (0.0, 13), ("", 13), ((), 16)],
        [(1, 27), ((None,), 12)],
        [("\u65e5\u672c\u8a9e", 3), (b"bytes", 14), (frozenset({1, 2}), 15), (-1, 17), (-2, 18)],
        [("\u00fcn\u00efcode", 2), (3.5, 11)],
    ]
    assert sc.parallelize(_ODD_KEYS, 2).distinct(3).glom().map(len).collect() == [6, 7, 3]
    assert pairs.partitionBy(3).lookup(None) == [0]
    assert sc.parallelize([(None, 1), (None, 2), ("x", 3)], 2).partitionBy(3).lookup(None) == [
        1,
        2,
    ]
    floats = sc.parallelize([(1e300, 1), (2.5e-300, 2), (123456789.125, 3), (float("inf"), 4)], 2)
    assert floats.partitionBy(4).glom().map(lambda p: [v for _, v in p]).collect() == [
        [1],
        [3],
        [2],
        [4],
    ]
    nested = sc.parallelize([((1, (2, 3)), [4, {5: 6}]), ((1, (2, 3)), [7])], 2)
    assert nested.groupByKey().mapValues(list).collect() == [((1, (2, 3)), [[4, {5: 6}], [7]])]
    assert sc.parallelize([2**100, -(2**100), 0, 2**64], 2).sortBy(
        lambda x: x, numPartitions=2
    ).glom().collect() == [[-(2**100), 0, 2**64], [2**100]]  # fmt: skip


def test_empty_partitions_and_empty_rdds(sc: Any) -> None:
    assert sc.parallelize([1, 2, 3], 6).zipWithIndex().glom().collect() == [
        [], [(1, 0)], [], [(2, 1)], [], [(3, 2)],
    ]  # fmt: skip
    assert sc.parallelize([1, 2, 3], 6).zipWithUniqueId().collect() == [(1, 1), (2, 3), (3, 5)]
    assert sc.parallelize([0, 0, 0, 0, 1], 5).filter(lambda x: x > 0).isEmpty() is False
    assert sc.parallelize([], 4).repartition(3).glom().collect() == [[], [], []]
    assert sc.emptyRDD().union(sc.parallelize([1], 2)).glom().collect() == [[], [1]]
    empty = sc.emptyRDD()
    assert (empty.getNumPartitions(), empty.coalesce(3).getNumPartitions()) == (0, 0)
    assert (empty.takeOrdered(3), empty.sum(), empty.fold(0, max)) == ([], 0, 0)
    # countByValue, top and stats reduce over no partitions at all.
    for action in (empty.first, empty.countByValue, lambda: empty.top(3), empty.stats):
        with pytest.raises(ValueError):
            action()


# -- pipe -------------------------------------------------------------------------------


def test_pipe_of_empty_partitions_non_strings_and_crlf_output(sc: Any) -> None:
    assert sc.parallelize(["a", "b", "\u00fcn\u00ef", ""], 2).pipe("cat").glom().collect() == [
        ["a", "b"],
        ["\u00fcn\u00ef", ""],
    ]
    assert sc.parallelize([1], 3).pipe("wc -l").collect() == ["0", "0", "1"]
    assert sc.parallelize([1, 2.5, None, (1, 2)], 1).pipe("cat").collect() == [
        "1", "2.5", "None", "(1, 2)",
    ]  # fmt: skip
    assert sc.parallelize(["a\nb"], 1).pipe("cat").collect() == ["a", "b"]
    assert sc.parallelize(["x"], 1).pipe("printf 'p\\r\\nq\\r\\n'").collect() == ["p\r", "q\r"]
    assert sc.parallelize(["x"], 1).pipe("printf 'p\\nq'").collect() == ["p", "q"]
    assert sc.parallelize([1], 1).pipe("sh -c 'echo out; exit 3'").collect() == ["out"]
    with pytest.raises(Exception):  # noqa: B017 - PySpark's is a Py4JJavaError
        sc.parallelize(["x"], 1).pipe("no_such_command_xyz").collect()


# -- errors raised in tasks reach the driver with the remote traceback ------------------


class QuotaExceededError(Exception):
    pass


def _check_quota(x: int) -> int:
    if x == 7:
        raise QuotaExceededError(f"record {x} is over quota: \u00fcn\u00efcode")
    return x


def _wrapped_lookup(x: int) -> int:
    try:
        return {0: 0}[x]
    except KeyError as e:
        raise ValueError("wrapped lookup") from e


def _unpicklable_error(x: int) -> int:
    import threading

    class LockedError(Exception):
        def __init__(self) -> None:
            super().__init__("failed holding a lock")
            self.lock = threading.Lock()

    raise LockedError()


def test_errors_in_tasks_carry_the_remote_traceback(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2)
    with pytest.raises(Exception) as failed:  # PySpark's is a Py4JJavaError
        rdd.map(lambda x: (x % 2, x)).reduceByKey(lambda a, b: _check_quota(b) + a).collect()
    message = str(failed.value)
    assert "QuotaExceededError" in message
    assert "record 7 is over quota: \u00fcn\u00efcode" in message
    assert "in _check_quota" in message and "Traceback" in message
    with pytest.raises(Exception) as failed:
        rdd.map(lambda x: (x % 2, x)).groupByKey().mapValues(
            lambda vs: [_check_quota(v) for v in vs]
        ).collect()
    assert "QuotaExceededError" in str(failed.value)
    with pytest.raises(Exception) as failed:
        sc.parallelize([1], 1).map(_wrapped_lookup).collect()
    message = str(failed.value)
    assert "ValueError: wrapped lookup" in message and "KeyError" in message
    assert "direct cause" in message
    with pytest.raises(Exception, match="failed holding a lock"):
        sc.parallelize([1], 1).map(_unpicklable_error).collect()
    with pytest.raises(Exception, match="no_such_module_xyz"):
        sc.parallelize([1], 1).map(lambda x: __import__("no_such_module_xyz")).collect()
    assert rdd.map(_check_quota).take(5) == [0, 1, 2, 3, 4]
    assert rdd.sum() == 45


# -- shared variables: a custom AccumulatorParam, a large broadcast --------------------


def _vector_param() -> Any:
    from scheduler import AccumulatorParam

    class VectorParam(AccumulatorParam):  # type: ignore[misc]
        def zero(self, value: list[float]) -> list[float]:
            return [0.0] * len(value)

        def addInPlace(self, v1: list[float], v2: list[float]) -> list[float]:
            for i in range(len(v1)):
                v1[i] += v2[i]
            return v1

    return VectorParam()


def test_vector_accumulator_and_a_large_broadcast(sc: Any) -> None:
    vec = sc.accumulator([1.0, 2.0, 3.0], _vector_param())
    sc.parallelize(range(10), 3).foreach(lambda x: vec.add([x, 2 * x, 0.5]))
    assert vec.value == [46.0, 92.0, 8.0]
    vec += [1, 1, 1]
    assert vec.value == [47.0, 93.0, 9.0]
    counted = sc.accumulator(0)

    def tick(x: int) -> int:
        counted.add(1)
        return x

    cached = sc.parallelize(range(10), 2).map(tick).cache()
    assert (cached.count(), cached.count(), counted.value) == (10, 10, 10)
    table = sc.broadcast({i: str(i) * 3 for i in range(200000)})
    picked = sc.parallelize(range(0, 200000, 50000), 4).map(lambda i: table.value[i]).collect()
    assert picked == ["000", "500005000050000", "100000100000100000", "150000150000150000"]


# -- whole programs ---------------------------------------------------------------------


def test_inverted_index_over_whole_text_files(sc: Any, tmp_path: Path) -> None:
    docs = {
        "d1.txt": "the quick brown fox\njumps over the lazy dog\n",
        "d2.txt": "the dog barks\nthe fox runs",
        "d3.txt": "\u00fcn\u00efcode w\u00f6rds the end\n\n",
    }
    for name, text in docs.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    index = (
        sc.wholeTextFiles(str(tmp_path), 2)
        .flatMap(lambda kv: [(w, os.path.basename(kv[0])) for w in kv[1].split()])
        .distinct(3)
        .groupByKey(2)
        .mapValues(sorted)
    )
    layout = index.glom().collect()
    assert [sorted(part) for part in layout] == [
        [("barks", ["d2.txt"]), ("dog", ["d1.txt", "d2.txt"]), ("end", ["d3.txt"]),
         ("lazy", ["d1.txt"]), ("quick", ["d1.txt"]), ("runs", ["d2.txt"])],
        [("brown", ["d1.txt"]), ("fox", ["d1.txt", "d2.txt"]), ("jumps", ["d1.txt"]),
         ("over", ["d1.txt"]), ("the", ["d1.txt", "d2.txt", "d3.txt"]),
         ("w\u00f6rds", ["d3.txt"]), ("\u00fcn\u00efcode", ["d3.txt"])],
    ]  # fmt: skip


def test_page_rank_over_co_partitioned_links(sc: Any) -> None:
    links = (
        sc.parallelize([("a", ["b", "c"]), ("b", ["c"]), ("c", ["a"]), ("d", ["c", "a", "b"])], 2)
        .partitionBy(3)
        .cache()
    )
    ranks = links.mapValues(lambda _: 1.0)
    for _ in range(4):
        contribs = links.join(ranks).flatMap(
            lambda kv: [(url, kv[1][1] / len(kv[1][0])) for url in kv[1][0]]
        )
        ranks = contribs.reduceByKey(add, 3).mapValues(lambda r: 0.15 + 0.85 * r)
    assert links.join(ranks).getNumPartitions() == 3
    assert ranks.glom().collect() == [
        [("b", 0.7285312499999999)],
        [("c", 1.4347838541666664), ("a", 1.3586911458333328)],
        [],
    ]


def _sessions(it: Any) -> Any:
    user, last, session = None, 0, []
    for (u, t), _ in it:
        if u != user or t - last > 10:
            if session:
                yield (user, session)
            session = []
        user, last = u, t
        session.append(t)
    if session:
        yield (user, session)


def test_sessionization_by_secondary_sort(sc: Any) -> None:
    events = sc.parallelize(
        [("u1", 5), ("u2", 1), ("u1", 1), ("u1", 30), ("u2", 50), ("u3", 7), ("u1", 31), ("u2", 2)],
        3,
    )
    by_user = events.map(lambda e: (e, None)).repartitionAndSortWithinPartitions(
        2, partitionFunc=lambda k: ord(k[0][-1]) % 2
    )
    assert by_user.mapPartitions(_sessions).glom().collect() == [
        [("u2", [1, 2]), ("u2", [50])],
        [("u1", [1, 5]), ("u1", [30, 31]), ("u3", [7])],
    ]


def test_log_analysis_over_a_gzipped_file(sc: Any, tmp_path: Path) -> None:
    import re

    log = tmp_path / "access.log.gz"
    with gzip.open(log, "wt") as f:
        for i in range(200):
            status = 200 if i % 9 else 500
            f.write(f'10.0.0.{i % 7} - - [x] "GET /p{i % 5} HTTP/1.1" {status} {i * 10}\n')
    pattern = re.compile(r'(\S+) .*"GET (\S+) .*" (\d+) (\d+)')
    parsed = sc.textFile(str(log), 4).map(lambda line: pattern.match(line).groups())
    assert parsed.getNumPartitions() == 1
    assert sorted(parsed.map(lambda g: g[2]).countByValue().items()) == [("200", 177), ("500", 23)]
    by_page = parsed.map(lambda g: (g[1], int(g[3]))).reduceByKey(add)
    assert by_page.top(2, key=lambda kv: kv[1]) == [("/p4", 40600), ("/p3", 40200)]
    errors = parsed.filter(lambda g: g[2] == "500").map(lambda g: (g[0], 1)).reduceByKey(add)
    assert errors.sortByKey(ascending=False, numPartitions=2).glom().collect() == [
        [("10.0.0.6", 3), ("10.0.0.5", 3), ("10.0.0.4", 3)],
        [("10.0.0.3", 3), ("10.0.0.2", 4), ("10.0.0.1", 3), ("10.0.0.0", 4)],
    ]
    assert parsed.map(lambda g: int(g[3])).histogram(4) == (
        [0.0, 497.5, 995.0, 1492.5, 1990],
        [50, 50, 50, 50],
    )


# -- what a task prints -----------------------------------------------------------------

PRINTING_APP = """\
from scheduler import SparkContext

with SparkContext("local[2]", "printing") as sc:
    sc.setLogLevel("ERROR")
    sc.parallelize(["printed by a task"], 1).foreach(print)
    print("printed by the driver", sc.parallelize(range(4), 2).sum())
"""


def test_what_a_task_prints_goes_to_stderr_not_the_programs_stdout(tmp_path: Path) -> None:
    """PySpark's JVM copies its Python workers' stdout to its own stderr."""
    source = PRINTING_APP
    if support.IMPL == "pyspark":
        source = source.replace("from scheduler import", "from pyspark import")
    app = tmp_path / "app.py"
    app.write_text(source)
    done = subprocess.run(
        [sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(support.REPO), "PYTHONHASHSEED": "0"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "printed by the driver 6\n"
    assert "printed by a task" in done.stderr


# -- the reason a cancelled job gives ----------------------------------------------------


def _run_until_cancelled(sc: Any, setup: Any, cancel: Any) -> str:
    """Run a slow job in a thread, cancel it once it runs; the job's error, job id elided."""
    tracker = sc.statusTracker()
    before = set(tracker.getActiveJobsIds())
    outcome: dict[str, str] = {}

    def slow(x: int) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return x

    def run() -> None:
        setup()
        try:
            sc.parallelize(range(4), 2).map(slow).count()
            outcome["error"] = "no error"
        except Exception as exc:
            found = re.search(r"Job \d+ cancelled [^\n]*?(?= SQLSTATE|$)", str(exc), re.M)
            outcome["error"] = re.sub(r"\d+", "N", found.group(0)) if found else str(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    support.wait_until(
        lambda: bool(set(tracker.getActiveJobsIds()) - before), timeout=20, what="a new job"
    )
    time.sleep(0.5)  # let its tasks start (PySpark fails a job cancelled while it launches)
    cancel()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the cancelled job did not return"
    return outcome["error"]


def test_a_cancelled_job_says_why(sc: Any) -> None:
    try:
        assert (
            _run_until_cancelled(
                sc, lambda: sc.addJobTag("compat-tag"), lambda: sc.cancelJobsWithTag("compat-tag")
            )
            == "Job N cancelled part of cancelled job tags compat-tag"
        )
        assert (
            _run_until_cancelled(sc, lambda: sc.clearJobTags(), sc.cancelAllJobs)
            == "Job N cancelled as part of cancellation of all jobs"
        )
    finally:
        sc.clearJobTags()
    assert sc.parallelize(range(4), 2).sum() == 6


# -- stage names and call sites ---------------------------------------------------------


def test_stages_are_named_after_the_calls_that_made_them(sc: Any) -> None:
    """PySpark names a stage '<API> at <file>:<line>': its RDD's creation, or the action."""
    from scheduler import TaskContext

    tracker = sc.statusTracker()
    sc.setJobGroup("compat-call-sites", "stage names")
    try:
        pairs = sc.parallelize(range(10), 2).map(lambda x: (x % 2, x))
        summed = pairs.reduceByKey(add)
        reduced_at = sys._getframe().f_lineno - 1
        summed.collect()
        collected_at = sys._getframe().f_lineno - 1
        (job_id,) = tracker.getJobIdsForGroup("compat-call-sites")
        names = [tracker.getStageInfo(s).name for s in sorted(tracker.getJobInfo(job_id).stageIds)]
        assert names == [
            f"reduceByKey at {__file__}:{reduced_at}",
            f"collect at {__file__}:{collected_at}",
        ]
        site = sc.parallelize([1], 1).map(
            lambda _: TaskContext.get().getLocalProperty("callSite.short")
        )
        sites = site.collect()
        assert sites == [f"collect at {__file__}:{sys._getframe().f_lineno - 1}"]
        assert sc.getLocalProperty("callSite.short") is None
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
