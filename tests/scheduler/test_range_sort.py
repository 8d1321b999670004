"""sortByKey's range-sorted shuffle: PySpark's sample, bounds and layouts from one pass.

The map stage runs first as a job of its own; its tasks count and sample their
pairs (PySpark's count() and sample() draws) and write sorted runs, which reduce
tasks read by key range. The layouts are checked against a reference that does
what PySpark's sortByKey does: sample, sort the sample, bisect every key.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scheduler import SparkConf, SparkContext
from scheduler.rdd.kinds import ShuffledRDD
from scheduler.shuffle.partitioner import Partitioner
from scheduler.shuffle.rangesort import RangeSort, SortedRun, write_sorted_run

pytestmark = pytest.mark.timeout(120)


def _conf(**extra: str) -> SparkConf:
    conf = SparkConf().set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
    for key, value in extra.items():
        conf.set(key.replace("_", "."), value)
    return conf


@pytest.fixture(scope="module")
def sc() -> Iterator[SparkContext]:
    context = SparkContext("local[2]", "range-sort", conf=_conf())
    yield context
    context.stop()


def _identity(x: Any) -> Any:
    return x


def reference_layout(
    sc: SparkContext,
    data: list[tuple[Any, Any]],
    slices: int,
    parts: int,
    ascending: bool = True,
    keyfunc: Callable[[Any], Any] = _identity,
) -> list[list[tuple[Any, Any]]]:
    """PySpark's sortByKey, step by step: count, sample, bounds, bisect, stable sort."""
    rdd = sc.parallelize(data, slices)
    fraction = min(parts * 20.0 / max(len(data), 1), 1.0)
    samples = sorted(rdd.sample(False, fraction, 1).map(lambda kv: kv[0]).collect(), key=keyfunc)
    bounds = [samples[int(len(samples) * (i + 1) / parts)] for i in range(parts - 1)]
    layout: list[list[tuple[Any, Any]]] = [[] for _ in range(parts)]
    for kv in data:  # partition order = data order for parallelize
        p = bisect.bisect_left(bounds, keyfunc(kv[0]))
        layout[p if ascending else parts - 1 - p].append(kv)
    return [sorted(p, key=lambda kv: keyfunc(kv[0]), reverse=not ascending) for p in layout]


@pytest.mark.parametrize(
    ("size", "slices", "budget"), [(0, 3, 60.0), (25, 3, 60.0), (5000, 4, 80.0)]
)
def test_the_map_stage_sample_is_pysparks_count_then_sample(
    sc: SparkContext, size: int, slices: int, budget: float
) -> None:
    rdd = sc.parallelize(range(size), slices).map(lambda i: ((i * 7919) % 1009, i))
    spec = RangeSort(4, _identity, operator.itemgetter(0), True, budget)
    shuffled = ShuffledRDD(rdd, Partitioner(4, spec), spec)
    samples = sc.run_map_stage(shuffled.shuffle_dependency)
    count, keys = spec.sampled_keys(samples[p] for p in sorted(samples))
    assert count == rdd.count() == size
    fraction = min(budget / max(size, 1), 1.0)
    assert keys == rdd.sample(False, fraction, 1).map(lambda kv: kv[0]).collect()
    if size > budget:
        assert 0 < len(keys) < 3 * budget


def test_a_large_sample_matches_too(sc: SparkContext) -> None:
    size = 200_000
    rdd = sc.parallelize(range(size), 8).map(lambda i: ((i * 7919) % 1009, i))
    spec = RangeSort(8, _identity, operator.itemgetter(0), True, 160.0)
    samples = sc.run_map_stage(ShuffledRDD(rdd, Partitioner(8, spec), spec).shuffle_dependency)
    count, keys = spec.sampled_keys(samples[p] for p in sorted(samples))
    assert count == size
    assert keys == rdd.sample(False, 160.0 / size, 1).map(lambda kv: kv[0]).collect()


CASES: list[tuple[str, list[tuple[Any, Any]], int, int, bool, Callable[[Any], Any]]] = [
    ("ints", [((i * 7919) % 20011, i) for i in range(30_000)], 5, 7, True, _identity),
    ("ints descending", [((i * 7919) % 20011, i) for i in range(30_000)], 5, 7, False, _identity),
    # Few distinct keys: whole chunks of one key, and chunks that straddle partitions.
    ("heavy duplicates", [(i % 3, i) for i in range(20_000)], 4, 5, True, _identity),
    (
        "strings by lower()",
        [(w, i) for i, w in enumerate(["b", "A", "a", "C", "d"] * 900)],
        3,
        3,
        True,
        str.lower,
    ),
    ("tuples", [((i % 7, -i % 5), i) for i in range(9_000)], 3, 4, False, _identity),
    (
        "NaN keys",
        [(x, i) for i, x in enumerate([3.0, float("nan"), 1.0, 2.0, 0.5] * 2000)],
        4,
        3,
        True,
        _identity,
    ),
]


