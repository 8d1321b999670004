"""PySpark compatibility: key-value RDDs, shuffles, joins and sorting.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_rdd.py, test_join.py and the doctests of
python/pyspark/core/rdd.py. Expected values were checked on PySpark 4.x
(local[2]) first. Results of hash-partitioned shuffles are compared sorted
(their order inside a partition is not part of the contract); the placement
of integer keys by ``partitionBy`` and the ranges of ``sortByKey`` are.
"""

from __future__ import annotations

from operator import add
from typing import Any

import pytest

PAIRS = [("a", 1), ("b", 1), ("a", 2)]


def _as_lists(grouped: list[Any]) -> list[Any]:
    return sorted((k, sorted(v)) for k, v in grouped)


def test_keys_values_map_values_flat_map_values(sc: Any) -> None:
    rdd = sc.parallelize([(1, 2), (3, 4)])
    assert rdd.keys().collect() == [1, 3]
    assert rdd.values().collect() == [2, 4]
    fruits = sc.parallelize([("a", ["apple", "banana", "lemon"]), ("b", ["grapes"])])
    assert fruits.mapValues(len).collect() == [("a", 3), ("b", 1)]
    letters = sc.parallelize([("a", ["x", "y", "z"]), ("b", ["p", "r"])])
    assert letters.flatMapValues(lambda v: v).collect() == [
        ("a", "x"),
        ("a", "y"),
        ("a", "z"),
        ("b", "p"),
        ("b", "r"),
    ]
    assert sc.parallelize(range(3)).keyBy(lambda x: x * x).collect() == [(0, 0), (1, 1), (4, 2)]


def test_reduce_by_key(sc: Any) -> None:
    rdd = sc.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.reduceByKey(add).collect()) == [("a", 2), ("b", 1)]
    numbers = sc.parallelize([(i % 10, i) for i in range(1000)], 7)
    summed = numbers.reduceByKey(add, 3)
    assert summed.getNumPartitions() == 3
    assert sorted(summed.collect()) == [(k, sum(range(k, 1000, 10))) for k in range(10)]
    assert sorted(rdd.reduceByKeyLocally(add).items()) == [("a", 2), ("b", 1)]
    # reduceByKey(add) merges with `+` inline: a lone value keeps its own type.
    mixed = sc.parallelize([("t", True), ("f", 1.0), ("t", True), ("s", "x"), ("o", True)], 2)
    merged = mixed.reduceByKey(add).collect()
    assert sorted((k, v, type(v).__name__) for k, v in merged) == [
        ("f", 1.0, "float"),
        ("o", True, "bool"),
        ("s", "x", "str"),
        ("t", 2, "int"),
    ]


def test_group_by_key_and_group_by(sc: Any) -> None:
    rdd = sc.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(rdd.groupByKey().mapValues(len).collect()) == [("a", 2), ("b", 1)]
    assert sorted(rdd.groupByKey().mapValues(list).collect()) == [("a", [1, 1]), ("b", [1])]
    odd_even = sc.parallelize([1, 1, 2, 3, 5, 8]).groupBy(lambda x: x % 2)
    assert _as_lists(odd_even.collect()) == [(0, [2, 8]), (1, [1, 1, 3, 5])]
    # A large closure must not break the shuffle (regression of SPARK-6886).
    data = [float(i) for i in range(200000)]
    sized = sc.parallelize(range(1), 1).map(lambda x: len(data))
    assert sized.first() == 200000
    assert sized.map(lambda x: (x, 1)).groupByKey().count() == 1


def test_aggregate_by_key(sc: Any) -> None:
    seq = lambda acc, v: (acc[0] + v, acc[1] + 1)  # noqa: E731
    comb = lambda a, b: (a[0] + b[0], a[1] + b[1])  # noqa: E731
    result = sc.parallelize(PAIRS).aggregateByKey((0, 0), seq, comb).collect()
    assert sorted(result) == [("a", (3, 2)), ("b", (1, 1))]

    def add_to_set(acc: set[int], v: int) -> set[int]:
        acc.add(v)
        return acc

    def union_sets(a: set[int], b: set[int]) -> set[int]:
        a |= b
        return a

    data = sc.parallelize([(1, 1), (1, 1), (3, 2), (5, 1), (5, 3)], 2)
    sets = dict(data.aggregateByKey(set(), add_to_set, union_sets).collect())
    assert sets == {1: {1}, 3: {2}, 5: {1, 3}}


