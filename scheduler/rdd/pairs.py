"""Key-value operations of RDDs (PySpark's pair-RDD methods), as a mixin of RDD.

Aggregations combine map-side before the shuffle where the operation allows
and merge with a memory budget after it (`scheduler/shuffle/aggregation.py`); joins
shuffle the union of their inputs as PySpark does (so co-partitioned inputs need no
new shuffle) and hash-join each partition's two sides (`scheduler/shuffle/hashjoin.py`);
cogroup is a tagged union + groupByKey. This module only builds lineage; it never
runs anything itself except through actions.
"""

# Mixin methods are typed with `self: RDD`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

import copy
import functools
import operator
import os
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from typing import TYPE_CHECKING, Any

from scheduler.rdd.idioms import count_keys_rule, is_plain_add
from scheduler.shuffle.aggregation import (
    Aggregator,
    ExternalGroupBy,
    ExternalMerger,
    ExternalSorter,
    ResultIterable,
)
from scheduler.shuffle.hashjoin import hash_join
from scheduler.shuffle.partitioner import Partitioner, portable_hash
from scheduler.shuffle.rangesort import RangeSort, sample_partition
from scheduler.shuffle.sampling import StratifiedSampler

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["PairFunctions"]


def _identity(x: Any) -> Any:
    return x


def _combine_locally(agg: Aggregator, memory_mb: float, iterator: Iterator[Any]) -> Iterator[Any]:
    """combineByKey's map-side combine (a module function: pickled by reference)."""
    merger = ExternalMerger(agg, memory_mb)
    merger.mergeValues(iterator)
    return merger.items()


