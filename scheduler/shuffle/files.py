"""Shuffle files: one data file plus an index per map task, and their readers.

A map task buckets its (key, value) pairs by the partitioner, spilling the
buckets when the process passes its memory budget, then writes the buckets
contiguously with an index of offsets. A bucket is a flat list, k0, v0, k1,
v1, ..., written as pickled chunks of it: a pair's tuple is freed as soon as
it is bucketed (one `extend` per pair), pickling and unpickling handle no
tuple per pair, and a reader that takes columns (the hash join) slices keys
and values out of a chunk and builds its dicts from them at C speed. A reduce
task reads its segment of every map output, in map order (`ShufflePairs`:
pairs, or the chunks' columns). Runs in executor
workers; a missing or unreadable output raises FetchFailedError so the driver
can recompute it. No network I/O here.
"""

from __future__ import annotations

import array
import io
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from scheduler.shuffle.aggregation import (
    SPILL_STATS,
    dump_chunk,
    dumps_records,
    load_chunks,
    used_memory_mb,
)
from scheduler.shuffle.mapoutput import MapOutput
from scheduler.shuffle.partitioner import portable_hash
from scheduler.shuffle.rangesort import RangeSort

__all__ = [
    "READ_STATS",
    "FetchFailedError",
    "ShufflePairs",
    "read_shuffle_block",
    "write_shuffle_output",
]

#: Pairs per written chunk (a flat list of twice as many items at most).
_CHUNK = 4096
#: Pairs a map task buckets between two looks at its buckets and its memory.
_BATCH = 10_000
#: A bucket holding at least this many items after a batch is pickled right away: its
#: pairs' objects are freed while they are still in the CPU's cache, and bytes take a
#: fraction of their room (a quarter less map-side CPU for a 250k-pair task into 16
#: buckets). Smaller buckets (a wide shuffle's) wait, so that chunks stay sizeable.
_EARLY_ITEMS = 512


class FetchFailedError(Exception):
    """A reduce task could not read a map output (its executor is gone)."""

    def __init__(self, shuffle_id: int, map_index: int, executor_id: str, message: str) -> None:
        super().__init__(
            f"FetchFailed: shuffle {shuffle_id} map {map_index} (executor {executor_id}): {message}"
        )
        self.shuffle_id = shuffle_id
        self.map_index = map_index
        self.executor_id = executor_id
        self.message = message


def shuffle_file(local_dir: str, shuffle_id: int, map_index: int, attempt: int) -> str:
    """Where a map task attempt writes its data file (the index is `<path>.index`)."""
    return os.path.join(local_dir, f"shuffle_{shuffle_id}_{map_index}_{attempt}.data")


def write_shuffle_output(
    items: Iterable[Any],
    partition_of: Callable[[Any], int],
    num_partitions: int,
    path: str,
    memory_limit_mb: float,
) -> None:
    """Bucket `items` (pairs) by `partition_of(key)` and write the data and index files."""
    buckets: list[list[Any]] = [[] for _ in range(num_partitions)]
    add = [bucket.extend for bucket in buckets]
    #: Each bucket's chunks pickled so far, in order (before its spilled ones are none).
    pickled: list[list[bytes]] = [[] for _ in range(num_partitions)]
    spilled: list[list[tuple[int, int]]] = [[] for _ in range(num_partitions)]
    spill_path = path + ".spill"
    spill_file = None
    # portable_hash is hash() except for None and tuples: skip two calls per pair.
    # A Partitioner's function is called directly (one Python frame less per pair).
    func = getattr(partition_of, "partitionFunc", partition_of)
    fast = func is portable_hash
    n = num_partitions
    source = iter(items)
    missing = object()
    try:
        while True:
            # Whole batches through islice (no per-pair counter); memory checked per batch.
            # Each record is unpacked as `k, v`, as PySpark does (a list [k, v] or a
            # 2-character string is a pair; a triple fails the task), then its two items
            # are added to the bucket's flat list.
            item = missing
            if fast:
                for item in itertools.islice(source, _BATCH):
                    key, _ = item
                    h = portable_hash(key) if key is None or type(key) is tuple else hash(key)
                    add[h % n](item)
            else:
                for item in itertools.islice(source, _BATCH):
                    key, _ = item
                    add[func(key) % n](item)
            if item is missing:
                break
            for r, bucket in enumerate(buckets):
                if len(bucket) >= _EARLY_ITEMS:
                    pickled[r].append(dumps_records(bucket))
                    bucket.clear()  # in place: `add` stays bound to it
            if used_memory_mb() <= memory_limit_mb:
                continue
            if spill_file is None:
                spill_file = open(spill_path, "w+b")  # noqa: SIM115 - closed in finally
            for r, bucket in enumerate(buckets):
                start = spill_file.tell()
                written = sum(map(spill_file.write, pickled[r])) + _dump_flat(bucket, spill_file)
                if written:
                    spilled[r].append((start, written))
                    SPILL_STATS["diskBytesSpilled"] += written
                pickled[r] = []
                bucket.clear()
            SPILL_STATS["spills"] += 1
            memory_limit_mb = max(memory_limit_mb, used_memory_mb() * 1.05)
        offsets = array.array("q", [0] * (num_partitions + 1))
        tmp = path + ".tmp"
        with open(tmp, "wb") as out:
            for r in range(num_partitions):
                offsets[r] = out.tell()
                if spill_file is not None:
                    for start, length in spilled[r]:
                        spill_file.seek(start)
                        out.write(spill_file.read(length))
                out.writelines(pickled[r])
                pickled[r] = []
                _dump_flat(buckets[r], out)
                buckets[r] = []  # freed bucket by bucket
            offsets[num_partitions] = out.tell()
        with open(path + ".index.tmp", "wb") as index:
            index.write(offsets.tobytes())
        os.replace(path + ".index.tmp", path + ".index")
        os.replace(tmp, path)
    finally:
        if spill_file is not None:
            spill_file.close()
            os.unlink(spill_path)


