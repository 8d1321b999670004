"""Hash join of one reduce partition's two sides within a memory budget.

A join's reduce task reads the left and the right pairs of its partition as
two streams (no tagged values, no cogroup lists). Each side goes into a dict,
a whole chunk at a time at C speed while its keys do not repeat (a shuffle's
chunks come as columns, keys and values: no tuple is built per pair);
the pairs come out in PySpark's order: keys in the order first seen (left
side first, then keys only on the right), each key's (v, w) with v in left
order and w in right order. When the process passes its memory budget
(`spark.python.worker.memory`), both sides are split into hash buckets on
disk and joined one bucket at a time (a Grace hash join), so memory stays
bounded and time linear. Runs in executors' Python workers; no network.
"""

from __future__ import annotations

import gc
import itertools
import operator
import os
import pickle
import shutil
from collections.abc import Iterable, Iterator
from typing import Any

from scheduler.shuffle import arenas
from scheduler.shuffle.aggregation import SPILL_STATS, dumps_records, new_spill_dir, used_memory_mb
from scheduler.shuffle.files import ShufflePairs

__all__ = ["HashJoin", "hash_join"]

#: Pairs taken from a stream at a time (dict() and update() over a chunk run at C speed).
_CHUNK = 1024
#: Chunks between two memory checks (a check reads /proc).
_CHECK_EVERY = 8
#: Left keys probed at a time when the sides are joined (see _probed).
_PROBE = 1024

_MISSING = object()
_key = operator.itemgetter(0)


class _Side:
    """One side's values by key: each key's first value, and every value of a repeated key."""

    __slots__ = ("first", "more")

    def __init__(self) -> None:
        self.first: dict[Any, Any] = {}
        #: Keys seen more than once: all their values, in stream order.
        self.more: dict[Any, list[Any]] = {}

    def add(self, chunk: list[Any]) -> None:
        """Add a chunk of (key, value) pairs."""
        first = self.first
        if first.keys().isdisjoint(map(_key, chunk)):
            # The common case of a key join: no key repeats. Two C-speed passes; a key
            # repeated within the chunk shows as a short count, and is undone (its new
            # keys were none of the old ones) and redone one pair at a time.
            size = len(first)
            first.update(chunk)
            if len(first) - size == len(chunk):
                return
            for k, _ in chunk:
                first.pop(k, None)
        self._add_each(chunk)

    def add_columns(self, keys: list[Any], values: list[Any]) -> None:
        """Add a chunk given as its keys and its values (as `add`, without the pairs)."""
        first = self.first
        if first.keys().isdisjoint(keys):
            size = len(first)
            first.update(zip(keys, values, strict=True))
            if len(first) - size == len(keys):
                return
            for k in keys:
                first.pop(k, None)
        self._add_each(zip(keys, values, strict=True))

    def _add_each(self, chunk: Iterable[Any]) -> None:
        """Add pairs one at a time: some key repeats."""
        first = self.first
        more = self.more
        for k, v in chunk:
            values = more.get(k)
            if values is not None:
                values.append(v)
            elif k in first:
                more[k] = [first[k], v]
            else:
                first[k] = v

    def pairs(self) -> Iterator[tuple[Any, Any]]:
        """The (key, value) pairs again, in the order they came (per key)."""
        more = self.more
        if not more:
            return iter(self.first.items())
        return self._expanded()

    def _expanded(self) -> Iterator[tuple[Any, Any]]:
        more = self.more
        for k, v in self.first.items():
            values = more.get(k)
            if values is None:
                yield k, v
            else:
                for x in values:
                    yield k, x


def _joined(left: _Side, right: _Side, pad_left: bool, pad_right: bool) -> Iterator[Any]:
    """(k, (v, w)) of two in-memory sides, in PySpark's order."""
    if left.more or right.more:
        return _joined_with_repeats(left, right, pad_left, pad_right)
    return itertools.chain.from_iterable(_probed(left.first, right.first, pad_left, pad_right))


