"""Dependencies between RDDs: narrow (one-to-one, range) and shuffle.

The DAGScheduler cuts stages at ShuffleDependency. These are driver-side
lineage records only: executors compute through each RDD's own parent links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD
    from scheduler.shuffle.partitioner import Partitioner
    from scheduler.shuffle.rangesort import RangeSort

__all__ = [
    "Dependency",
    "NarrowDependency",
    "OneToOneDependency",
    "RangeDependency",
    "SelectDependency",
    "ShuffleDependency",
    "shuffles_to_clean",
]


class Dependency:
    """A link from an RDD to one parent RDD."""

    def __init__(self, rdd: RDD) -> None:
        self.rdd = rdd


class NarrowDependency(Dependency):
    """Each child partition depends on a few parent partitions."""

    def parents(self, split: int) -> list[int]:
        raise NotImplementedError


class OneToOneDependency(NarrowDependency):
    """Child partition i reads parent partition i."""

    def parents(self, split: int) -> list[int]:
        return [split]


class RangeDependency(NarrowDependency):
    """Child partitions [out_start, out_start+length) read parent's [in_start, ...)."""

    def __init__(self, rdd: RDD, in_start: int, out_start: int, length: int) -> None:
        super().__init__(rdd)
        self.in_start = in_start
        self.out_start = out_start
        self.length = length

    def parents(self, split: int) -> list[int]:
        if self.out_start <= split < self.out_start + self.length:
            return [split - self.out_start + self.in_start]
        return []


class SelectDependency(NarrowDependency):
    """Child partitions read an explicit list of parent partitions each."""

    def __init__(self, rdd: RDD, mapping: list[list[int]]) -> None:
        super().__init__(rdd)
        self.mapping = mapping

    def parents(self, split: int) -> list[int]:
        return self.mapping[split]


class ShuffleDependency(Dependency):
    """The child reads every parent partition's output for its key range."""

    def __init__(
        self,
        rdd: RDD,
        shuffle_id: int,
        partitioner: Partitioner,
        range_sort: RangeSort | None = None,
    ) -> None:
        super().__init__(rdd)
        self.shuffle_id = shuffle_id
        self.partitioner = partitioner
        #: sortByKey's shuffles: map tasks write sorted runs, not hash buckets.
        self.range_sort = range_sort


def shuffles_to_clean(rdd: RDD) -> list[int]:
    """The shuffle ids `RDD.cleanShuffleDependencies` drops, as Spark's walk finds them.

    Every shuffle `rdd` reads, and those of its ancestors reached through RDDs that
    are not persisted: a persisted (or locally checkpointed) RDD ends the walk, since
    a later job reads it from the cache, not through its shuffles.
    """
    found: list[int] = []
    seen: set[int] = set()
    todo = [rdd]
    while todo:
        for dep in todo.pop().dependencies:
            if isinstance(dep, ShuffleDependency) and dep.shuffle_id not in found:
                found.append(dep.shuffle_id)
            parent = dep.rdd
            if not parent.is_cached and parent.id() not in seen:
                seen.add(parent.id())
                todo.append(parent)
    return found
