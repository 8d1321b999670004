"""PySpark compatibility: creating RDDs, element-wise transformations and actions.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_rdd.py and the doctests of python/pyspark/core/rdd.py
and core/context.py. Every expected value here was checked on PySpark 4.x
(local[2]) first; partition layouts (glom) are part of the contract.
"""

from __future__ import annotations

import math
from collections import defaultdict, namedtuple
from operator import add, itemgetter
from typing import Any

import pytest

Person = namedtuple("Person", "id firstName lastName")


def greeting() -> str:
    return "Hi"


# -- parallelize and range: how data is sliced into partitions ---------------------------


@pytest.mark.parametrize(
    ("data", "slices", "layout"),
    [
        (list(range(10)), 3, [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]),
        (range(10), 3, [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]),
        ([0, 2, 3, 4, 6], 5, [[0], [2], [3], [4], [6]]),
        (range(0, 6, 2), 5, [[], [0], [], [2], [4]]),
        (["a", "b", "c"], 2, [["a"], ["b", "c"]]),
        ([1, 2, 3, 4, 5], 3, [[1], [2, 3], [4, 5]]),
        ([1, 2, 3, 4, 5, 6, 7], 4, [[1], [2, 3], [4, 5], [6, 7]]),
        ([], 2, [[], []]),
        (range(5), 1, [[0, 1, 2, 3, 4]]),
        (range(0, 100, 7), 4, [[0, 7, 14], [21, 28, 35, 42], [49, 56, 63, 70], [77, 84, 91, 98]]),
        (range(10, 0, -3), 2, [[10, 7], [4, 1]]),
    ],
)
def test_parallelize_slices_like_pyspark(sc: Any, data: Any, slices: int, layout: Any) -> None:
    rdd = sc.parallelize(data, slices)
    assert rdd.getNumPartitions() == slices
    assert rdd.glom().collect() == layout


def test_parallelize_slices_a_huge_range_without_materializing_it(sc: Any) -> None:
    huge = sc.parallelize(range(10**12), 4)
    assert huge.take(3) == [0, 1, 2]
    firsts = huge.mapPartitions(lambda it: [next(iter(it))]).collect()
    assert firsts == [0, 250000000000, 500000000000, 750000000000]
    assert sc.range(10**12, numSlices=4).take(2) == [0, 1]


def test_parallelize_default_slices_follow_default_parallelism(sc: Any) -> None:
    assert sc.defaultParallelism == 2
    assert sc.parallelize(range(10)).glom().collect() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_parallelize_keeps_arbitrary_python_objects(sc: Any) -> None:
    people = [Person(1, "Jon", "Doe"), Person(2, "Jane", "Doe")]
    assert sc.parallelize(people).collect() == people
    assert sc.parallelize([range(10)]).map(itemgetter(1)).collect() == [1]
    assert sc.parallelize([range(10)]).map(itemgetter(2, 3)).collect() == [(2, 3)]


def test_range(sc: Any) -> None:
    assert sc.range(5).collect() == [0, 1, 2, 3, 4]
    assert sc.range(2, 4).collect() == [2, 3]
    assert sc.range(1, 7, 2).collect() == [1, 3, 5]
    assert sc.range(5, 0, -1).collect() == [5, 4, 3, 2, 1]
    assert sc.range(0, 5, -1).collect() == []
    assert sc.range(1, 1).count() == 0
    assert sc.range(1, 0, -1).count() == 1
    assert sc.range(0, 1 << 40, 1 << 39).count() == 2
    assert sc.range(5, numSlices=1).getNumPartitions() == 1
    assert sc.range(5, numSlices=10).getNumPartitions() == 10
    assert sc.range(10, numSlices=3).glom().collect() == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]