def _dump_flat(bucket: list[Any], f: Any) -> int:
    """Append a bucket (k0, v0, k1, v1, ...) in chunks of _CHUNK pairs; the bytes written."""
    step = 2 * _CHUNK
    if len(bucket) <= step:
        return dump_chunk(bucket, f) if bucket else 0
    written = 0
    for i in range(0, len(bucket), step):
        written += dump_chunk(bucket[i : i + step], f)
    return written


def _pairs_of(flat: list[Any]) -> Iterator[tuple[Any, Any]]:
    """(k0, v0), (k1, v1), ... of a flat chunk, built at C speed."""
    items = iter(flat)
    return zip(items, items, strict=False)  # a flat chunk has an even length


class ShufflePairs:
    """The pairs of one reduce partition's flat chunks, as an iterator of (key, value).

    Iterating yields tuples built at C speed. A consumer that takes columns calls
    `columns()` before iterating and gets each chunk's keys and values as two
    lists: no tuple per pair at all.
    """

    __slots__ = ("_chunks", "_pairs")

    def __init__(self, chunks: Iterator[list[Any]]) -> None:
        self._chunks = chunks
        self._pairs: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        # The C-level iterator itself, not self: a `for` over us runs no Python frame per pair.
        pairs = self._pairs
        if pairs is None:
            pairs = self._pairs = itertools.chain.from_iterable(map(_pairs_of, self._chunks))
        return pairs

    def __next__(self) -> Any:
        return next(iter(self))

    def columns(self) -> Iterator[tuple[list[Any], list[Any]]]:
        """(keys, values) of the chunks not read yet (once pairs were read, of the rest)."""
        if self._pairs is None:
            return ((flat[0::2], flat[1::2]) for flat in self._chunks)
        return _columns_of(self._pairs)


def _columns_of(pairs: Iterator[Any]) -> Iterator[tuple[list[Any], list[Any]]]:
    while chunk := list(itertools.islice(pairs, _CHUNK)):
        yield [k for k, _ in chunk], [v for _, v in chunk]


#: Local segments up to this size are read into memory whole.
_SLURP = 64 << 20

#: Shuffle bytes the current task read (local and remote), for the UI's Shuffle Read.
READ_STATS: dict[str, int] = {"shuffleBytesRead": 0}

#: Bytes per remote fetch request.
FETCH_CHUNK = 8 << 20

#: Reads a byte range of another executor's file: (map output, path, offset, length) -> bytes.
RemoteReader = Callable[[MapOutput, str, int, int], bytes]


def read_shuffle_block(
    shuffle_id: int,
    reduce_id: int,
    outputs: list[MapOutput | None],
    is_local: Callable[[MapOutput], bool] | None = None,
    remote: RemoteReader | None = None,
    ranges: RangeSort | None = None,
    maps: tuple[int, int] | None = None,
) -> Iterator[Any]:
    """The pairs of reduce partition `reduce_id`, from every map output in map order.

    With `maps` (first, end), only the outputs of map tasks first..end-1: a join
    reads its two sides, the two inputs of one union, apart. Outputs for which
    `is_local` is true are read from disk; the others through
    `remote`, in chunks of FETCH_CHUNK bytes. With `ranges`, the outputs are
    sortByKey's sorted runs and only the chunks in this partition's range are read.

    A hash shuffle's partition comes as `ShufflePairs` (its `columns()` are the
    chunks as written).

    Raises:
        FetchFailedError: an output is missing or its files cannot be read.
    """
    chunks = _block_chunks(shuffle_id, reduce_id, outputs, is_local, remote, ranges, maps)
    if ranges is not None:  # sorted runs: chunks of pairs, flattened at C speed
        return itertools.chain.from_iterable(chunks)
    return ShufflePairs(chunks)


