"""RDD.toDebugString draws the lineage in Spark's layout: `+-(n)` where a shuffle
starts a stage, `|` bars for the narrow parents in it, the storage level in brackets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scheduler import SparkConf, SparkContext, StorageLevel


@pytest.fixture(scope="module")
def sc() -> Iterator[SparkContext]:
    conf = SparkConf().set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
    context = SparkContext("local[2]", "debug-string", conf=conf)
    yield context
    context.stop()


def _shape(text: bytes) -> list[str]:
    """The lines without call sites, each RDD's id as `#` (ids depend on earlier tests)."""
    import re

    lines = [re.sub(r" at \S+ at \S+:\d+", "", line) for line in text.decode().splitlines()]
    return [re.sub(r"\[\d+\]", "[#]", line) for line in lines]


def test_each_rdd_names_the_call_that_made_it(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(10), 2).map(lambda x: (x % 3, x)).reduceByKey(max)
    first = rdd.toDebugString().decode().splitlines()[0]
    assert first.startswith("(2) MapPartitionsRDD[")
    assert f" at reduceByKey at {__file__}:" in first and first.endswith(" []")


def test_a_shuffle_draws_a_new_stage(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(10), 2).map(lambda x: (x % 3, x)).reduceByKey(max)
    assert _shape(rdd.toDebugString()) == [
        "(2) MapPartitionsRDD[#] []",
        " |  ShuffledRDD[#] []",
        " +-(2) MapPartitionsRDD[#] []",
        "    |  ParallelCollectionRDD[#] []",
    ]


def test_a_union_of_a_shuffled_and_a_plain_rdd_under_a_second_shuffle(sc: SparkContext) -> None:
    a = sc.parallelize([(1, 2)], 2).reduceByKey(max, 3)
    b = sc.parallelize([(1, 3)], 2)
    assert _shape(a.union(b).groupByKey(4).toDebugString()) == [
        "(4) MapPartitionsRDD[#] []",
        " |  ShuffledRDD[#] []",
        " +-(5) MapPartitionsRDD[#] []",
        "    |  UnionRDD[#] []",
        "    |  MapPartitionsRDD[#] []",
        "    |  ShuffledRDD[#] []",
        "    +-(2) MapPartitionsRDD[#] []",
        "       |  ParallelCollectionRDD[#] []",
        "    |  ParallelCollectionRDD[#] []",
    ]


def test_a_persisted_rdd_shows_its_level(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(4), 12).map(str).persist(StorageLevel.MEMORY_AND_DISK)
    lines = _shape(rdd.toDebugString())
    assert lines[0] == "(12) MapPartitionsRDD[#] [Disk Memory Serialized 1x Replicated]"
    assert lines[1] == " |   ParallelCollectionRDD[#] []"  # the bar sits under "(12)"