def test_empty_rdd(sc: Any) -> None:
    empty = sc.emptyRDD()
    assert empty.isEmpty()
    assert empty.collect() == []
    assert empty.count() == 0
    assert empty.sum() == 0
    assert empty.takeOrdered(3) == []
    assert not sc.parallelize([1]).isEmpty()
    assert sc.parallelize([], 3).isEmpty()


def test_rdd_ids_increase_with_each_new_rdd(sc: Any) -> None:
    rdd = sc.parallelize(range(10))
    first_id = rdd.id()
    assert rdd.id() == first_id
    derived = rdd.map(str).filter(bool)
    assert derived.id() == first_id + 1


# -- element-wise transformations -------------------------------------------------------


def test_map_flat_map_filter(sc: Any) -> None:
    rdd = sc.parallelize([2, 3, 4])
    assert rdd.map(lambda x: x * 10).collect() == [20, 30, 40]
    assert sorted(rdd.flatMap(lambda x: range(1, x)).collect()) == [1, 1, 1, 2, 2, 3]
    assert sorted(rdd.flatMap(lambda x: [(x, x), (x, x)]).collect()) == [
        (2, 2),
        (2, 2),
        (3, 3),
        (3, 3),
        (4, 4),
        (4, 4),
    ]
    assert sc.parallelize([1, 2, 3, 4, 5]).filter(lambda x: x % 2 == 0).collect() == [2, 4]


def test_map_partitions_and_with_index(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 3, 4], 2)

    def partition_sum(it: Any) -> Any:
        yield sum(it)

    assert rdd.mapPartitions(partition_sum).collect() == [3, 7]

    def tag_with_split(index: int, it: Any) -> Any:
        yield index

    assert sc.parallelize([1, 2, 3, 4], 4).mapPartitionsWithIndex(tag_with_split).sum() == 6
    indexed = rdd.mapPartitionsWithIndex(lambda i, it: ((i, x) for x in it)).collect()
    assert indexed == [(0, 1), (0, 2), (1, 3), (1, 4)]


def test_glom(sc: Any) -> None:
    assert sc.parallelize([1, 2, 3, 4], 2).glom().collect() == [[1, 2], [3, 4]]


def test_union_keeps_partitions_of_both_sides(sc: Any) -> None:
    a = sc.parallelize([1, 1, 2, 3], 2)
    b = sc.parallelize([4, 5], 1)
    both = a.union(b)
    assert both.getNumPartitions() == 3
    assert both.collect() == [1, 1, 2, 3, 4, 5]
    assert (a + b).collect() == [1, 1, 2, 3, 4, 5]
    assert sc.union([a, b, a]).count() == 10


def test_distinct(sc: Any) -> None:
    rdd = sc.parallelize((1, 2, 3) * 10, 10)
    assert rdd.getNumPartitions() == 10
    assert rdd.distinct().count() == 3
    fewer = rdd.distinct(5)
    assert fewer.getNumPartitions() == 5
    assert sorted(fewer.collect()) == [1, 2, 3]
    assert sorted(sc.parallelize([1, 1, 2, 3]).distinct().collect()) == [1, 2, 3]


def test_sample_is_deterministic_for_a_seed(sc: Any) -> None:
    rdd = sc.parallelize(range(100), 4)
    assert rdd.sample(False, 0.1, 2).collect() == rdd.sample(False, 0.1, 2).collect()
    assert rdd.sample(True, 0.2, 5).collect() == rdd.sample(True, 0.2, 5).collect()
    assert set(rdd.sample(False, 0.3, 10).collect()) != set(rdd.sample(False, 0.3, 20).collect())
    assert set(rdd.sample(True, 0.4, 11).collect()) != set(rdd.sample(True, 0.4, 21).collect())
    assert 6 <= rdd.sample(False, 0.1, 81).count() <= 14
    without = rdd.sample(False, 0.5, 7).collect()
    assert len(set(without)) == len(without)
    assert set(without) <= set(range(100))
    assert rdd.sample(False, 1.0, 3).count() == 100
    assert rdd.sample(False, 0.0, 3).count() == 0