def _pair_key(keyfunc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The sort key of a (key, value) pair; a C-level getter for the identity keyfunc."""
    if keyfunc is _identity:
        return operator.itemgetter(0)
    return lambda kv: keyfunc(kv[0])


class PairFunctions:
    """Methods for RDDs of (key, value) pairs."""

    def keys(self: RDD) -> RDD:
        """The keys."""
        return self.map(operator.itemgetter(0))  # no Python frame per pair

    def values(self: RDD) -> RDD:
        """The values."""
        return self.map(operator.itemgetter(1))

    def mapValues(self: RDD, f: Callable[[Any], Any]) -> RDD:
        """Apply `f` to each value, keeping keys and partitioning."""
        return self.map(lambda kv: (kv[0], f(kv[1])), True)

    def flatMapValues(self: RDD, f: Callable[[Any], Iterable[Any]]) -> RDD:
        """Apply `f` to each value and flatten, keeping keys and partitioning."""
        return self.flatMap(lambda kv: ((kv[0], x) for x in f(kv[1])), True)

    def collectAsMap(self: RDD) -> dict[Any, Any]:
        """The pairs as a dict."""
        return dict(self.collect())

    def countByKey(self: RDD) -> dict[Any, int]:
        """How many pairs have each key."""
        return self.map(lambda x: x[0]).countByValue()

    def lookup(self: RDD, key: Any) -> list[Any]:
        """The values for `key` (one partition scanned when the RDD has a partitioner)."""
        values = self.filter(lambda kv: kv[0] == key).values()
        partitioner = self.partitioner
        hash_safe = "PYTHONHASHSEED" in os.environ or not isinstance(key, (str, bytes, tuple))
        if partitioner is not None and (
            partitioner.partitionFunc is not portable_hash or hash_safe
        ):
            return self.ctx.runJob(values, lambda x: x, [partitioner(key)])
        return values.collect()

    def reduceByKeyLocally(self: RDD, func: Callable[[Any, Any], Any]) -> dict[Any, Any]:
        """Merge the values of each key with `func`, returning a dict to the driver."""
        from scheduler.rdd.rdd import fail_on_stopiteration

        func = fail_on_stopiteration(func)

        def reduce_partition(iterator: Iterator[Any]) -> Iterator[dict[Any, Any]]:
            m: dict[Any, Any] = {}
            for k, v in iterator:
                m[k] = func(m[k], v) if k in m else v
            yield m

        def merge_maps(m1: dict[Any, Any], m2: dict[Any, Any]) -> dict[Any, Any]:
            for k, v in m2.items():
                m1[k] = func(m1[k], v) if k in m1 else v
            return m1

        return self.mapPartitions(reduce_partition).reduce(merge_maps)  # type: ignore[no-any-return]

    # -- shuffles ---------------------------------------------------------------------

    def partitionBy(
        self: RDD,
        numPartitions: int | None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD:
        """Hash-partition the pairs by key into `numPartitions` partitions."""
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        partitioner = Partitioner(numPartitions, partitionFunc)
        if self.partitioner == partitioner:
            return self
        from scheduler.rdd.kinds import ShuffledRDD

        return ShuffledRDD(self, partitioner)

    def combineByKey(
        self: RDD,
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD:
        """Combine values per key: map-side with `mergeValue`, then `mergeCombiners`."""
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        memory = self._memory_limit()
        agg = Aggregator(createCombiner, mergeValue, mergeCombiners)
        agg.adds = (
            createCombiner is _identity
            and (mergeValue is operator.add or is_plain_add(mergeValue))
            and (mergeCombiners is operator.add or is_plain_add(mergeCombiners))
        )
        combine_locally = functools.partial(_combine_locally, agg, memory * 0.9)
        locally_combined = self.mapPartitions(combine_locally, preservesPartitioning=True)
        if agg.adds and self.ctx.profiler_collector is None:
            # A word count's `map(lambda w: (w, 1))` + add: count the keys instead
            # (`scheduler/rdd/idioms.py`; kept off when profiling, which counts calls).
            from scheduler.rdd.kinds import MapPartitionsRDD

            if isinstance(locally_combined, MapPartitionsRDD):
                counted = count_keys_rule(locally_combined.func, combine_locally, agg, memory * 0.9)
                if counted is not None:
                    locally_combined.func = counted
        shuffled = locally_combined.partitionBy(numPartitions, partitionFunc)

        def merge_combiners(iterator: Iterator[Any]) -> Iterator[Any]:
            merger = ExternalMerger(agg, memory)
            merger.mergeCombiners(iterator)
            return merger.items()

        return shuffled.mapPartitions(merge_combiners, preservesPartitioning=True)

    def reduceByKey(
        self: RDD,
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD:
        """Merge the values of each key with an associative, commutative `func`."""
        return self.combineByKey(_identity, func, func, numPartitions, partitionFunc)

    def aggregateByKey(
        self: RDD,
        zeroValue: Any,
        seqFunc: Callable[[Any, Any], Any],
        combFunc: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD:
        """Aggregate the values of each key from a (copied) `zeroValue`."""

        def create_zero() -> Any:
            return copy.deepcopy(zeroValue)

        return self.combineByKey(
            lambda v: seqFunc(create_zero(), v), seqFunc, combFunc, numPartitions, partitionFunc
        )

    def foldByKey(
        self: RDD,
        zeroValue: Any,
        func: Callable[[Any, Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
    ) -> RDD:
        """Fold the values of each key from a (copied) `zeroValue`."""
        return self.aggregateByKey(zeroValue, func, func, numPartitions, partitionFunc)

    def groupByKey(
        self: RDD,
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] | None = None,
    ) -> RDD:
        """Group the values of each key into one iterable (spills beyond the memory budget)."""
        if partitionFunc is None:
            partitionFunc = portable_hash
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()

        def create_combiner(x: Any) -> list[Any]:
            return [x]

        def merge_value(xs: list[Any], x: Any) -> list[Any]:
            xs.append(x)
            return xs

        def merge_combiners(a: list[Any], b: list[Any]) -> list[Any]:
            a.extend(b)
            return a

        memory = self._memory_limit()
        agg = Aggregator(create_combiner, merge_value, merge_combiners)
        agg.lists = True

        def combine(iterator: Iterator[Any]) -> Iterator[Any]:
            merger = ExternalMerger(agg, memory * 0.9)
            merger.mergeValues(iterator)
            return merger.items()

        locally_combined = self.mapPartitions(combine, preservesPartitioning=True)
        shuffled = locally_combined.partitionBy(numPartitions, partitionFunc)

        def group(iterator: Iterator[Any]) -> Iterator[Any]:
            merger = ExternalGroupBy(agg, memory)
            merger.mergeCombiners(iterator)
            return merger.items()

        return shuffled.mapPartitions(group, True).mapValues(ResultIterable)

    def sortByKey(
        self: RDD,
        ascending: bool = True,
        numPartitions: int | None = None,
        keyfunc: Callable[[Any], Any] = _identity,
    ) -> RDD:
        """Sort by key into range partitions (samples the keys to find the ranges)."""
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        memory = self._memory_limit()

        def sort_partition(iterator: Iterator[Any]) -> Iterator[Any]:
            sorter = ExternalSorter(memory * 0.9)
            return iter(sorter.sorted(iterator, key=_pair_key(keyfunc), reverse=not ascending))

        if numPartitions == 1:
            rdd = self.coalesce(1) if self.getNumPartitions() > 1 else self
            return rdd.mapPartitions(sort_partition, True)
        if numPartitions < 1:
            # As PySpark: it counts, then samples with fraction numPartitions * 20 / size.
            if not self.count():
                return self
            if numPartitions < 0:
                raise ValueError("Fraction must be nonnegative.")
            return self.partitionBy(0).mapPartitions(sort_partition, True)  # no partitions
        spec = RangeSort(
            numPartitions, keyfunc, _pair_key(keyfunc), ascending, numPartitions * 20.0
        )
        if not spec.fits(self.getNumPartitions()):
            # Too many map tasks times partitions to index: count and sample (one job,
            # where PySpark runs count() and sample()), then the plain range shuffle.
            def sample(split: int, iterator: Iterator[Any]) -> Iterator[Any]:
                yield sample_partition(spec, split, iterator)

            if not spec.bounds_from_samples(self.mapPartitionsWithIndex(sample).collect()):
                return self
            return self.partitionBy(numPartitions, spec).mapPartitions(sort_partition, True)
        # The shuffle's map stage runs now, as a job (where PySpark runs count() and
        # sample()): its tasks sort their pairs and sample the keys; the bounds follow.
        from scheduler.rdd.kinds import ShuffledRDD

        shuffled = ShuffledRDD(self, Partitioner(numPartitions, spec), spec)
        samples = self.ctx.run_map_stage(shuffled.shuffle_dependency)
        if not spec.bounds_from_samples(samples[p] for p in sorted(samples)):
            return self
        if not spec.readable_by_range:
            # NaN-like keys: the plain range shuffle, one more pass, PySpark's exact output.
            return self.partitionBy(numPartitions, spec).mapPartitions(sort_partition, True)
        return shuffled.mapPartitions(sort_partition, True)

    def repartitionAndSortWithinPartitions(
        self: RDD,
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] = portable_hash,
        ascending: bool = True,
        keyfunc: Callable[[Any], Any] = _identity,
    ) -> RDD:
        """Repartition by `partitionFunc`, then sort each partition by key."""
        if numPartitions is None:
            numPartitions = self._default_reduce_partitions()
        memory = self._memory_limit()

        def sort_partition(iterator: Iterator[Any]) -> Iterator[Any]:
            sorter = ExternalSorter(memory * 0.9)
            return iter(sorter.sorted(iterator, key=_pair_key(keyfunc), reverse=not ascending))

        return self.partitionBy(numPartitions, partitionFunc).mapPartitions(sort_partition, True)

    # -- joins ------------------------------------------------------------------------

    def cogroup(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """For each key, a tuple of the value iterables of this RDD and `other`."""
        return _cogroup([self, other], numPartitions)

    def groupWith(self: RDD, other: RDD, *others: RDD) -> RDD:
        """`cogroup` of several RDDs."""
        return _cogroup([self, other, *others], None)

    def join(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """Inner join: (k, (v, w)) for each matching pair."""
        return _join(self, other, numPartitions, False, False)

    def leftOuterJoin(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """Left outer join: w is None when `other` lacks the key."""
        return _join(self, other, numPartitions, False, True)

    def rightOuterJoin(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """Right outer join: v is None when this RDD lacks the key."""
        return _join(self, other, numPartitions, True, False)

    def fullOuterJoin(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """Full outer join: None on the side that lacks the key."""
        return _join(self, other, numPartitions, True, True)

    def subtractByKey(self: RDD, other: RDD, numPartitions: int | None = None) -> RDD:
        """Pairs whose key is not in `other`."""

        def filter_func(pair: Any) -> bool:
            _key, (val1, val2) = pair
            return bool(val1) and not val2

        return self.cogroup(other, numPartitions).filter(filter_func).flatMapValues(lambda x: x[0])

    def sampleByKey(
        self: RDD, withReplacement: bool, fractions: dict[Any, float], seed: int | None = None
    ) -> RDD:
        """Sample each key's pairs with its own fraction."""
        for fraction in fractions.values():
            # PySpark checks with an assert: the same exception type for the same mistake.
            if not fraction >= 0.0:
                raise AssertionError(f"Negative fraction value: {fraction}")
        return self.mapPartitionsWithIndex(
            StratifiedSampler(withReplacement, fractions, seed).func, True
        )


def _pairing(pad_left: bool, pad_right: bool) -> Callable[[Iterable[Any]], list[Any]]:
    """The (v, w) pairs of one key's tagged values; a padded side that is empty yields None."""

    def dispatch(seq: Iterable[Any]) -> list[Any]:
        vbuf, wbuf = _split_tagged(seq)
        if pad_left and not vbuf:
            vbuf.append(None)
        if pad_right and not wbuf:
            wbuf.append(None)
        return [(v, w) for v in vbuf for w in wbuf]

    return dispatch


def _split_tagged(seq: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    vbuf: list[Any] = []
    wbuf: list[Any] = []
    for n, v in seq:
        if n == 1:
            vbuf.append(v)
        elif n == 2:
            wbuf.append(v)
    return vbuf, wbuf


def _group_tagged(union: RDD, num_partitions: int | None) -> RDD:
    """(key, [tagged values]) of a union of tagged pair RDDs, grouped without a map-side combine.

    A join's keys rarely repeat within a map partition, so combining them there (as
    groupByKey does) only builds a dict of every record, frees it and pickles the same
    values again: about half of a large join's CPU, and a working set per map task that
    grows with the input. Values are grouped once, on the reduce side, within the
    memory budget (spilling as groupByKey does), in map order as before.
    """
    memory = union._memory_limit()
    agg = Aggregator(_single, _append, _extend)
    agg.lists = True

    def group(iterator: Iterator[Any]) -> Iterator[Any]:
        merger = ExternalGroupBy(agg, memory)
        merger.mergeValues(iterator)
        return merger.items()

    return union.partitionBy(num_partitions).mapPartitions(group, True)


def _single(x: Any) -> list[Any]:
    return [x]


def _append(xs: list[Any], x: Any) -> list[Any]:
    xs.append(x)
    return xs


def _extend(a: list[Any], b: list[Any]) -> list[Any]:
    a.extend(b)
    return a


def _join(rdd: RDD, other: RDD, num_partitions: int | None, pad_left: bool, pad_right: bool) -> RDD:
    """A join with PySpark's stages, partitions and output order, without tagged values.

    PySpark tags each value with its side, shuffles the union and groups each key's
    tagged values into lists (a cogroup). Here the union is shuffled untagged and each
    reduce task reads its two sides apart (the left's map outputs come first) and
    hash-joins them: no tag tuple per record on the map side, no list per key on
    the reduce side (about 2.5x less CPU for a 2M x 2M join). Co-partitioned inputs
    are read side by side with no shuffle, as before. A union of inputs partitioned
    alike but shuffled to another partition count mixes the sides within map tasks:
    that case keeps the tagged join.
    """
    from scheduler.rdd.kinds import HashJoinedRDD, PartitionerAwareUnionRDD, ShuffledRDD

    union = rdd.union(other)
    if num_partitions is None:
        num_partitions = union._default_reduce_partitions()
    mixed = isinstance(union, PartitionerAwareUnionRDD) and union.partitioner != Partitioner(
        num_partitions, portable_hash
    )
    source = union if mixed else union.partitionBy(num_partitions)
    apart = isinstance(source, (ShuffledRDD, PartitionerAwareUnionRDD))
    if mixed or not apart:
        return _tagged_join(rdd, other, num_partitions, _pairing(pad_left, pad_right))
    join = functools.partial(hash_join, union._memory_limit(), pad_left, pad_right)
    return HashJoinedRDD(source, rdd, other, join)


def _tagged_join(
    rdd: RDD, other: RDD, num_partitions: int | None, dispatch: Callable[[Iterable[Any]], list[Any]]
) -> RDD:
    vs = rdd.mapValues(lambda v: (1, v))
    ws = other.mapValues(lambda v: (2, v))

    def pairs(groups: Iterator[Any]) -> Iterator[Any]:
        for key, tagged in groups:
            if len(tagged) == 2:
                # The common case of a key join: one value on each side, whatever the padding.
                (a, x), (b, y) = tagged
                if a != b:
                    yield (key, (x, y) if a == 1 else (y, x))
                    continue
            for pair in dispatch(tagged):
                yield (key, pair)

    return _group_tagged(vs.union(ws), num_partitions).mapPartitions(pairs, True)


def _cogroup(rdds: list[RDD], num_partitions: int | None) -> RDD:
    def make_mapper(i: int) -> Callable[[Any], Any]:
        return lambda v: (i, v)

    tagged = [rdd.mapValues(make_mapper(i)) for i, rdd in enumerate(rdds)]
    union = reduce(lambda acc, other: acc.union(other), tagged)
    width = len(tagged)

    def dispatch(seq: Iterable[Any]) -> tuple[ResultIterable[Any], ...]:
        bufs: list[list[Any]] = [[] for _ in range(width)]
        for n, v in seq:
            bufs[n].append(v)
        return tuple(ResultIterable(vs) for vs in bufs)

    return _group_tagged(union, num_partitions).mapValues(dispatch)