def test_aggregate_and_fold_by_key_do_not_share_mutable_zero_values(sc: Any) -> None:
    def append(acc: list[int], v: int) -> list[int]:
        acc.append(v)
        return acc

    def extend(a: list[int], b: list[int]) -> list[int]:
        a.extend(b)
        return a

    tuples = list(zip(list(range(10)) * 2, [1] * 20, strict=True))
    for slices in (1, 2):
        values = sorted(sc.parallelize(tuples, slices).aggregateByKey([], append, extend).collect())
        assert values == [(i, [1, 1]) for i in range(10)]
    ranges = [(i, list(range(i))) for i in range(10)] * 2
    for slices in (1, 2):
        folded = sorted(sc.parallelize(ranges, slices).foldByKey([], extend).collect())
        assert folded == [(i, list(range(i)) * 2) for i in range(10)]


def test_combine_by_key_and_fold_by_key(sc: Any) -> None:
    def to_list(v: int) -> list[int]:
        return [v]

    def append(acc: list[int], v: int) -> list[int]:
        acc.append(v)
        return acc

    def extend(a: list[int], b: list[int]) -> list[int]:
        a.extend(b)
        return a

    combined = sc.parallelize(PAIRS).combineByKey(to_list, append, extend).collect()
    assert _as_lists(combined) == [("a", [1, 2]), ("b", [1])]
    ones = sc.parallelize([("a", 1), ("b", 1), ("a", 1)])
    assert sorted(ones.foldByKey(0, add).collect()) == [("a", 2), ("b", 1)]


def test_default_shuffle_partitions_follow_the_parents(sc: Any) -> None:
    pairs = sc.parallelize(range(10), 3).map(lambda x: (x, 1))
    assert pairs.reduceByKey(max).getNumPartitions() == 3
    assert pairs.groupByKey().getNumPartitions() == 3
    assert pairs.distinct().getNumPartitions() == 3
    assert pairs.sortByKey().getNumPartitions() == 3
    # A join shuffles the union of both sides, so it gets the sum of their partitions.
    assert pairs.join(sc.parallelize([(1, 1)], 5)).getNumPartitions() == 8


def test_shuffle_output_of_an_earlier_job_is_reused(sc: Any) -> None:
    computed = sc.accumulator(0)

    def tally(x: int) -> tuple[int, int]:
        computed.add(1)
        return (x % 3, x)

    summed = sc.parallelize(range(30), 3).map(tally).reduceByKey(add)
    assert sorted(summed.collect()) == [(0, 135), (1, 145), (2, 155)]
    assert computed.value == 30
    # The map stage is skipped the second time: its shuffle files are still there.
    assert sorted(summed.mapValues(lambda v: -v).collect()) == [(0, -135), (1, -145), (2, -155)]
    assert computed.value == 30


def test_count_by_key(sc: Any) -> None:
    counts = sc.parallelize([("a", 1), ("b", 1), ("a", 1)]).countByKey()
    assert sorted(counts.items()) == [("a", 2), ("b", 1)]


def test_joins(sc: Any) -> None:
    left = sc.parallelize([("a", 1), ("b", 4)])
    assert sorted(left.join(sc.parallelize([("a", 2), ("a", 3)])).collect()) == [
        ("a", (1, 2)),
        ("a", (1, 3)),
    ]
    right = sc.parallelize([("a", 2)])
    assert sorted(left.leftOuterJoin(right).collect()) == [("a", (1, 2)), ("b", (4, None))]
    assert sorted(right.rightOuterJoin(left).collect()) == [("a", (2, 1)), ("b", (None, 4))]
    other = sc.parallelize([("a", 2), ("c", 8)])
    assert sorted(left.fullOuterJoin(other).collect()) == [
        ("a", (1, 2)),
        ("b", (4, None)),
        ("c", (None, 8)),
    ]
    assert left.join(right, numPartitions=5).getNumPartitions() == 5


