"""Creating RDDs from driver data and files: a mixin of SparkContext.

parallelize slices exactly as PySpark does (ranges by arithmetic, other
collections by batches dealt to slices); file sources plan their splits on
the driver. Nothing here runs a job.
"""

# Mixin methods are typed with `self: SparkContext`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.api.context import SparkContext
    from scheduler.rdd.rdd import RDD

__all__ = ["RDDSources"]


def _range_slice(
    start: int, size: int, step: int, num: int, split: int, _: Iterator[Any]
) -> Iterable[Any]:
    """Split `split` of a parallelized range, as PySpark slices it (no data shipped)."""

    def start_of(i: int) -> int:
        return start + int(i * size / num) * step

    return range(start_of(split), start_of(split + 1), step)


class RDDSources:
    """SparkContext's methods that create RDDs."""

    def parallelize(self: SparkContext, c: Iterable[Any], numSlices: int | None = None) -> RDD:
        """An RDD of a local collection, sliced as PySpark slices it."""
        from scheduler.rdd.kinds import ParallelCollectionRDD, parallelize_slices

        num = int(numSlices) if numSlices is not None else self.defaultParallelism
        if isinstance(c, range):
            size = len(c)
            if size == 0:
                return self.parallelize([], num)
            step = c[1] - c[0] if size > 1 else 1
            slicer = functools.partial(_range_slice, c[0], size, step, num)
            return self.parallelize([], num).mapPartitionsWithIndex(slicer)
        data = c if hasattr(c, "__len__") and hasattr(c, "__getitem__") else list(c)
        if not isinstance(data, list):
            data = list(data)
        return ParallelCollectionRDD(self, parallelize_slices(data, num))

    def range(
        self: SparkContext,
        start: int,
        end: int | None = None,
        step: int = 1,
        numSlices: int | None = None,
    ) -> RDD:
        """An RDD of range(start, end, step)."""
        if end is None:
            end = start
            start = 0
        return self.parallelize(range(start, end, step), numSlices)

    def emptyRDD(self: SparkContext) -> RDD:
        """An RDD with no partitions."""
        from scheduler.rdd.kinds import ParallelCollectionRDD

        return ParallelCollectionRDD(self, [])

    def textFile(
        self: SparkContext, name: str, minPartitions: int | None = None, use_unicode: bool = True
    ) -> RDD:
        """Lines of a text file, directory, glob or comma-separated list of them."""
        from scheduler.rdd.fileio import TextFileRDD

        min_parts = minPartitions if minPartitions is not None else self.defaultMinPartitions
        return TextFileRDD(self, name, min_parts, use_unicode)

    def wholeTextFiles(
        self: SparkContext, path: str, minPartitions: int | None = None, use_unicode: bool = True
    ) -> RDD:
        """(path, content) for each file under `path`."""
        from scheduler.rdd.fileio import WholeTextFilesRDD

        min_parts = minPartitions if minPartitions is not None else self.defaultMinPartitions
        return WholeTextFilesRDD(self, path, min_parts, use_unicode)

    def binaryFiles(self: SparkContext, path: str, minPartitions: int | None = None) -> RDD:
        """(path, bytes) for each file under `path`."""
        from scheduler.rdd.fileio import BinaryFilesRDD

        min_parts = minPartitions if minPartitions is not None else self.defaultMinPartitions
        return BinaryFilesRDD(self, path, min_parts)

    def binaryRecords(self: SparkContext, path: str, recordLength: int) -> RDD:
        """The `recordLength`-byte records of flat binary files."""
        from scheduler.rdd.fileio import BinaryRecordsRDD

        return BinaryRecordsRDD(self, path, recordLength)

    def pickleFile(self: SparkContext, name: str, minPartitions: int | None = None) -> RDD:
        """An RDD saved with saveAsPickleFile."""
        from scheduler.rdd.fileio import PickleFileRDD

        return PickleFileRDD(self, name, minPartitions or 0)

    def union(self: SparkContext, rdds: list[RDD]) -> RDD:
        """The union of several RDDs.

        Raises:
            IndexError: `rdds` is empty.
        """
        from scheduler.rdd.kinds import union_of

        if not rdds:
            # PySpark fails indexing rdds[0]: an IndexError, which programs may catch.
            raise IndexError("union needs at least one RDD")
        rdd = union_of(self, list(rdds))
        rdd.partitioner = None
        return rdd
