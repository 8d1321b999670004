"""Aggregation and sorting of one partition within a memory budget.

`ExternalMerger` combines values per key in a dict and, when the process's
resident memory passes the budget (`spark.python.worker.memory`), spills the
dict into hash buckets on disk and merges them one bucket at a time at the
end; `ExternalSorter` sorts in runs and merges spilled runs. Runs inside an
executor's Python worker; never talks to the network.
"""

from __future__ import annotations

import gc
import heapq
import io
import itertools
import os
import pickle
import shutil
import sys
import tempfile
import threading
from collections import _count_elements  # type: ignore[attr-defined]
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import cloudpickle

__all__ = [
    "SPILL_STATS",
    "Aggregator",
    "ExternalGroupBy",
    "ExternalMerger",
    "ExternalSorter",
    "ResultIterable",
    "dump_chunk",
    "dumps_records",
    "keep_freed_memory",
    "load_chunks",
    "new_spill_dir",
    "used_memory_mb",
]

#: Bytes spilled to disk by this process (reported with each task's metrics).
SPILL_STATS: dict[str, int] = {"diskBytesSpilled": 0, "spills": 0}

_MISSING = object()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: Where spill files go: the executor's local dir when running in one.
SPILL_ROOT: list[str] = []


def used_memory_mb() -> float:
    """Resident memory of this process in MiB."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / (1 << 20)
    except OSError:
        import psutil

        return float(psutil.Process().memory_info().rss) / (1 << 20)


#: glibc's mallopt parameters, and what a Python worker sets them to (see keep_freed_memory).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TRIM_THRESHOLD = 64 << 20
_MMAP_THRESHOLD = 16 << 20


def keep_freed_memory() -> bool:
    """Let glibc keep up to 64 MiB of freed heap for the next task; True if it was set.

    A task that builds large structures (a join's dicts of 125k keys, a text split's
    lines, pickled chunks) frees them at its end. glibc returns the heap's free top
    to the kernel once it passes its trim threshold, which starts at 128 KiB and
    only rises to twice the largest block it has mmapped, so the next task faults
    the same pages in again, zeroed: at 2M x 2M records half of a join's page faults
    and 0.2 s of kernel time, growing faster than the input. These are the values
    glibc's own adaptive limits reach at most (32 MiB mmap, 64 MiB trim), set from
    the start. A MALLOC_* environment setting of the user's, or another libc, is
    left alone.
    """
    if not sys.platform.startswith("linux") or any(
        name in os.environ for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) and mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    )


class _RecordPickler:
    """One memo-less pickler and buffer, reused: a task pickles two small records
    (its result and its metrics) and a shuffle many chunks, and making a Pickler
    and a BytesIO for each costs more than pickling a small record."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new()

    def _new(self) -> None:
        self._buffer = io.BytesIO()
        self._pickler = pickle.Pickler(self._buffer, pickle.HIGHEST_PROTOCOL)
        self._pickler.fast = True

    def dumps(self, items: Any) -> bytes | None:
        """The pickle of `items`, or None when it needs the memo or the pickler is busy."""
        if not self._lock.acquire(blocking=False):
            return None  # another thread, or a __reduce__ pickling records itself
        try:
            self._pickler.dump(items)
            data = self._buffer.getvalue()
            if len(data) > _KEEP_BUFFER:
                self._new()  # do not hold on to a large buffer between records
            else:
                self._buffer.seek(0)
                self._buffer.truncate()
            return data
        except Exception:
            self._new()  # a failed dump leaves the pickler's state unknown
            return None
        finally:
            self._lock.release()


#: Buffers larger than this are dropped after use rather than kept for the next record.
_KEEP_BUFFER = 1 << 20
_RECORD_PICKLER = _RecordPickler()