def _probed(
    lfirst: dict[Any, Any], rfirst: dict[Any, Any], pad_left: bool, pad_right: bool
) -> Iterator[Iterator[Any]]:
    """The joined pairs of two sides whose keys do not repeat, _PROBE left keys at a time.

    No Python frame per key: each step probes the right side in C and pairs at C speed.
    Once a side outgrows the CPU cache each probe misses it (more than the rest of a
    pair's work), and so does the right value it finds: probing one step at a time,
    not every left key first, lets the consumer read those values, and the step's
    tuple let them go, while they are still cached. Time per pair then grows far
    less with the join's size (issue 13). Output order as before: left keys in order.
    """
    keys, values = iter(lfirst), iter(lfirst.values())
    getitem, get, itemgetter = rfirst.__getitem__, rfirst.get, operator.itemgetter
    every = True  # every left key so far is on the right: probe without a default
    matches = 0
    while ks := tuple(itertools.islice(keys, _PROBE)):
        vs = itertools.islice(values, len(ks))
        if every:
            try:
                # itemgetter looks the keys up in one tight C loop: the CPU overlaps the
                # cache misses of several probes (half the time of map(getitem, ...)).
                ws = itemgetter(*ks)(rfirst) if len(ks) > 1 else (getitem(ks[0]),)
            except KeyError:
                every = False
            else:
                matches += len(ws)
                yield zip(ks, zip(vs, ws, strict=True), strict=True)
                continue
        if pad_right:
            ws = list(map(get, ks))  # None for a missing right side
            if pad_left:  # the right-only keys come last unless every right key matched
                matches += sum(map(rfirst.__contains__, ks))
            yield zip(ks, zip(vs, ws, strict=True), strict=True)
            continue
        ws = list(map(get, ks, itertools.repeat(_MISSING)))
        # Found by identity (a value's own __eq__ is never called).
        found = list(map(operator.is_not, ws, itertools.repeat(_MISSING)))
        matches += found.count(True)
        yield itertools.compress(zip(ks, zip(vs, ws, strict=True), strict=True), found)
    if pad_left and matches < len(rfirst):
        only_right = list(itertools.filterfalse(lfirst.__contains__, rfirst))
        padded = zip([None] * len(only_right), map(getitem, only_right), strict=True)
        yield zip(only_right, padded, strict=True)


def _joined_with_repeats(
    left: _Side, right: _Side, pad_left: bool, pad_right: bool
) -> Iterator[Any]:
    lmore, rfirst, rmore = left.more, right.first, right.more
    none = (None,)
    for k, v in left.first.items():
        w = rfirst.get(k, _MISSING)
        if w is _MISSING:
            if not pad_right:
                continue
            ws: Iterable[Any] = none
        else:
            ws = rmore.get(k) or (w,)
        for x in lmore.get(k) or (v,):
            for y in ws:
                yield k, (x, y)
    if pad_left:
        lfirst = left.first
        for k, w in rfirst.items():
            if k not in lfirst:
                for y in rmore.get(k) or (w,):
                    yield k, (None, y)


