"""Actions of RDDs that aggregate on the driver (reduce, fold, stats, top, take...), as a mixin.

Each one maps the partitions on the executors and combines the per-partition
results on the driver, exactly as PySpark's implementations do, so results
(including which partitions `take` scans) match. Runs jobs only through
`SparkContext.runJob` / `collect`.
"""

# Mixin methods are typed with `self: RDD`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

import collections
import copy
import functools
import heapq
import itertools
import math
import operator
import random
import sys
from collections import _count_elements, defaultdict  # type: ignore[attr-defined]
from collections.abc import Callable, Iterator
from functools import reduce
from typing import TYPE_CHECKING, Any

from scheduler.rdd.statcounter import StatCounter
from scheduler.shuffle.drain import drain_parts

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["ActionFunctions"]


def _ilen(iterator: Iterator[Any]) -> int:
    """How many items `iterator` yields, counted at C speed (zip with a counter, drained)."""
    counter = itertools.count()
    collections.deque(zip(iterator, counter, strict=False), maxlen=0)
    return next(counter)


def _fail_on_stopiteration(f: Callable[..., Any]) -> Callable[..., Any]:
    from scheduler.rdd.rdd import fail_on_stopiteration

    return fail_on_stopiteration(f)


def _aggregator(zero: Any, seq: Callable[[Any, Any], Any]) -> Callable[..., Iterator[Any]]:
    """Fold a partition from `zero` with `seq` (a partial: pickled by reference)."""
    return functools.partial(_aggregate_partition, zero, seq)


def _aggregate_partition(
    zero: Any, seq: Callable[[Any, Any], Any], iterator: Iterator[Any]
) -> Iterator[Any]:
    # Every task starts from its own copy, as each PySpark task unpickles its own.
    acc = copy.deepcopy(zero)
    for obj in iterator:
        acc = seq(acc, obj)
    yield acc


#: Before Python 3.12, sum() adds exact ints and floats as a plain left fold: each step is
#: the `+` that operator.add runs (exact int arithmetic; one IEEE double addition, rounded,
#: as float.__add__ does), kept in a C long or double instead of a new object per item, and
#: any other item goes through that same `+`. From 3.12 on sum() compensates the rounding
#: of float additions (Neumaier), which would change a reduce's result in its last bits.
_SUM_IS_LEFT_FOLD = sys.version_info < (3, 12)


def _reduce_partition(f: Callable[[Any, Any], Any], iterator: Iterator[Any]) -> Iterator[Any]:
    """One partition of `reduce(f)` (a module function: a partial of it pickles by reference)."""
    items, finish = drain_parts(iterator)
    iterator = iter(items)
    try:
        initial = next(iterator)
    except StopIteration:
        finish()
        return
    # `f` itself, not its StopIteration-checking wrapper, on every item (3x less time per
    # item): reduce() ends on the iterator's own end without an exception, so a
    # StopIteration out of it can only come from `f`.
    try:
        if f is operator.add and _SUM_IS_LEFT_FOLD and type(initial) in (int, float):
            # reduce(add) over numbers, the ML loop's sum: 30% less time per item.
            value = sum(iterator, initial)
        else:
            value = reduce(f, iterator, initial)
    except StopIteration as exc:
        raise RuntimeError(
            "Caught StopIteration thrown from user's code; failing the task"
        ) from exc
    finish()
    yield value


def _sum_partition(iterator: Iterator[Any]) -> list[Any]:
    return [sum(iterator)]


def _count_partition(iterator: Iterator[Any]) -> list[int]:
    items, finish = drain_parts(iterator)
    count = _ilen(iter(items))
    finish()
    return [count]


def _count_split(_split: int, iterator: Iterator[Any]) -> list[int]:
    """One partition of `count()` (a module function: a stage pickles it by reference)."""
    return _count_partition(iterator)