def dumps_records(items: Any) -> bytes:
    """Pickle records for a shuffle file, a spill or a task result.

    The pickler runs without its memo: records are trees, not graphs, so the memo
    only costs a dict entry per container when dumping and a PUT/GET per container
    when loading (about half of the dump time and a third of the load time for
    batches of small tuples). Cyclic data, which needs the memo, falls back to a
    plain pickle, and data plain pickle cannot handle (lambdas, local classes) to
    cloudpickle.
    """
    data = _RECORD_PICKLER.dumps(items)
    if data is not None:
        return data
    try:
        return pickle.dumps(items, pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas or local classes inside the data
        return cloudpickle.dumps(items, pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


def dump_chunk(items: Any, f: Any) -> int:
    """Append one pickled chunk to file `f`; returns the bytes written."""
    data = dumps_records(items)
    f.write(data)
    return len(data)


def load_chunks(f: Any) -> Iterator[Any]:
    """The chunks of a file written by `dump_chunk`, in order."""
    while True:
        try:
            yield pickle.load(f)
        except EOFError:
            return


def new_spill_dir() -> str:
    """A fresh directory for one spilling structure, under the executor's local dir."""
    root = SPILL_ROOT[0] if SPILL_ROOT else None
    return tempfile.mkdtemp(prefix="spill-", dir=root)


class Aggregator:
    """The three functions of a combineByKey."""

    def __init__(
        self,
        createCombiner: Callable[[Any], Any],
        mergeValue: Callable[[Any, Any], Any],
        mergeCombiners: Callable[[Any, Any], Any],
    ) -> None:
        self.createCombiner = createCombiner
        self.mergeValue = mergeValue
        self.mergeCombiners = mergeCombiners
        #: The combiners are groupByKey's lists ([v], append, extend): merged inline.
        self.lists = False
        #: createCombiner is the identity and both merges are operator.add (reduceByKey(add)):
        #: merged inline with `+`, which is what operator.add runs, for any values.
        self.adds = False


_T = TypeVar("_T")


class ResultIterable(Generic[_T]):
    """The values of one key after groupByKey: iterable, sized (``ResultIterable[str]``)."""

    def __init__(self, data: list[_T]) -> None:
        self.data = data
        self.index = None
        self.maxindex = len(data)

    def __iter__(self) -> Iterator[_T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class ExternalMerger:
    """Combine values by key; spill hash buckets to disk past `memory_limit_mb`.

    Args:
        aggregator: the combine functions.
        memory_limit_mb: the resident-memory budget of this process.
    """

    #: Pairs merged between two memory checks at first; while memory stays under the
    #: limit the batch grows by half each time up to MAX_BATCH, and halves after a spill
    #: (a check reads /proc, about as costly as merging a few hundred pairs).
    BATCH = 1000
    MAX_BATCH = 64_000
    BUCKETS = 59

    def __init__(self, aggregator: Aggregator, memory_limit_mb: float = 512) -> None:
        self.agg = aggregator
        self.memory_limit = memory_limit_mb
        self.data: dict[Any, Any] = {}
        self.spills = 0
        self._dir: str | None = None

    def mergeValues(self, iterator: Iterable[Any]) -> None:
        """Add raw (key, value) pairs."""
        creator, comb = self.agg.createCombiner, self.agg.mergeValue
        self._merge(iterator, creator, comb)

    def mergeCombiners(self, iterator: Iterable[Any]) -> None:
        """Add (key, combiner) pairs produced by mergeValues elsewhere."""
        self._merge(iterator, None, self.agg.mergeCombiners)

    def countKeys(self, keys: Iterable[Any], value: int) -> None:
        """Add a (key, value) pair for each of `keys`, for an aggregator that adds.

        Exactly what mergeValues gives for those pairs when value is an exact int
        and the merge is `+` (`scheduler/rdd/idioms.py`): each key counted by
        `collections.Counter`'s C loop (the same dict lookups, first-seen key and
        order), the counts multiplied by `value` before they leave the dict. No
        tuple per key and no Python loop per key: a word count's map side.
        """
        source = iter(keys)
        batch = self.BATCH
        missing = _MISSING
        data = self.data
        while True:
            _count_elements(data, itertools.islice(source, batch))
            # Peek one key: tells a short batch (the end) from a full one, in input order.
            k = next(source, missing)
            if k is missing:
                break
            data[k] = data.get(k, 0) + 1
            if used_memory_mb() >= self.memory_limit:
                self._scale(value)
                self._spill()
                data = self.data
                batch = max(self.BATCH, batch // 2)
            else:
                batch = min(self.MAX_BATCH, batch + batch // 2)
        self._scale(value)

    def _scale(self, value: int) -> None:
        """Counts -> combiners: n occurrences of `value` added up are n * value."""
        if value != 1:
            self.data = {k: n * value for k, n in self.data.items()}

    def _merge(
        self,
        iterator: Iterable[Any],
        creator: Callable[[Any], Any] | None,
        comb: Callable[[Any, Any], Any],
    ) -> None:
        # Whole batches through islice (no per-pair counter); the memory check once per batch.
        # While nearly every key of the last batch was already in the dict (a word count's
        # keys), the next batch looks keys up with `data[k]` in a try: no get() call per
        # pair (a tenth of the loop), but a KeyError costs a few pairs' time per new key.
        source = iter(iterator)
        batch = self.BATCH
        missing = _MISSING
        lists = self.agg.lists
        adds = self.agg.adds
        known = False
        while True:
            data = self.data
            size = len(data)
            get = data.get
            k = missing
            if lists and creator is not None:
                # groupByKey's own combiners: append in place, no Python call per pair.
                for k, v in itertools.islice(source, batch):
                    old = get(k, missing)
                    if old is missing:
                        data[k] = [v]
                    else:
                        old.append(v)
            elif adds and known:
                # reduceByKey(add): `old + v` is operator.add(old, v), without its call.
                for k, v in itertools.islice(source, batch):
                    try:
                        old = data[k]
                    except KeyError:
                        data[k] = v
                    else:
                        data[k] = old + v
            elif adds:
                for k, v in itertools.islice(source, batch):
                    old = get(k, missing)
                    if old is missing:
                        data[k] = v
                    else:
                        data[k] = old + v
            elif lists:
                for k, v in itertools.islice(source, batch):
                    old = get(k, missing)
                    if old is missing:
                        data[k] = v
                    else:
                        old.extend(v)
            elif known:
                for k, v in itertools.islice(source, batch):
                    try:
                        old = data[k]
                    except KeyError:
                        data[k] = creator(v) if creator is not None else v
                    else:
                        data[k] = comb(old, v)
            else:
                for k, v in itertools.islice(source, batch):
                    old = get(k, missing)
                    if old is missing:
                        data[k] = creator(v) if creator is not None else v
                    else:
                        data[k] = comb(old, v)
            known = (len(data) - size) * 32 < batch
            if k is missing:
                return
            if used_memory_mb() >= self.memory_limit:
                self._spill()
                batch = max(self.BATCH, batch // 2)
            else:
                batch = min(self.MAX_BATCH, batch + batch // 2)

    def _spill(self) -> None:
        if self._dir is None:
            self._dir = new_spill_dir()
        buckets: list[list[Any]] = [[] for _ in range(self.BUCKETS)]
        for item in self.data.items():
            buckets[hash(item[0]) % self.BUCKETS].append(item)
        written = 0
        for i, bucket in enumerate(buckets):
            if bucket:
                with open(os.path.join(self._dir, str(i)), "ab") as f:
                    written += dump_chunk(bucket, f)
        self.data = {}
        self.spills += 1
        SPILL_STATS["diskBytesSpilled"] += written
        SPILL_STATS["spills"] += 1
        gc.collect()
        # Memory freed by Python rarely goes back to the OS: raise the bar so we do not
        # spill after every batch from here on.
        self.memory_limit = max(self.memory_limit, used_memory_mb() * 1.05)

    def items(self) -> Iterator[Any]:
        """The (key, combiner) pairs; merges spilled buckets one at a time."""
        if not self.spills:
            return iter(self.data.items())
        self._spill()
        return self._merged_items()

    def _merged_items(self) -> Iterator[Any]:
        assert self._dir is not None
        comb = self.agg.mergeCombiners
        try:
            for i in range(self.BUCKETS):
                path = os.path.join(self._dir, str(i))
                if not os.path.exists(path):
                    continue
                merged: dict[Any, Any] = {}
                with open(path, "rb") as f:
                    for chunk in load_chunks(f):
                        for k, v in chunk:
                            merged[k] = comb(merged[k], v) if k in merged else v
                os.unlink(path)
                yield from merged.items()
                del merged
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


class ExternalGroupBy(ExternalMerger):
    """ExternalMerger for groupByKey, whose combiners are lists."""


class ExternalSorter:
    """Sort an iterator in memory, or in spilled sorted runs merged at the end."""

    def __init__(self, memory_limit_mb: float = 512) -> None:
        self.memory_limit = memory_limit_mb

    def sorted(
        self,
        iterator: Iterable[Any],
        key: Callable[[Any], Any] | None = None,
        reverse: bool = False,
        observe: Callable[[list[Any]], None] | None = None,
        keep_input: list[list[Any]] | None = None,
    ) -> Iterable[Any]:
        """The items sorted by `key` (stable); `observe` sees them first, in batches (and
        may rewrite a batch in place).

        With `keep_input`, an in-memory sort appends the items in input order to it: a
        caller that drops the sorted list first and that one last frees the items in
        the order they were allocated, 4-5 times faster than in sorted order (which
        misses the CPU cache on every item).
        """
        runs: list[str] = []
        spill_dir: str | None = None
        chunk: list[Any] = []
        source = iter(iterator)
        while True:
            # Whole batches at C speed; the memory check once per batch.
            piece = list(itertools.islice(source, 10_000))
            if not piece:
                break
            if observe is not None:
                observe(piece)
            chunk.extend(piece)
            if used_memory_mb() > self.memory_limit:
                if spill_dir is None:
                    spill_dir = new_spill_dir()
                runs.append(self._spill_run(chunk, key, reverse, spill_dir, len(runs)))
                chunk = []
                gc.collect()
                self.memory_limit = max(self.memory_limit, used_memory_mb() * 1.05)
        if not runs:
            if keep_input is not None:
                keep_input.append(chunk)
                return sorted(chunk, key=key, reverse=reverse)
            chunk.sort(key=key, reverse=reverse)
            return chunk
        chunk.sort(key=key, reverse=reverse)
        assert spill_dir is not None
        runs.append(self._spill_run(chunk, key, reverse, spill_dir, len(runs)))
        return self._merge_runs(runs, key, reverse, spill_dir)

    @staticmethod
    def _spill_run(
        chunk: list[Any],
        key: Callable[[Any], Any] | None,
        reverse: bool,
        spill_dir: str,
        index: int,
    ) -> str:
        chunk.sort(key=key, reverse=reverse)
        path = os.path.join(spill_dir, f"run-{index}")
        written = 0
        with open(path, "wb") as f:
            for start in range(0, len(chunk), 1000):
                written += dump_chunk(chunk[start : start + 1000], f)
        SPILL_STATS["diskBytesSpilled"] += written
        SPILL_STATS["spills"] += 1
        return path

    @staticmethod
    def _merge_runs(
        runs: list[str], key: Callable[[Any], Any] | None, reverse: bool, spill_dir: str
    ) -> Iterator[Any]:
        def read(path: str) -> Iterator[Any]:
            with open(path, "rb") as f:
                for chunk in load_chunks(f):
                    yield from chunk

        try:
            yield from heapq.merge(*[read(p) for p in runs], key=key, reverse=reverse)
        finally:
            shutil.rmtree(spill_dir, ignore_errors=True)