def test_take_sample(sc: Any) -> None:
    rdd = sc.parallelize(range(1000), 1)
    assert len(rdd.takeSample(False, 10)) == 10
    picked = rdd.takeSample(False, 20, 1)
    assert len(set(picked)) == 20
    assert picked == rdd.takeSample(False, 20, 1)
    assert sorted(sc.parallelize(range(5), 2).takeSample(False, 10, 3)) == [0, 1, 2, 3, 4]
    assert len(sc.parallelize(range(5), 2).takeSample(True, 12, 3)) == 12


def test_zip(sc: Any) -> None:
    a = sc.parallelize(range(5))
    b = sc.parallelize(range(100, 105))
    assert a.zip(b).collect() == [(0, 100), (1, 101), (2, 102), (3, 103), (4, 104)]
    letters = sc.parallelize("abc", 2)
    assert set(letters.zip(letters).zip(letters).collect()) == {((x, x), x) for x in "abc"}
    assert set(letters.zip(letters.zip(letters)).collect()) == {(x, (x, x)) for x in "abc"}
    long_a = sc.parallelize(range(10000)).map(lambda i: "*" * (i % 100))
    long_b = sc.parallelize(range(10000, 20000)).map(lambda i: "*" * (i % 50))
    assert long_a.zip(long_b).count() == 10000


def test_zip_of_different_partition_counts_is_refused(sc: Any) -> None:
    a = sc.parallelize(range(5), 2)
    with pytest.raises(ValueError):
        a.zip(sc.parallelize(range(100, 106), 3))


def test_zip_of_different_partition_sizes_fails_the_job(sc: Any) -> None:
    a = sc.parallelize(range(5), 2)
    with pytest.raises(Exception):  # noqa: B017 - PySpark raises a Py4J/remote error here
        a.zip(sc.parallelize(range(100, 106), 2)).count()


def test_zip_with_index_and_unique_id_layouts(sc: Any) -> None:
    letters = sc.parallelize(["a", "b", "c", "d"], 3)
    assert letters.zipWithIndex().collect() == [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    five = sc.parallelize(["a", "b", "c", "d", "e"], 3)
    assert five.zipWithUniqueId().collect() == [("a", 0), ("b", 1), ("c", 4), ("d", 2), ("e", 5)]
    big = sc.parallelize(range(1000), 7).zipWithIndex()
    assert big.collect() == [(i, i) for i in range(1000)]


def test_cartesian(sc: Any) -> None:
    one_two = sc.parallelize([1, 2])
    assert sorted(one_two.cartesian(one_two).collect()) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    summed = one_two.cartesian(sc.parallelize([3, 4])).map(lambda xy: xy[0] + xy[1])
    assert sorted(summed.collect()) == [4, 5, 5, 6]
    ten = sc.parallelize(range(10), 2)
    expected = {((x, y), z) for x in range(10) for y in range(10) for z in range(10)}
    assert set(ten.cartesian(ten).cartesian(ten).collect()) == expected
    assert set(ten.cartesian(ten.zip(ten)).collect()) == {
        (x, (y, y)) for x in range(10) for y in range(10)
    }
    assert ten.cartesian(sc.parallelize(range(3), 3)).getNumPartitions() == 6


def test_repartition_and_coalesce(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 3, 4, 5, 6, 7], 4)
    assert len(rdd.repartition(2).glom().collect()) == 2
    assert len(rdd.repartition(10).glom().collect()) == 10
    assert sorted(rdd.repartition(3).collect()) == [1, 2, 3, 4, 5, 6, 7]
    assert sc.parallelize([1, 2, 3, 4, 5], 3).coalesce(1).glom().collect() == [[1, 2, 3, 4, 5]]
    assert rdd.coalesce(2).getNumPartitions() == 2
    assert sorted(rdd.coalesce(2).collect()) == [1, 2, 3, 4, 5, 6, 7]
    # Coalescing to more partitions without a shuffle cannot add partitions.
    assert rdd.coalesce(10).getNumPartitions() == 4