def _tree_level(partial: RDD, num_partitions: int, comb: Callable[[Any, Any], Any]) -> RDD:
    """One level of treeAggregate: partition i's values go to key i % num_partitions."""

    def keyed(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        for obj in iterator:
            yield index % num_partitions, obj

    return partial.mapPartitionsWithIndex(keyed).reduceByKey(comb, num_partitions).values()


def _count_values(iterator: Iterator[Any]) -> Iterator[dict[Any, int]]:
    """countByValue's count of one partition: `Counter`'s C loop over a plain dict (the
    same lookups, first-seen keys and order as `counts[obj] += 1`), as a defaultdict."""
    counts: dict[Any, int] = {}
    _count_elements(counts, iterator)
    yield defaultdict(int, counts)


class ActionFunctions:
    """Actions that combine per-partition results on the driver."""

    def reduce(self: RDD, f: Callable[[Any, Any], Any]) -> Any:
        """Reduce the items with a commutative, associative `f`."""
        g = _fail_on_stopiteration(f)
        vals = self.mapPartitions(functools.partial(_reduce_partition, f)).collect()
        if vals:
            return reduce(g, vals)
        raise ValueError("Can not reduce() empty RDD")

    def treeReduce(self: RDD, f: Callable[[Any, Any], Any], depth: int = 2) -> Any:
        """`reduce` through a tree of shuffles (`treeAggregate`), as PySpark does."""
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        g = _fail_on_stopiteration(f)

        # (value, True) is the empty marker, so that f never sees a zero value.
        def op(x: tuple[Any, bool], y: tuple[Any, bool]) -> tuple[Any, bool]:
            if x[1]:
                return y
            if y[1]:
                return x
            return g(x[0], y[0]), False

        reduced = self.map(lambda x: (x, False)).treeAggregate((None, True), op, op, depth)
        if reduced[1]:
            raise ValueError("Cannot reduce empty RDD.")
        return reduced[0]

    def fold(self: RDD, zeroValue: Any, op: Callable[[Any, Any], Any]) -> Any:
        """Fold each partition from `zeroValue`, then fold the results."""
        g = _fail_on_stopiteration(op)
        vals = self.mapPartitions(_aggregator(zeroValue, g)).collect()
        return reduce(g, vals, zeroValue)

    def aggregate(
        self: RDD,
        zeroValue: Any,
        seqOp: Callable[[Any, Any], Any],
        combOp: Callable[[Any, Any], Any],
    ) -> Any:
        """Aggregate each partition with `seqOp`, then combine with `combOp`."""
        seq = _fail_on_stopiteration(seqOp)
        comb = _fail_on_stopiteration(combOp)
        vals = self.mapPartitions(_aggregator(zeroValue, seq)).collect()
        return reduce(comb, vals, zeroValue)

    def treeAggregate(
        self: RDD,
        zeroValue: Any,
        seqOp: Callable[[Any, Any], Any],
        combOp: Callable[[Any, Any], Any],
        depth: int = 2,
    ) -> Any:
        """`aggregate` through rounds of `reduceByKey` that each divide the partitions by a scale.

        As in PySpark, the driver does not fold `zeroValue` in again at the end.
        """
        if depth < 1:
            raise ValueError(f"Depth cannot be smaller than 1 but got {depth}.")
        if self.getNumPartitions() == 0:
            return zeroValue
        seq = _fail_on_stopiteration(seqOp)
        comb = _fail_on_stopiteration(combOp)
        partial = self.mapPartitions(_aggregator(zeroValue, seq))
        num_partitions: float = partial.getNumPartitions()
        scale = max(math.ceil(num_partitions ** (1.0 / depth)), 2)
        while num_partitions > scale + num_partitions / scale:
            num_partitions /= scale
            partial = _tree_level(partial, int(num_partitions), comb)
        return partial.reduce(comb)

    def max(self: RDD, key: Callable[[Any], Any] | None = None) -> Any:
        """The largest item."""
        if key is None:
            return self.reduce(max)
        return self.reduce(lambda a, b: max(a, b, key=key))

    def min(self: RDD, key: Callable[[Any], Any] | None = None) -> Any:
        """The smallest item."""
        if key is None:
            return self.reduce(min)
        return self.reduce(lambda a, b: min(a, b, key=key))

    def sum(self: RDD) -> Any:
        """The sum of the items."""
        return self.mapPartitions(_sum_partition).fold(0, operator.add)

    def count(self: RDD) -> int:
        """The number of items."""
        # One module function per partition (not PySpark's count -> sum -> fold chain):
        # the same per-partition counts and total, but a tiny job's stage pickles one
        # function by reference instead of ~10 nested partials, and builds one RDD.
        return sum(self.mapPartitionsWithIndex(_count_split).collect())

    def countApprox(self: RDD, timeout: int, confidence: float = 0.95) -> int:
        """The count (exact in sparkctl)."""
        return self.count()

    def sumApprox(self: RDD, timeout: int, confidence: float = 0.95) -> float:
        """The sum (exact in sparkctl)."""
        return float(self.sum())

    def meanApprox(self: RDD, timeout: int, confidence: float = 0.95) -> float:
        """The mean (exact in sparkctl)."""
        return float(self.mean())

    def countApproxDistinct(self: RDD, relativeSD: float = 0.05) -> int:
        """The number of distinct items, estimated with Spark's HyperLogLog++ registers."""
        from scheduler.rdd.hyperloglog import estimate, merge_registers, precision_for, registers_of
        from scheduler.shuffle.partitioner import portable_hash

        if relativeSD < 0.000017:
            raise ValueError("relativeSD should be greater than 0.000017")
        p = precision_for(relativeSD)
        hashes = self.map(lambda x: portable_hash(x) & 0xFFFFFFFF)
        parts = hashes.mapPartitions(lambda it: [registers_of(it, p)]).collect()
        return estimate(reduce(merge_registers, parts, bytearray(1 << p)), p)

    def stats(self: RDD) -> StatCounter:
        """Count, mean, variance, max and min in one pass."""

        def red(left: StatCounter, right: StatCounter) -> StatCounter:
            return left.mergeStats(right)

        return self.mapPartitions(lambda i: [StatCounter(i)]).reduce(red)  # type: ignore[no-any-return]

    # Any: floats over numbers, numpy arrays over arrays (element-wise, as PySpark).
    def mean(self: RDD) -> Any:
        return self.stats().mean()

    def variance(self: RDD) -> Any:
        return self.stats().variance()

    def stdev(self: RDD) -> Any:
        return self.stats().stdev()

    def sampleStdev(self: RDD) -> Any:
        return self.stats().sampleStdev()

    def sampleVariance(self: RDD) -> Any:
        return self.stats().sampleVariance()

    def histogram(self: RDD, buckets: int | list[Any] | tuple[Any, ...]) -> tuple[Any, list[int]]:
        """Counts per bucket: `buckets` is a count of even buckets or sorted boundaries."""
        from scheduler.rdd.histogram import histogram

        return histogram(self, buckets)

    def countByValue(self: RDD) -> dict[Any, int]:
        """How often each distinct item occurs."""

        def merge(m1: dict[Any, int], m2: dict[Any, int]) -> dict[Any, int]:
            for k, v in m2.items():
                m1[k] += v
            return m1

        return self.mapPartitions(_count_values).reduce(merge)  # type: ignore[no-any-return]

    def top(self: RDD, num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The `num` largest items, largest first."""

        def top_iterator(iterator: Iterator[Any]) -> Iterator[list[Any]]:
            yield heapq.nlargest(num, iterator, key=key)

        def merge(a: list[Any], b: list[Any]) -> list[Any]:
            return heapq.nlargest(num, a + b, key=key)

        return self.mapPartitions(top_iterator).reduce(merge)  # type: ignore[no-any-return]

    def takeOrdered(self: RDD, num: int, key: Callable[[Any], Any] | None = None) -> list[Any]:
        """The `num` smallest items, smallest first."""
        if num < 0:
            raise ValueError("top N cannot be negative.")
        if num == 0 or self.getNumPartitions() == 0:
            return []

        def merge(a: list[Any], b: list[Any]) -> list[Any]:
            return heapq.nsmallest(num, a + b, key)

        return self.mapPartitions(lambda it: [heapq.nsmallest(num, it, key)]).reduce(merge)  # type: ignore[no-any-return]

    def take(self: RDD, num: int) -> list[Any]:
        """The first `num` items, scanning as few partitions as it can."""
        items: list[Any] = []
        total_parts = self.getNumPartitions()
        scanned = 0
        while len(items) < num and scanned < total_parts:
            to_try = 1
            if scanned > 0:
                if not items:
                    to_try = scanned * 4
                else:
                    to_try = int(1.5 * num * scanned / len(items)) - scanned
                    to_try = min(max(to_try, 1), scanned * 4)
            left = num - len(items)

            def take_up_to(iterator: Iterator[Any], left: int = left) -> Iterator[Any]:
                taken = 0
                iterator = iter(iterator)
                while taken < left:
                    try:
                        yield next(iterator)
                    except StopIteration:
                        return
                    taken += 1

            parts = range(scanned, min(scanned + to_try, total_parts))
            items += self.ctx.runJob(self, take_up_to, parts)
            scanned += to_try
        return items[:num]

    def first(self: RDD) -> Any:
        """The first item."""
        rs = self.take(1)
        if rs:
            return rs[0]
        raise ValueError("RDD is empty")

    def isEmpty(self: RDD) -> bool:
        """Whether the RDD has no items."""
        return self.getNumPartitions() == 0 or len(self.take(1)) == 0

    def takeSample(
        self: RDD, withReplacement: bool, num: int, seed: int | None = None
    ) -> list[Any]:
        """A fixed-size random sample, as a list."""
        num_stdev = 10.0
        max_sample_size = sys.maxsize - int(num_stdev * math.sqrt(sys.maxsize))
        if num < 0:
            raise ValueError("Sample size cannot be negative.")
        if num > max_sample_size:
            raise ValueError(f"Sample size cannot be greater than {max_sample_size}.")
        if num == 0 or self.getNumPartitions() == 0:
            return []
        initial_count = self.count()
        if initial_count == 0:
            return []
        rand = random.Random(seed)
        if (not withReplacement) and num >= initial_count:
            samples = self.collect()
            rand.shuffle(samples)
            return samples
        fraction = _fraction_for_sample_size(num, initial_count, withReplacement)
        samples = self.sample(withReplacement, fraction, seed).collect()
        while len(samples) < num:
            seed = rand.randint(0, sys.maxsize)
            samples = self.sample(withReplacement, fraction, seed).collect()
        rand.shuffle(samples)
        return samples[0:num]


def _fraction_for_sample_size(lower_bound: int, total: int, with_replacement: bool) -> float:
    fraction = float(lower_bound) / total
    if with_replacement:
        num_stdev = 9 if lower_bound < 12 else 5
        return fraction + num_stdev * math.sqrt(fraction / total)
    delta = 0.00005
    gamma = -math.log(delta) / total
    return min(1.0, fraction + gamma + math.sqrt(gamma * gamma + 2 * gamma * fraction))
