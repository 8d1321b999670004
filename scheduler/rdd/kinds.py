"""The concrete RDD kinds: how each one lays out and computes its partitions.

Partition layouts follow PySpark's exactly (parallelize's batch slicing,
coalesce's position ranges, partitioner-aware unions), because programs and
tests observe them through glom, zipWithIndex and friends. `compute` runs on
executors; everything else runs on the driver. No network I/O here.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from scheduler.rdd.deps import (
    Dependency,
    OneToOneDependency,
    RangeDependency,
    SelectDependency,
    ShuffleDependency,
)
from scheduler.rdd.rdd import RDD, fuse_narrow, same_split
from scheduler.shuffle.partitioner import Partitioner
from scheduler.task.stagecode import externalize, resolve

if TYPE_CHECKING:
    from scheduler.rdd.host import RDDHost
    from scheduler.shuffle.rangesort import RangeSort
    from scheduler.task.profiler import Profiler
    from scheduler.task.taskcontext import TaskContext

__all__ = [
    "CartesianRDD",
    "CoalescedRDD",
    "HashJoinedRDD",
    "MapPartitionsRDD",
    "ParallelCollectionRDD",
    "PartitionerAwareUnionRDD",
    "ShuffledRDD",
    "UnionRDD",
    "ZippedRDD",
    "parallelize_slices",
    "round_robin_repartition",
    "union_of",
]


def parallelize_slices(data: Sequence[Any], num_slices: int) -> list[list[Any]]:
    """Slice `data` into `num_slices` lists as PySpark does.

    PySpark cuts the data into batches of max(1, min(len // n, 1024)) items and
    the JVM then deals whole batches to slices by position, so the layout is
    by batches, not by items.
    """
    if num_slices <= 0:
        raise ValueError(f"numSlices must be positive, got {num_slices}")
    batch = max(1, min(len(data) // num_slices, 1024))
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]
    count = len(batches)
    slices: list[list[Any]] = []
    for i in range(num_slices):
        start = (i * count) // num_slices
        end = ((i + 1) * count) // num_slices
        slices.append([item for b in batches[start:end] for item in b])
    return slices


class ParallelCollectionRDD(RDD):
    """Data from the driver, already sliced into partitions."""

    def __init__(self, ctx: RDDHost, slices: list[list[Any]]) -> None:
        super().__init__(ctx, [])
        self._slices = slices

    def _num_partitions(self) -> int:
        return len(self._slices)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        return iter(self._slices[split])

    def __getstate__(self) -> dict[str, Any]:
        # In a stage's payload the data travels beside the code: workers unpickle the
        # code for every task but the data once (scheduler/task/stagecode.py).
        state = super().__getstate__()
        state["_slices"] = externalize(self._slices)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state["_slices"] = resolve(state["_slices"])
        self.__dict__.update(state)


class MapPartitionsRDD(RDD):
    """f(split, iterator) over the parent; consecutive ones fuse into one function."""

    _lazy_id = True

    def __init__(
        self,
        prev: RDD,
        f: Callable[[int, Iterator[Any]], Iterable[Any]],
        preserves_partitioning: bool = False,
        is_from_barrier: bool = False,
    ) -> None:
        #: Made by RDD.barrier(): the stage computing it is a barrier stage.
        self._is_from_barrier = is_from_barrier
        if isinstance(prev, MapPartitionsRDD) and prev._pipelinable():
            self._is_from_barrier = is_from_barrier or prev._is_from_barrier
            self.func: Callable[[int, Iterator[Any]], Iterable[Any]]
            if f is same_split:  # the identity after prev's function is prev's function
                self.func = prev.func
            else:
                self.func = fuse_narrow(f, prev.func) or functools.partial(_pipeline, f, prev.func)
            self.prev: RDD = prev.prev
        else:
            self.func = f
            self.prev = prev
        super().__init__(prev.ctx, [OneToOneDependency(self.prev)])
        self.preservesPartitioning = preserves_partitioning
        self.partitioner = prev.partitioner if preserves_partitioning else None
        #: Made when a job first runs this RDD (`ensure_profiler`), not when it is built:
        #: PySpark profiles each Python RDD that runs, after pipelining, not each step.
        self._profiler: Profiler | None = None

    def ensure_profiler(self) -> None:
        """With spark.python.profile, give this RDD its profiler before a job first runs it.

        Called on the driver for each RDD of a job's lineage before the job is
        submitted (so before the RDD is pickled for its tasks); the collector's entry
        holds the RDD's id, as PySpark's does.
        """
        collector = self.ctx.profiler_collector
        if collector is None or self._profiler is not None:
            return
        self._profiler = collector.new_profiler(self.ctx)
        collector.add_profiler(self.id(), self._profiler)

    def _pipelinable(self) -> bool:
        # An RDD with a resource profile stays its own RDD, so its stage finds the profile.
        return not (
            self._storage_level is not None
            or self._checkpoint_requested
            or self._checkpoint_rdd is not None
            or self.has_resource_profile
        )

    def _num_partitions(self) -> int:
        return self.prev.getNumPartitions()

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        profiler = getattr(self, "_profiler", None)
        if profiler is not None:
            from scheduler.task.profiler import profiled

            return profiled(
                profiler, lambda: iter(self.func(split, self.prev.iterator(split, context)))
            )
        return iter(self.func(split, self.prev.iterator(split, context)))


def _pipeline(
    f: Callable[[int, Iterator[Any]], Iterable[Any]],
    prev_func: Callable[[int, Iterator[Any]], Iterable[Any]],
    split: int,
    iterator: Iterator[Any],
) -> Iterable[Any]:
    """Two fused mapPartitions functions (a partial of this pickles by reference)."""
    return f(split, iter(prev_func(split, iterator)))


class UnionRDD(RDD):
    """The partitions of several RDDs, one after another."""

    def __init__(self, ctx: RDDHost, rdds: list[RDD]) -> None:
        deps: list[Dependency] = []
        self._index: list[tuple[int, int]] = []
        for i, rdd in enumerate(rdds):
            n = rdd.getNumPartitions()
            deps.append(RangeDependency(rdd, 0, len(self._index), n))
            self._index.extend((i, split) for split in range(n))
        super().__init__(ctx, deps)
        self._rdds = rdds

    def _num_partitions(self) -> int:
        return len(self._index)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        which, parent_split = self._index[split]
        return self._rdds[which].iterator(parent_split, context)


class PartitionerAwareUnionRDD(RDD):
    """The union of co-partitioned RDDs: partition i is every parent's partition i."""

    def __init__(self, ctx: RDDHost, rdds: list[RDD]) -> None:
        super().__init__(ctx, [OneToOneDependency(rdd) for rdd in rdds])
        self._rdds = rdds
        self.partitioner = rdds[0].partitioner

    def _num_partitions(self) -> int:
        return self._rdds[0].getNumPartitions()

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        return itertools.chain.from_iterable(rdd.iterator(split, context) for rdd in self._rdds)


def union_of(ctx: RDDHost, rdds: list[RDD]) -> RDD:
    """A union, partitioner-aware when every RDD has the same partitioner."""
    partitioners = [rdd.partitioner for rdd in rdds]
    first = partitioners[0]
    if first is not None and all(p == first for p in partitioners):
        return PartitionerAwareUnionRDD(ctx, rdds)
    return UnionRDD(ctx, rdds)


class ShuffledRDD(RDD):
    """The parent's pairs redistributed by key with `partitioner` (a stage boundary)."""

    def __init__(
        self, prev: RDD, partitioner: Partitioner, range_sort: RangeSort | None = None
    ) -> None:
        ctx = prev.ctx
        self.shuffle_id = ctx.new_shuffle_id()
        super().__init__(ctx, [ShuffleDependency(prev, self.shuffle_id, partitioner, range_sort)])
        self.partitioner = partitioner
        self._range_sort = range_sort

    @property
    def shuffle_dependency(self) -> ShuffleDependency:
        """The shuffle this RDD reads (driver side: tasks do not carry their lineage)."""
        dep = self._deps[0]
        assert isinstance(dep, ShuffleDependency)
        return dep

    def _num_partitions(self) -> int:
        assert self.partitioner is not None
        return self.partitioner.numPartitions

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        return self.read(split, context)

    def read(
        self, split: int, context: TaskContext, maps: tuple[int, int] | None = None
    ) -> Iterator[Any]:
        """Partition `split`; with `maps` (first, end), of map tasks first..end-1 only."""
        if context._runtime is None:
            raise RuntimeError("a shuffled RDD can only be computed inside a task")
        return context._runtime.read_shuffle(  # type: ignore[no-any-return]
            self.shuffle_id, split, self._range_sort, maps
        )


class HashJoinedRDD(RDD):
    """A key join whose reduce side reads its two inputs apart: no tagged values, no cogroup.

    `source` is `left.union(right)` partitioned by key, as PySpark's join shuffles
    it (same stages, tasks and partitioner): either a ShuffledRDD of a UnionRDD,
    whose first `left_maps` map outputs are the left side's, or the union of two
    RDDs already partitioned alike, read side by side with no shuffle.
    `join(left_pairs, right_pairs)` joins one partition.
    """

    def __init__(
        self,
        source: RDD,
        left: RDD,
        right: RDD,
        join: Callable[[Iterator[Any], Iterator[Any]], Iterable[Any]],
    ) -> None:
        super().__init__(source.ctx, [OneToOneDependency(source)])
        self._source = source
        self._left = left
        self._right = right
        self._left_maps = left.getNumPartitions()
        self._maps = self._left_maps + right.getNumPartitions()
        self._join = join
        self.partitioner = source.partitioner

    def _num_partitions(self) -> int:
        return self._source.getNumPartitions()

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        source = self._source
        if isinstance(source, ShuffledRDD):
            left = source.read(split, context, (0, self._left_maps))
            right = source.read(split, context, (self._left_maps, self._maps))
        else:
            left = self._left.iterator(split, context)
            right = self._right.iterator(split, context)
        return iter(self._join(left, right))


class CoalescedRDD(RDD):
    """Fewer partitions, each a contiguous range of parent partitions (no shuffle)."""

    def __init__(self, prev: RDD, num_partitions: int) -> None:
        n = prev.getNumPartitions()
        if num_partitions >= n:
            groups = [[i] for i in range(n)]
        else:
            groups = [
                list(range((i * n) // num_partitions, ((i + 1) * n) // num_partitions))
                for i in range(num_partitions)
            ]
        super().__init__(prev.ctx, [SelectDependency(prev, groups)])
        self._prev = prev
        self._groups = groups

    def _num_partitions(self) -> int:
        return len(self._groups)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        return itertools.chain.from_iterable(
            self._prev.iterator(p, context) for p in self._groups[split]
        )


_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1


def _murmur3_mix_last(h: int, k: int) -> int:
    k = (k * 0xCC9E2D51) & _M32
    k = ((k << 15) | (k >> 17)) & _M32
    return h ^ ((k * 0x1B873593) & _M32)


def _murmur3_bytes(data: bytes, seed: int) -> int:
    """Scala's `MurmurHash3.bytesHash` of a buffer whose length is a multiple of 4."""
    h = seed & _M32
    for i in range(0, len(data), 4):
        h = _murmur3_mix_last(h, int.from_bytes(data[i : i + 4], "little"))
        h = ((h << 13) | (h >> 19)) & _M32
        h = (h * 5 + 0xE6546B64) & _M32
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def xorshift_next_int(seed: int, bound: int) -> int:
    """The first `nextInt(bound)` of Spark's `XORShiftRandom(seed)` (coalesce's start position)."""
    data = (seed & _M64).to_bytes(8, "big")
    low = _murmur3_bytes(data, 0x3C074A61)
    state = (_murmur3_bytes(data, low) << 32) | low

    def next31() -> int:
        nonlocal state
        state ^= (state << 21) & _M64
        state ^= state >> 35
        state ^= (state << 4) & _M64
        return state & 0x7FFFFFFF

    bits = next31()
    if bound & (bound - 1) == 0:
        return (bound * bits) >> 31
    # java.util.Random.nextInt's rejection of the last, incomplete range of 31-bit values.
    while bits - bits % bound + bound - 1 >= 1 << 31:
        bits = next31()
    return bits % bound


def round_robin_repartition(rdd: RDD, num_partitions: int) -> RDD:
    """Redistribute items evenly over `num_partitions` through a shuffle, in batches of 10.

    Like PySpark: the JVM sees batches of 10 items, and each map partition deals
    them out round robin from Spark's seeded start position.
    """

    def distribute(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        position = xorshift_next_int(index, num_partitions)
        batch: list[Any] = []
        for item in iterator:
            batch.append(item)
            if len(batch) == 10:
                position = (position + 1) % num_partitions
                yield position, batch
                batch = []
        if batch:
            yield (position + 1) % num_partitions, batch

    def by_position(key: int) -> int:
        return key

    shuffled = rdd.mapPartitionsWithIndex(distribute).partitionBy(num_partitions, by_position)
    return shuffled.flatMap(lambda kv: kv[1])


class CartesianRDD(RDD):
    """Every pair of items from two RDDs; partition (i, j) pairs their partitions."""

    def __init__(self, first: RDD, second: RDD) -> None:
        n1, n2 = first.getNumPartitions(), second.getNumPartitions()
        deps: list[Dependency] = [
            SelectDependency(first, [[i // n2] for i in range(n1 * n2)]),
            SelectDependency(second, [[i % n2] for i in range(n1 * n2)]),
        ]
        super().__init__(first.ctx, deps)
        self._first = first
        self._second = second
        self._n2 = n2
        self._n = n1 * n2

    def _num_partitions(self) -> int:
        return self._n

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        right = list(self._second.iterator(split % self._n2, context))
        for x in self._first.iterator(split // self._n2, context):
            for y in right:
                yield x, y


class ZippedRDD(RDD):
    """Pairs of the n-th items of two equally partitioned RDDs."""

    def __init__(self, first: RDD, second: RDD) -> None:
        super().__init__(first.ctx, [OneToOneDependency(first), OneToOneDependency(second)])
        self._first = first
        self._second = second

    def _num_partitions(self) -> int:
        return self._first.getNumPartitions()

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        marker = object()
        left = self._first.iterator(split, context)
        right = self._second.iterator(split, context)
        for a, b in itertools.zip_longest(left, right, fillvalue=marker):
            if a is marker or b is marker:
                raise ValueError("Can only zip RDDs with same number of elements in each partition")
            yield a, b