def test_repartition_spreads_evenly(sc: Any) -> None:
    source = sc.parallelize(range(1000), 2)
    sizes = source.repartition(20).glom().map(len).collect()
    assert len(sizes) == 20 and 0 not in sizes and sum(sizes) == 1000
    sizes = source.coalesce(20, True).glom().map(len).collect()
    assert len(sizes) == 20 and 0 not in sizes and sum(sizes) == 1000


# -- actions ----------------------------------------------------------------------------


def test_collect_count_first_take(sc: Any) -> None:
    rdd = sc.parallelize(range(100), 4)
    assert rdd.count() == 100
    assert rdd.first() == 0
    assert rdd.take(5) == [0, 1, 2, 3, 4]
    assert rdd.take(0) == []
    assert rdd.take(1000) == list(range(100))
    assert sc.parallelize([2, 3, 4, 5, 6]).cache().take(10) == [2, 3, 4, 5, 6]
    # take must skip empty leading partitions.
    assert sc.parallelize(range(3), 10).take(2) == [0, 1]
    assert sc.parallelize([], 4).take(2) == []


def test_first_of_empty_rdd_raises_value_error(sc: Any) -> None:
    with pytest.raises(ValueError, match="empty"):
        sc.parallelize([]).first()


def test_top_and_take_ordered(sc: Any) -> None:
    assert sc.parallelize([10, 4, 2, 12, 3]).top(1) == [12]
    assert sc.parallelize([2, 3, 4, 5, 6], 2).top(2) == [6, 5]
    assert sc.parallelize([10, 4, 2, 12, 3]).top(3, key=str) == [4, 3, 2]
    assert sc.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7]).takeOrdered(6) == [1, 2, 3, 4, 5, 6]
    by_minus = sc.parallelize([10, 1, 2, 9, 3, 4, 5, 6, 7], 2).takeOrdered(6, key=lambda x: -x)
    assert by_minus == [10, 9, 7, 6, 5, 4]


def test_reduce_fold_aggregate(sc: Any) -> None:
    assert sc.parallelize([1, 2, 3, 4, 5]).reduce(add) == 15
    assert sc.parallelize(2 for _ in range(10)).map(lambda x: 1).cache().reduce(add) == 10
    assert sc.parallelize([1, 2, 3, 4, 5]).fold(0, add) == 15
    assert sc.parallelize([1, 2, 3, 4], 2).fold(1, add) == 13  # zero once per partition + once
    seq = lambda acc, x: (acc[0] + x, acc[1] + 1)  # noqa: E731
    comb = lambda a, b: (a[0] + b[0], a[1] + b[1])  # noqa: E731
    assert sc.parallelize([1, 2, 3, 4]).aggregate((0, 0), seq, comb) == (10, 4)
    assert sc.parallelize([]).aggregate((0, 0), seq, comb) == (0, 0)


def test_reduce_of_empty_rdd_raises_value_error(sc: Any) -> None:
    with pytest.raises(ValueError):
        sc.parallelize([]).reduce(add)
    with pytest.raises(ValueError):
        sc.emptyRDD().max()


def test_mutable_zero_values_are_not_shared(sc: Any) -> None:
    def count_into(acc: Any, x: int) -> Any:
        acc[x] += 1
        return acc

    def merge_counts(a: Any, b: Any) -> Any:
        for key, value in b.items():
            a[key] += value
        return a

    truth = {i: 1 for i in range(10)}
    for slices in (1, 2):
        counts = sc.range(10, numSlices=slices).aggregate(
            defaultdict(int), count_into, merge_counts
        )
        assert dict(counts) == truth
    dicts = [
        defaultdict(int, {i: 1 for i in range(10)}),
        defaultdict(int, {i: 1 for i in range(3, 8)}),
        defaultdict(int, {i: 1 for i in range(4, 7)}),
    ]
    expected: dict[int, int] = defaultdict(int)
    for d in dicts:
        for key, value in d.items():
            expected[key] += value
    for slices in (1, 2):
        assert dict(sc.parallelize(dicts, slices).fold(defaultdict(int), merge_counts)) == expected


