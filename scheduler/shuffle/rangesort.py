"""sortByKey's shuffle: map tasks sort and sample their pairs; range bounds come after.

PySpark's sortByKey counts the RDD, samples it, computes range bounds from the
sample, then shuffles by range: three passes over the whole lineage. Here the
shuffle's map stage runs first, as a job of its own: each map task counts and
samples its pairs while sorting them (the very draws PySpark's sample() makes,
so the bounds and partition layouts are PySpark's), and writes them as one
sorted run in pickled chunks. The MapOutput carries the first and last sort
key of every chunk. The driver computes the bounds from the samples, and each
reduce task then reads from every run only the chunks that can hold its range,
and merges sorted runs instead of sorting from scratch. One pass over the
lineage instead of three.

A reduce task reads from each run the chunks whose key span meets its range,
and cuts the first and last of them by bisecting their keys. A run whose keys
are not in order as `<` sees them (NaN) is flagged while it is written; the
driver then shuffles once more with the plain range partitioner instead of
reading runs by range, since with such keys a sort's output depends on its
input order and only that gives PySpark's.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from scheduler.shuffle.aggregation import ExternalSorter, dump_chunk, dumps_records
from scheduler.shuffle.sampling import PartitionSampler

__all__ = ["RangeSort", "SortedRun", "sample_partition", "write_sorted_run"]

#: Chunks per sorted run for each reduce partition: a reducer reads at most two chunks
#: per run beyond its own pairs, so about 2/16 more than its share.
_CHUNKS_PER_PARTITION = 16

#: Pairs per chunk at least (smaller chunks cost more to index than they save).
_MIN_CHUNK = 256

#: Bytes of chunk keys one run's index should hold: large keys (long strings) get fewer,
#: larger chunks (at least one per reduce partition), so that the MapOutputs every
#: reduce task receives stay small.
_INDEX_BYTES = 64 << 10

#: Chunk keys that all the MapOutputs of one shuffle may carry to every reduce task;
#: bigger shuffles (many map tasks times many partitions) take the plain range shuffle.
_MAX_INDEX_KEYS = 200_000


@dataclass(frozen=True)
class SortedRun:
    """The chunk index of one map task's sorted run (ascending by sort key)."""

    #: Byte offset of each chunk in the data file, then the file's length.
    offsets: tuple[int, ...]
    #: The sort key of each chunk's first and last pair.
    first_keys: tuple[Any, ...]
    last_keys: tuple[Any, ...]
    #: False when the keys are not in order as `<` sees them (e.g. NaN keys).
    ordered: bool


#: What a map task reports to the driver: (pairs counted, [(uniform draw, key), ...],
#: whether its run's keys were in order).
Sample = tuple[int, list[tuple[float, Any]], bool]