@pytest.mark.parametrize(
    ("data", "slices", "parts", "ascending", "keyfunc"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_layouts_are_pysparks(
    sc: SparkContext,
    data: list[tuple[Any, Any]],
    slices: int,
    parts: int,
    ascending: bool,
    keyfunc: Callable[[Any], Any],
) -> None:
    got = sc.parallelize(data, slices).sortByKey(ascending, parts, keyfunc).glom().collect()
    expected = reference_layout(sc, data, slices, parts, ascending, keyfunc)
    assert [len(p) for p in got] == [len(p) for p in expected]
    assert repr(got) == repr(expected)  # repr: NaN equals NaN


def test_an_empty_rdd_is_returned_as_it_is(sc: SparkContext) -> None:
    empty = sc.parallelize([], 3)
    assert empty.sortByKey(numPartitions=5).getNumPartitions() == 3
    assert empty.sortByKey(numPartitions=5).collect() == []


def test_a_failing_keyfunc_fails_at_sortbykey_as_in_pyspark(sc: SparkContext) -> None:
    rdd = sc.parallelize([(1, "a"), (None, "b"), (3, "c")], 2)
    with pytest.raises(Exception, match="TypeError"):
        rdd.sortByKey(keyfunc=lambda k: k + 1)


def _read_all(spec: RangeSort, run: SortedRun, chunks: list[list[Any]]) -> list[list[Any]]:
    """What each reduce partition reads of `run`, as _shuffle's reader selects it."""
    parts = []
    for reduce_id in range(spec.num_partitions):
        mine: list[Any] = []
        first, last = spec.chunk_range(run, reduce_id)
        for i in range(first, last):
            ends = i in (first, last - 1)
            mine.extend(spec.own_part(chunks[i], reduce_id) if ends else chunks[i])
        parts.append(mine)
    return parts


def test_a_run_out_of_order_is_never_read_by_range() -> None:
    """NaN-like keys take the plain shuffle (the NaN layout test): reading such a run by
    range could lose or repeat pairs, so the reader refuses to."""
    spec = RangeSort(3, _identity, operator.itemgetter(0), True, 60.0)
    spec.bounds = [1.0, 2.0]
    nan = float("nan")
    chunks = [[(0.5, 0), (nan, 1), (3.0, 2)], [(2.5, 3), (nan, 4), (0.1, 5)]]
    run = SortedRun((0, 10, 20), (0.5, 2.5), (3.0, 0.1), False)
    with pytest.raises(RuntimeError, match="out of order"):
        _read_all(spec, run, chunks)


@pytest.mark.parametrize("ascending", [True, False])
def test_an_ordered_run_is_cut_exactly_where_the_partitioner_cuts(ascending: bool) -> None:
    spec = RangeSort(4, _identity, operator.itemgetter(0), ascending, 60.0)
    spec.bounds = [10, 20, 30]
    pairs = [(k, i) for i, k in enumerate(sorted([0, 5, 10, 10, 11, 15, 20, 20, 25, 31, 40] * 3))]
    chunks = [pairs[i : i + 4] for i in range(0, len(pairs), 4)]
    run = SortedRun(
        tuple(range(len(chunks) + 1)),
        tuple(c[0][0] for c in chunks),
        tuple(c[-1][0] for c in chunks),
        True,
    )
    expected: list[list[Any]] = [[] for _ in range(4)]
    for kv in pairs:
        expected[spec(kv[0])].append(kv)
    assert _read_all(spec, run, chunks) == expected


def test_big_shuffles_take_the_plain_range_shuffle_with_the_same_layout(
    sc: SparkContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scheduler.shuffle.rangesort as rangesort

    data = CASES[0][1]
    expected = reference_layout(sc, data, 5, 7, False)
    monkeypatch.setattr(rangesort, "_MAX_INDEX_KEYS", 10)
    jobs_before = len(sc.statusTracker().getJobIdsForGroup())
    got = sc.parallelize(data, 5).sortByKey(False, 7).glom().collect()
    assert got == expected
    assert len(sc.statusTracker().getJobIdsForGroup()) == jobs_before + 2  # sample, sort


def test_large_keys_get_fewer_chunks_so_the_index_stays_small(
    sc: SparkContext, tmp_path: Any
) -> None:
    spec = RangeSort(4, _identity, operator.itemgetter(0), True, 80.0)
    assert spec.chunks_per_run() == spec.chunks_per_run(10.0) == 64
    assert spec.chunks_per_run(1 << 20) == 4  # one per partition, not fewer
    data = [(f"{(i * 7919) % 4001:05d}" + "x" * 4000, i) for i in range(4000)]
    run, (count, _, ordered) = write_sorted_run(iter(data), spec, 0, str(tmp_path / "run"), 4096)
    assert count == 4000 and ordered
    # About 64 KiB of keys: 7 chunks of 4 KB first and last keys (16 with small keys).
    assert 4 <= len(run.first_keys) <= 8
    assert sc.parallelize(data, 2).sortByKey(True, 4).collect() == sorted(data)