def test_sum_mean_max_min_and_friends(sc: Any) -> None:
    rdd = sc.parallelize([1.0, 5.0, 43.0, 10.0])
    assert rdd.max() == 43.0
    assert rdd.min() == 1.0
    assert rdd.max(key=str) == 5.0
    assert rdd.min(key=str) == 1.0
    assert sc.parallelize([1, 2, 3]).sum() == 6
    assert sc.parallelize([1, 2, 3]).mean() == 2.0
    assert sc.parallelize([1, 2, 3]).variance() == pytest.approx(0.6666666666666666)
    assert sc.parallelize([1, 2, 3]).stdev() == pytest.approx(0.816496580927726)
    assert sc.parallelize([1, 2, 3]).sampleVariance() == 1.0
    assert sc.parallelize([1, 2, 3]).sampleStdev() == 1.0


def test_stats_returns_a_stat_counter(sc: Any) -> None:
    stats = sc.parallelize([1.0, 2.0, 3.0, 4.0], 3).stats()
    assert stats.count() == 4
    assert stats.mean() == 2.5
    assert stats.sum() == 10.0
    assert stats.min() == 1.0 and stats.max() == 4.0
    assert stats.variance() == pytest.approx(1.25)
    assert stats.sampleStdev() == pytest.approx(1.2909944487358056)
    assert str(stats) == "(count: 4, mean: 2.5, stdev: 1.118033988749895, max: 4.0, min: 1.0)"
    empty = sc.parallelize([]).stats()
    assert empty.count() == 0 and empty.mean() == 0.0 and math.isnan(empty.variance())


def test_count_by_value(sc: Any) -> None:
    counts = sc.parallelize([1, 2, 1, 2, 2], 2).countByValue()
    assert sorted(counts.items()) == [(1, 2), (2, 3)]


def test_foreach_and_foreach_partition_run_on_every_element(sc: Any) -> None:
    total = sc.accumulator(0)

    def add_one(x: int) -> None:
        total.add(x)

    sc.parallelize([1, 2, 3, 4, 5], 3).foreach(add_one)
    assert total.value == 15

    partitions = sc.accumulator(0)

    def count_partition(it: Any) -> None:
        for _ in it:
            pass
        partitions.add(1)

    sc.parallelize(range(10), 4).foreachPartition(count_partition)
    assert partitions.value == 4


def test_histogram_with_given_buckets(sc: Any) -> None:
    empty = sc.parallelize([])
    assert empty.histogram([0, 10])[1] == [0]
    assert empty.histogram([0, 4, 10])[1] == [0, 0]
    outside = sc.parallelize([10.01, -0.01])
    assert outside.histogram([0, 10])[1] == [0]
    assert outside.histogram((0, 4, 10))[1] == [0, 0]
    one_to_four = sc.parallelize(range(1, 5))
    assert one_to_four.histogram([0, 10])[1] == [4]
    assert one_to_four.histogram([0, 4, 10])[1] == [3, 1]
    assert one_to_four.histogram([1, 4])[1] == [4]
    assert sc.parallelize([1, 2, 3, 5, 6]).histogram([0, 5, 10])[1] == [3, 2]
    assert sc.parallelize([1, 2, 3, 5, 6, None, float("nan")]).histogram([0, 5, 10])[1] == [3, 2]
    assert sc.parallelize([1, 2, 3, 5, 6]).histogram([0, 5, 11])[1] == [3, 2]
    mixed = sc.parallelize([-0.01, 0.0, 1, 2, 3, 5, 6, 11.0, 11.01])
    assert mixed.histogram([0, 5, 11])[1] == [4, 3]
    uneven = sc.parallelize(
        [-0.01, 0.0, 1, 2, 3, 5, 6, 11.01, 12.0, 199.0, 200.0, 200.1, None, float("nan")]
    )
    assert uneven.histogram([0.0, 5.0, 11.0, 12.0, 200.0])[1] == [4, 2, 1, 3]
    infinite = sc.parallelize([10.01, -0.01, float("nan"), float("inf")])
    assert infinite.histogram([float("-inf"), 0, float("inf")])[1] == [1, 2]
    fifty = sc.parallelize(range(51))
    assert fifty.histogram([0, 5, 25, 50]) == ([0, 5, 25, 50], [5, 20, 26])
    assert fifty.histogram([0, 15, 30, 45, 60]) == ([0, 15, 30, 45, 60], [15, 15, 15, 6])
    words = sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2)
    assert words.histogram(("a", "b", "c")) == (("a", "b", "c"), [2, 2])