class RangeSort:
    """A range-partitioned, sorted shuffle: what its map and reduce tasks need.

    `bounds` is None until the driver has the map stage's samples
    (`bounds_from_samples`); reduce tasks run only after that.
    """

    def __init__(
        self,
        num_partitions: int,
        keyfunc: Callable[[Any], Any],
        pair_sort_key: Callable[[Any], Any],
        ascending: bool,
        max_sample_size: float,
    ) -> None:
        self.num_partitions = num_partitions
        self.keyfunc = keyfunc
        #: keyfunc(pair[0]), as cheaply as it can be had.
        self.pair_sort_key = pair_sort_key
        self.ascending = ascending
        self.max_sample_size = max_sample_size
        self.bounds: list[Any] | None = None
        #: Whether bisecting the bounds maps sorted keys to non-decreasing partitions:
        #: not when a keyfunc's sampled keys are out of order as `<` sees them.
        self.bounds_in_order = True
        #: Whether every map task's keys were in order as `<` sees them.
        self.runs_in_order = True

    def __call__(self, key: Any) -> int:
        """The partition of `key` (the shuffle's partitioner function)."""
        return self._partition_of_sort_key(self.keyfunc(key))

    def _partition_of_sort_key(self, sort_key: Any) -> int:
        if self.bounds is None:
            raise RuntimeError("the range bounds are not known before the map stage ran")
        p = bisect.bisect_left(self.bounds, sort_key)
        return p if self.ascending else self.num_partitions - 1 - p

    def sampled_keys(self, samples: Iterable[Sample]) -> tuple[int, list[Any]]:
        """The RDD's size and the keys of PySpark's `sample(False, fraction, 1)`.

        The fraction is min(max_sample_size / size, 1). Each map task kept the keys
        whose draw could still fall under it; keeping those under the real fraction
        gives PySpark's exact sample.
        """
        parts = list(samples)
        size = sum(part[0] for part in parts)
        fraction = min(self.max_sample_size / max(size, 1), 1.0)
        return size, [k for part in parts for u, k in part[1] if u < fraction]

    def bounds_from_samples(self, samples: Iterable[Sample]) -> int:
        """Set the bounds as PySpark computes them from its sample; returns the RDD's size.

        Afterwards `readable_by_range` says whether reduce tasks can read the runs by
        key range.
        """
        parts = list(samples)
        self.runs_in_order = all(part[2] for part in parts)
        size, keys = self.sampled_keys(parts)
        if not size:
            return 0  # PySpark returns the empty RDD itself: no bounds needed
        keys = sorted(keys, key=self.keyfunc)
        n = self.num_partitions
        # As in PySpark: the bounds are sampled keys, compared with keyfunc(key).
        self.bounds = [keys[int(len(keys) * (i + 1) / n)] for i in range(n - 1)]
        self.bounds_in_order = not self.bounds or _in_order(self.bounds, self.bounds[0])
        return size

    @property
    def readable_by_range(self) -> bool:
        """False for keys `<` does not order (NaN) or a keyfunc whose bounds it does not.

        A sort's output order then depends on its input order, and only PySpark's plain
        range shuffle (pairs in their map order) gives PySpark's output.
        """
        return self.runs_in_order and self.bounds_in_order

    def chunks_per_run(self, key_bytes: float = 0.0) -> int:
        """How many chunks a map task cuts its run into (at most), for keys that pickle
        to about `key_bytes` each."""
        most = _CHUNKS_PER_PARTITION * self.num_partitions
        if key_bytes <= 0:
            return most
        return max(self.num_partitions, min(most, int(_INDEX_BYTES // (2 * key_bytes))))

    def fits(self, map_tasks: int) -> bool:
        """Whether the chunk index of `map_tasks` sorted runs is small enough to ship."""
        return 2 * self.chunks_per_run() * map_tasks <= _MAX_INDEX_KEYS

    # -- the reduce side ------------------------------------------------------------

    def chunk_range(self, run: SortedRun, reduce_id: int) -> tuple[int, int]:
        """The chunks [first, last) of `run` that can hold partition `reduce_id`'s keys.

        Only the first and the last of them can hold other partitions' keys too: the run
        is sorted and the bounds are in order, or the driver would not read it by range.
        """
        if not (run.ordered and self.readable_by_range):
            raise RuntimeError("a run whose keys are out of order cannot be read by range")
        owners = [
            (self._partition_of_sort_key(first), self._partition_of_sort_key(last))
            for first, last in zip(run.first_keys, run.last_keys, strict=True)
        ]
        wanted = [i for i, (a, b) in enumerate(owners) if min(a, b) <= reduce_id <= max(a, b)]
        return (wanted[0], wanted[-1] + 1) if wanted else (0, 0)

    def own_part(self, chunk: list[Any], reduce_id: int) -> list[Any]:
        """The pairs of a sorted chunk that belong to `reduce_id`: a slice, by bisection."""
        bounds = self.bounds
        assert bounds is not None
        keys = list(map(self.pair_sort_key, chunk))
        t = reduce_id if self.ascending else self.num_partitions - 1 - reduce_id
        start = 0 if t == 0 else bisect.bisect_right(keys, bounds[t - 1])
        end = len(keys) if t == len(bounds) else bisect.bisect_right(keys, bounds[t])
        return chunk[start:end]


def write_sorted_run(
    items: Iterable[Any],
    spec: RangeSort,
    split: int,
    path: str,
    memory_limit_mb: float,
) -> tuple[SortedRun, Sample]:
    """Count, sample and sort a map task's pairs; write them as chunks to `path`.

    The sample holds the keys whose uniform draw (PySpark's sample() draws for
    partition `split`, in order) is below max_sample_size / (pairs seen so far):
    the size is at least that, so every key the final fraction keeps is among them.
    """
    sampler = _KeySampler(split, spec.max_sample_size)
    sort_key = spec.pair_sort_key
    allocated: list[list[Any]] = []
    run = ExternalSorter(memory_limit_mb).sorted(
        items, key=sort_key, observe=sampler.observe, keep_input=allocated
    )
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        chunks = spec.chunks_per_run(sampler.key_bytes(sort_key))
        chunk_size = max(_MIN_CHUNK, -(-sampler.count // chunks))
        index = _write_chunks(run, sort_key, chunk_size, out)
    os.replace(tmp, path)
    del run  # only references: the pairs themselves are freed below,
    allocated.clear()  # in the order they were made
    return index, sampler.sample(index.ordered)


def _write_chunks(
    run: Iterable[Any], sort_key: Callable[[Any], Any], chunk_size: int, out: Any
) -> SortedRun:
    """Write a sorted run to `out` in pickled chunks; its index of chunk keys."""
    offsets = [0]
    first_keys: list[Any] = []
    last_keys: list[Any] = []
    ordered = True
    source = iter(run)
    while True:
        chunk = list(itertools.islice(source, chunk_size))
        if not chunk:
            break
        keys = list(map(sort_key, chunk))
        if ordered:
            ordered = _in_order(keys, last_keys[-1] if last_keys else keys[0])
        first_keys.append(keys[0])
        last_keys.append(keys[-1])
        offsets.append(offsets[-1] + dump_chunk(chunk, out))
    return SortedRun(tuple(offsets), tuple(first_keys), tuple(last_keys), ordered)


def sample_partition(
    spec: RangeSort, split: int, iterator: Iterable[Any], batch: int = 10_000
) -> Sample:
    """Count and sample one partition without writing it (the plain range shuffle's pass)."""
    sampler = _KeySampler(split, spec.max_sample_size)
    source = iter(iterator)
    while piece := list(itertools.islice(source, batch)):
        sampler.observe(piece)
    return sampler.sample(True)


class _KeySampler:
    """Counts pairs and keeps the keys PySpark's sample() could still draw.

    The i-th pair (from 1) is kept when its uniform draw u has u * i < max_sample_size:
    the RDD has at least i pairs, so every key the final fraction keeps is among them.
    Batches go through at C speed but for the few draws under the bound.
    """

    def __init__(self, split: int, max_sample_size: float) -> None:
        self._draw = PartitionSampler(False, 1.0, 1).start_draws(split)
        self._limit = max_sample_size
        self._kept: list[tuple[float, Any]] = []
        self.count = 0

    def observe(self, batch: list[Any]) -> None:
        """Draw for each pair of the next `batch`, in order; make its records tuples."""
        _as_pairs(batch)
        n = len(batch)
        draws = list(itertools.starmap(self._draw, itertools.repeat((), n)))
        bound = self._limit / (self.count + 1)  # no later pair in the batch may pass more
        for j in itertools.compress(range(n), map(bound.__gt__, draws)):
            u = draws[j]
            if u * (self.count + 1 + j) < self._limit:
                self._kept.append((u, batch[j][0]))
        self.count += n

    def key_bytes(self, sort_key: Callable[[Any], Any]) -> float:
        """About how many bytes a sort key pickles to (from up to 16 sampled keys)."""
        keys = [sort_key((k, None)) for _, k in self._kept[:16]]
        if not keys:
            return 0.0
        return len(dumps_records(keys)) / len(keys)

    def sample(self, ordered: bool) -> Sample:
        """What the driver needs: the count, the keys that can pass the final fraction."""
        size = self.count
        return size, [(u, k) for u, k in self._kept if u * size < self._limit], ordered


def _as_pairs(batch: list[Any]) -> None:
    """Records unpacked as `k, v` and kept as tuples, as PySpark's shuffle writes them:
    [k, v] or "kv" become (k, v); a record that is not a pair fails with Python's error."""
    if set(map(type, batch)) == {tuple} and set(map(len, batch)) == {2}:
        return  # the usual case, checked at C speed
    batch[:] = [(k, v) for k, v in batch]


def _in_order(keys: list[Any], previous: Any) -> bool:
    """Whether `previous <= keys[0] <= keys[1] <= ...`: false as soon as a NaN is there.

    Pass keys[0] as `previous` for a first chunk (NaN <= NaN is false too).
    """
    try:
        return bool(previous <= keys[0]) and all(
            map(operator.le, keys, itertools.islice(keys, 1, None))
        )
    except Exception:  # keys that cannot be compared that way: treat the run as unordered
        return False