def test_cogroup_and_group_with(sc: Any) -> None:
    x = sc.parallelize([("a", 1), ("b", 4)])
    y = sc.parallelize([("a", 2)])
    grouped = [(k, tuple(map(list, vs))) for k, vs in sorted(x.cogroup(y).collect())]
    assert grouped == [("a", ([1], [2])), ("b", ([4], []))]
    w = sc.parallelize([("a", 5), ("b", 6)])
    z = sc.parallelize([("b", 42)])
    many = [(k, tuple(map(list, vs))) for k, vs in sorted(w.groupWith(x, y, z).collect())]
    assert many == [("a", ([5], [1], [2], [])), ("b", ([6], [4], [], [42]))]


def test_subtract_and_intersection(sc: Any) -> None:
    x = sc.parallelize([("a", 1), ("b", 4), ("b", 5), ("a", 3)])
    y = sc.parallelize([("a", 3), ("c", None)])
    assert sorted(x.subtract(y).collect()) == [("a", 1), ("b", 4), ("b", 5)]
    y2 = sc.parallelize([("a", 3), ("c", None)])
    z = sc.parallelize([("a", 1), ("b", 4), ("b", 5), ("a", 2)])
    assert sorted(z.subtractByKey(y2).collect()) == [("b", 4), ("b", 5)]
    a = sc.parallelize([1, 10, 2, 3, 4, 5])
    b = sc.parallelize([1, 6, 2, 3, 7, 8])
    assert sorted(a.intersection(b).collect()) == [1, 2, 3]


def test_partition_by_places_int_keys_by_hash(sc: Any) -> None:
    pairs = sc.parallelize([1, 2, 3, 4, 2, 4, 1]).map(lambda x: (x, x))
    parts = pairs.partitionBy(2).glom().collect()
    assert [sorted(p) for p in parts] == [
        [(2, 2), (2, 2), (4, 4), (4, 4)],
        [(1, 1), (1, 1), (3, 3)],
    ]
    custom = pairs.partitionBy(3, lambda k: k)
    assert [sorted(p) for p in custom.glom().collect()] == [
        [(3, 3)],
        [(1, 1), (1, 1), (4, 4), (4, 4)],
        [(2, 2), (2, 2)],
    ]


def test_partitioned_rdd_joined_with_itself_needs_no_new_shuffle(sc: Any) -> None:
    rdd = sc.parallelize(range(10)).map(lambda x: (x, x))
    parted = rdd.partitionBy(2)
    assert parted.union(parted).getNumPartitions() == 2
    assert parted.union(rdd).getNumPartitions() == rdd.getNumPartitions() + 2
    tracker = sc.statusTracker()

    def stages_of_job_in(group: str, action: Any) -> tuple[Any, int]:
        sc.setJobGroup(group, "stage count check", True)
        result = action()
        job_ids = tracker.getJobIdsForGroup(group)
        assert len(job_ids) == 1
        return result, len(tracker.getJobInfo(job_ids[0]).stageIds)

    joined, stages = stages_of_job_in("self-join", lambda: sorted(parted.join(parted).collect()))
    assert joined[0] == (0, (0, 0)) and len(joined) == 10 and stages == 2
    joined, stages = stages_of_job_in("other-join", lambda: sorted(parted.join(rdd).collect()))
    assert joined[0] == (0, (0, 0)) and len(joined) == 10 and stages == 3
    grouped, stages = stages_of_job_in(
        "self-cogroup", lambda: sorted(parted.cogroup(parted).collect())
    )
    assert [list(v) for v in grouped[0][1]] == [[0], [0]] and stages == 2
    grouped, stages = stages_of_job_in(
        "other-cogroup", lambda: sorted(parted.cogroup(rdd).collect())
    )
    assert [list(v) for v in grouped[0][1]] == [[0], [0]] and stages == 3