def test_histogram_with_bucket_count(sc: Any) -> None:
    assert sc.parallelize(range(51)).histogram(2) == ([0, 25, 50], [25, 26])
    assert sc.parallelize(range(1, 5)).histogram(1) == ([1, 4], [4])
    assert sc.parallelize([1]).histogram(1) == ([1, 1], [1])
    assert sc.parallelize([1] * 4).histogram(1) == ([1, 1], [4])
    assert sc.parallelize(range(1, 5)).histogram(2) == ([1, 2.5, 4], [2, 2])
    assert sc.parallelize([1, 2]).histogram(5) == ([1 + 0.2 * i for i in range(6)], [1, 0, 0, 0, 1])
    assert sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2).histogram(1) == (["ab", "ef"], [5])


def test_histogram_bad_input(sc: Any) -> None:
    rdd = sc.parallelize([10.01, -0.01, float("nan"), float("inf")])
    with pytest.raises(ValueError):
        rdd.histogram([])
    with pytest.raises(ValueError):
        rdd.histogram([1])
    with pytest.raises(ValueError):
        rdd.histogram(0)
    with pytest.raises(TypeError):
        rdd.histogram({})
    with pytest.raises(ValueError):
        sc.parallelize([]).histogram(1)
    with pytest.raises(ValueError):
        sc.parallelize([1, float("inf")]).histogram(2)
    with pytest.raises(ValueError):
        sc.parallelize([float("nan")]).histogram(2)
    with pytest.raises(TypeError):
        sc.parallelize(["ab", "ac", "b", "bd", "ef"], 2).histogram(2)


def test_to_local_iterator(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 3])
    assert sorted(rdd.toLocalIterator()) == [1, 2, 3]
    assert list(sc.parallelize(range(10), 3).toLocalIterator()) == list(range(10))


def test_to_local_iterator_surfaces_task_failures(sc: Any) -> None:
    def fail(_: int) -> int:
        raise RuntimeError("local iterator error")

    with pytest.raises(Exception, match="local iterator error"):
        for _ in sc.range(10).map(fail).toLocalIterator():
            pass


def test_to_local_iterator_computes_partitions_only_when_reached(sc: Any) -> None:
    def fail_on_nine(x: int) -> int:
        if x == 9:
            raise RuntimeError("the last partition should not be computed")
        return x

    it = sc.range(12, numSlices=4).map(fail_on_nine).toLocalIterator()
    assert [next(it) for _ in range(4)] == [0, 1, 2, 3]


def test_a_redefined_global_function_is_shipped_anew(sc: Any) -> None:
    global greeting
    original = greeting
    try:
        assert sc.parallelize([1]).map(lambda _: greeting()).first() == "Hi"

        def greeting() -> str:
            return "Yeah"

        assert sc.parallelize([1]).map(lambda _: greeting()).first() == "Yeah"
    finally:
        greeting = original