class HashJoin:
    """The join of one partition's two sides; spills both into hash buckets past the budget.

    Args:
        memory_limit_mb: the resident-memory budget of this process.
    """

    BUCKETS = 59

    def __init__(self, memory_limit_mb: float) -> None:
        self.memory_limit = memory_limit_mb
        self.sides = (_Side(), _Side())
        self.spills = 0
        self._dir: str | None = None
        #: Per side: an open spill file and, per bucket, its (offset, length) chunks.
        self._files: list[Any] = []
        self._segments: list[list[list[tuple[int, int]]]] = []
        self._buffers: list[list[list[Any]]] = []

    def add(self, side: int, pairs: Iterable[Any]) -> None:
        """Add the (key, value) pairs of side 0 (left) or 1 (right); all of 0 before 1."""
        if isinstance(pairs, ShufflePairs):
            self._add_columns(side, pairs.columns())
            return
        source = iter(pairs)
        table = self.sides[side]
        chunks = 0
        while True:
            chunk = list(itertools.islice(source, _CHUNK))
            if not chunk:
                return
            if self._dir is not None:
                self._bucket(side, chunk)
                continue
            table.add(chunk)
            if chunks % _CHECK_EVERY == 0 and used_memory_mb() >= self.memory_limit:
                self._spill()
            chunks += 1

    def _add_columns(self, side: int, columns: Iterable[tuple[list[Any], list[Any]]]) -> None:
        table = self.sides[side]
        for chunks, (keys, values) in enumerate(columns):
            if self._dir is not None:
                self._bucket(side, list(zip(keys, values, strict=True)))
                continue
            table.add_columns(keys, values)
            if chunks % _CHECK_EVERY == 0 and used_memory_mb() >= self.memory_limit:
                self._spill()

    def pairs(self, pad_left: bool, pad_right: bool) -> Iterator[Any]:
        """(k, (v, w)) for each matching pair; None for a missing side where padded."""
        if self._dir is None:
            left, right = self.sides
            # The next task reuses the memory of these keys and their values (unpickled
            # next to them) instead of faulting fresh pages in (see arenas).
            arenas.pin(left.first, right.first)
            return _joined(left, right, pad_left, pad_right)
        return self._bucket_pairs(pad_left, pad_right)

    def _spill(self) -> None:
        """Move both in-memory sides into hash buckets on disk; later pairs go there too."""
        if self._dir is None:
            self._dir = new_spill_dir()
            for side in (0, 1):
                self._files.append(open(os.path.join(self._dir, str(side)), "w+b"))  # noqa: SIM115
                self._segments.append([[] for _ in range(self.BUCKETS)])
                self._buffers.append([[] for _ in range(self.BUCKETS)])
        for side, table in enumerate(self.sides):
            source = table.pairs()
            while chunk := list(itertools.islice(source, _CHUNK)):
                self._bucket(side, chunk)
            table.first.clear()
            table.more.clear()
            self._flush(side)
        self.spills += 1
        SPILL_STATS["spills"] += 1
        gc.collect()
        # Memory freed by Python rarely goes back to the OS: raise the bar, as ExternalMerger.
        self.memory_limit = max(self.memory_limit, used_memory_mb() * 1.05)

    def _bucket(self, side: int, chunk: list[Any]) -> None:
        buffers = self._buffers[side]
        n = self.BUCKETS
        for item in chunk:
            k, v = item
            bucket = hash(k) % n
            buffer = buffers[bucket]
            buffer.append(item if type(item) is tuple else (k, v))
            if len(buffer) >= _CHUNK:
                self._write(side, buffers, bucket)

    def _write(self, side: int, buffers: list[list[Any]], bucket: int) -> None:
        f = self._files[side]
        data = dumps_records(buffers[bucket])
        f.seek(0, os.SEEK_END)
        self._segments[side][bucket].append((f.tell(), len(data)))
        f.write(data)
        SPILL_STATS["diskBytesSpilled"] += len(data)
        buffers[bucket] = []

    def _flush(self, side: int) -> None:
        buffers = self._buffers[side]
        for bucket, buffer in enumerate(buffers):
            if buffer:
                self._write(side, buffers, bucket)

    def _load(self, side: int, bucket: int) -> _Side:
        table = _Side()
        f = self._files[side]
        for offset, length in self._segments[side][bucket]:
            f.seek(offset)
            table.add(pickle.loads(f.read(length)))
        return table

    def _bucket_pairs(self, pad_left: bool, pad_right: bool) -> Iterator[Any]:
        try:
            for side in (0, 1):
                self._flush(side)
            for bucket in range(self.BUCKETS):
                left, right = self._load(0, bucket), self._load(1, bucket)
                yield from _joined(left, right, pad_left, pad_right)
                del left, right
        finally:
            self.close()

    def close(self) -> None:
        """Remove the spill files (a join that failed or was not read to the end)."""
        for f in self._files:
            f.close()
        self._files = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def hash_join(
    memory_limit_mb: float,
    pad_left: bool,
    pad_right: bool,
    left: Iterable[Any],
    right: Iterable[Any],
) -> Iterator[Any]:
    """The (k, (v, w)) pairs of joining `left` and `right` pairs (one partition each).

    `pad_left` and `pad_right` pair the keys of only the other side with None, for
    rightOuterJoin, leftOuterJoin and fullOuterJoin; neither is the inner join.
    """
    joiner = HashJoin(memory_limit_mb)
    try:
        joiner.add(0, left)
        joiner.add(1, right)
    except BaseException:
        joiner.close()
        raise
    return joiner.pairs(pad_left, pad_right)