def test_sort_by_key(sc: Any) -> None:
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    expected = [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    assert sc.parallelize(tmp).sortByKey().first() == ("1", 3)
    assert sc.parallelize(tmp).sortByKey(True, 1).collect() == expected
    assert sc.parallelize(tmp).sortByKey(True, 2).collect() == expected
    assert sc.parallelize(tmp).sortByKey(False).collect() == expected[::-1]
    words = [("Mary", 1), ("had", 2), ("a", 3), ("little", 4), ("lamb", 5)]
    words += [("whose", 6), ("fleece", 7), ("was", 8), ("white", 9)]
    by_lower = sc.parallelize(words).sortByKey(True, 3, keyfunc=lambda k: k.lower()).collect()
    assert [k for k, _ in by_lower] == [
        "a",
        "fleece",
        "had",
        "lamb",
        "little",
        "Mary",
        "was",
        "white",
        "whose",
    ]
    assert sc.parallelize(zip([], [], strict=True)).sortByKey().collect() == []


def test_sort_by_key_range_partition_layout(sc: Any) -> None:
    # Small inputs are sampled whole, so the range bounds are exactly PySpark's.
    seq = [(i * 59 % 101, i) for i in range(101)]
    rdd = sc.parallelize(seq)
    for ascending in (True, False):
        ordered = rdd.sortByKey(ascending=ascending, numPartitions=5)
        assert ordered.collect() == sorted(seq, reverse=not ascending)
    sizes = rdd.sortByKey(numPartitions=5).glom().map(len).collect()
    assert sizes == [21, 20, 20, 20, 20]
    bounds = rdd.sortByKey(numPartitions=5).keys().glom().map(lambda p: (p[0], p[-1])).collect()
    assert bounds == [(0, 20), (21, 40), (41, 60), (61, 80), (81, 100)]
    sizes = rdd.sortByKey(ascending=False, numPartitions=5).glom().map(len).collect()
    assert sizes == [20, 20, 20, 20, 21]
    keys = sc.parallelize([(k, None) for k in [5, 1, 9, 3, 7, 2, 8]], 2)
    assert keys.sortByKey(numPartitions=3).keys().glom().collect() == [[1, 2, 3], [5, 7], [8, 9]]
    descending = keys.sortByKey(False, numPartitions=3).keys().glom().collect()
    assert descending == [[9, 8], [7, 5], [3, 2, 1]]


def test_sort_by(sc: Any) -> None:
    tmp = [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    by_first = sc.parallelize(tmp).sortBy(lambda x: x[0]).collect()
    assert by_first == [("1", 3), ("2", 5), ("a", 1), ("b", 2), ("d", 4)]
    by_second = sc.parallelize(tmp).sortBy(lambda x: x[1]).collect()
    assert by_second == [("a", 1), ("b", 2), ("1", 3), ("d", 4), ("2", 5)]
    descending = sc.parallelize(range(20), 3).sortBy(lambda x: x, ascending=False, numPartitions=4)
    assert descending.collect() == list(range(19, -1, -1))
    assert descending.getNumPartitions() == 4


def test_repartition_and_sort_within_partitions(sc: Any) -> None:
    rdd = sc.parallelize([(0, 5), (3, 8), (2, 6), (0, 8), (3, 8), (1, 3)], 2)
    ascending = rdd.repartitionAndSortWithinPartitions(2, lambda k: k % 2, True).glom().collect()
    assert ascending == [[(0, 5), (0, 8), (2, 6)], [(1, 3), (3, 8), (3, 8)]]
    descending = rdd.repartitionAndSortWithinPartitions(2, lambda k: k % 2, False).glom().collect()
    assert descending == [[(2, 6), (0, 5), (0, 8)], [(3, 8), (3, 8), (1, 3)]]


def test_lookup(sc: Any) -> None:
    numbers = range(1000)
    rdd = sc.parallelize(zip(numbers, numbers, strict=True), 10)
    assert rdd.lookup(42) == [42]
    ordered = rdd.sortByKey()
    assert ordered.lookup(42) == [42]
    assert ordered.lookup(1024) == []
    grouped = sc.parallelize([(("a", "b"), "c")]).groupByKey()
    assert list(grouped.lookup(("a", "b"))[0]) == ["c"]


def test_collect_as_map(sc: Any) -> None:
    assert sc.parallelize([(1, 2), (3, 4)]).collectAsMap() == {1: 2, 3: 4}


@pytest.mark.parametrize("slices", [1, 3])
def test_word_count_pipeline(sc: Any, slices: int) -> None:
    lines = ["the quick brown fox", "jumps over the lazy dog", "the end"]
    counts = (
        sc.parallelize(lines, slices)
        .flatMap(str.split)
        .map(lambda w: (w, 1))
        .reduceByKey(add)
        .sortBy(lambda kv: (-kv[1], kv[0]))
        .collect()
    )
    assert counts[:3] == [("the", 3), ("brown", 1), ("dog", 1)]
    assert sum(c for _, c in counts) == 11


def test_word_count_rule_gives_what_the_general_path_gives(sc: Any, tmp_path: Any) -> None:
    # `scheduler/rdd/idioms.py`: map(lambda w: (w, C)) + reduceByKey(add or a + b lambda)
    # counts the keys map-side. Same pairs, order and types as the general path, which
    # a map the rule does not recognise (a closure, a bool constant) still takes.
    from scheduler.rdd.idioms import count_keys_locally

    path = tmp_path / "words.txt"
    path.write_text("to be or not to be\nthat is\n\nthe question to be\n" * 40)
    words = sc.textFile(str(path), 3).flatMap(lambda line: line.split())
    counted = words.map(lambda w: (w, 1)).reduceByKey(add, 2)
    local_side = counted.prev.shuffle_dependency.rdd
    assert local_side.func.func is count_keys_locally
    one = 1  # a closure: not recognised
    general = words.map(lambda w: (w, one)).reduceByKey(add, 2)
    assert general.prev.shuffle_dependency.rdd.func.func is not count_keys_locally
    result = counted.collect()
    assert result == general.collect()
    assert dict(result)["be"] == 120 and {type(v) for _, v in result} == {int}
    by_lambda = words.map(lambda w: (w, 3)).reduceByKey(lambda a, b: a + b, 2).collect()
    assert by_lambda == [(w, 3 * n) for w, n in result]
    flags = sc.parallelize([1, 2, 1], 1).map(lambda w: (w, True)).reduceByKey(add)
    # A bool constant is not counted: a lone True stays a bool.
    assert sorted((k, v, type(v)) for k, v in flags.collect()) == [(1, 2, int), (2, True, bool)]
    keys_equal = sc.parallelize([1, True, 1.0, 2, 1], 1).map(lambda w: (w, 1)).reduceByKey(add)
    assert sorted((k, v, type(k), type(v)) for k, v in keys_equal.collect()) == [
        (1, 4, int, int),
        (2, 1, int, int),
    ]
    with pytest.raises(Exception, match="unhashable type: 'list'"):
        sc.parallelize([[1], [2]], 1).map(lambda w: (w, 1)).reduceByKey(add).collect()


def test_sort_by_key_with_no_or_negative_partitions(sc: Any) -> None:
    pairs = sc.parallelize([(3, "c"), (1, "a")], 2)
    assert pairs.sortByKey(numPartitions=0).collect() == []
    assert pairs.sortByKey(numPartitions=0).getNumPartitions() == 0
    with pytest.raises(ValueError, match="Fraction must be nonnegative"):
        pairs.sortByKey(numPartitions=-1)
    empty = sc.parallelize([], 3)
    assert empty.sortByKey(numPartitions=-1).getNumPartitions() == 3