def _block_chunks(
    shuffle_id: int,
    reduce_id: int,
    outputs: list[MapOutput | None],
    is_local: Callable[[MapOutput], bool] | None,
    remote: RemoteReader | None,
    ranges: RangeSort | None,
    maps: tuple[int, int] | None,
) -> Iterator[list[Any]]:
    start_map, end_map = maps if maps is not None else (0, len(outputs))
    for map_index in range(start_map, end_map):
        out = outputs[map_index]
        if out is None:
            raise FetchFailedError(shuffle_id, map_index, "", "map output is missing")
        local = remote is None or is_local is None or is_local(out)
        reader = _Segments(shuffle_id, map_index, out, None if local else remote)
        if ranges is None:
            start, end = reader.hash_segment(reduce_id)
            if start != end:
                yield from reader.chunks(start, end)
            continue
        run = out.run
        if run is None:
            raise FetchFailedError(shuffle_id, map_index, out.executor_id, "not a sorted run")
        first, last = ranges.chunk_range(run, reduce_id)
        chunks = reader.chunks(run.offsets[first], run.offsets[last]) if first < last else ()
        for i, chunk in enumerate(chunks, first):
            # Inner chunks hold only this partition's keys; the two ends are cut.
            yield ranges.own_part(chunk, reduce_id) if i in (first, last - 1) else chunk


class _Segments:
    """Byte segments of one map output's files, from disk or through `remote`."""

    def __init__(
        self, shuffle_id: int, map_index: int, out: MapOutput, remote: RemoteReader | None
    ) -> None:
        self._shuffle_id = shuffle_id
        self._map_index = map_index
        self._out = out
        self._remote = remote

    def _failed(self, exc: BaseException) -> FetchFailedError:
        return FetchFailedError(self._shuffle_id, self._map_index, self._out.executor_id, str(exc))

    def hash_segment(self, reduce_id: int) -> tuple[int, int]:
        """Where partition `reduce_id` lies in a hash shuffle's data file (its index)."""
        out = self._out
        bounds = array.array("q")
        try:
            if self._remote is not None:
                bounds.frombytes(self._remote(out, out.path + ".index", reduce_id * 8, 16))
            else:
                with open(out.path + ".index", "rb") as index:
                    index.seek(reduce_id * 8)
                    bounds.frombytes(index.read(16))
            return bounds[0], bounds[1]
        except (OSError, ValueError, IndexError) as exc:
            raise self._failed(exc) from None

    def chunks(self, start: int, end: int) -> Iterator[list[Any]]:
        """The pickled chunks in bytes [start, end) of the data file."""
        out = self._out
        READ_STATS["shuffleBytesRead"] += end - start
        if self._remote is not None:
            try:
                pieces = [
                    self._remote(out, out.path, offset, min(FETCH_CHUNK, end - offset))
                    for offset in range(start, end, FETCH_CHUNK)
                ]
            except (OSError, ValueError, IndexError) as exc:
                raise self._failed(exc) from None
            yield from load_chunks(io.BytesIO(b"".join(pieces)))
            return
        try:
            f = open(out.path, "rb")  # noqa: SIM115 - closed below, after the generator drains
        except OSError as exc:
            raise self._failed(exc) from None
        with f:
            f.seek(start)
            # A segment of moderate size is read at once: pickle then parses an in-memory
            # buffer at C speed instead of calling back into _Bounded for every frame.
            segment: Any = io.BytesIO(f.read(end - start)) if end - start <= _SLURP else None
            yield from load_chunks(segment if segment is not None else _Bounded(f, end))


class _Bounded:
    """A file view that ends at `end`, for reading one segment with pickle.load."""

    def __init__(self, f: Any, end: int) -> None:
        self._f = f
        self._end = end

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._f.tell()
        if left <= 0:
            return b""
        if n < 0 or n > left:
            n = left
        return self._f.read(n)  # type: ignore[no-any-return]

    def readline(self) -> bytes:
        left = self._end - self._f.tell()
        if left <= 0:
            return b""
        return self._f.readline(left)  # type: ignore[no-any-return]

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def peek(self, n: int = 0) -> bytes:
        return b""
