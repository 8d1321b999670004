"""`spark.read.text(path).rdd`: lines of text files as one-field rows, split as Spark SQL does.

Today's RDD examples start with ``spark.read.text(path).rdd.map(lambda r: r[0])``.
Spark SQL's file scan plans its partitions differently from ``textFile``:
files are cut into pieces of at most ``maxSplitBytes`` (128 MiB, or the
input's bytes plus a 4 MiB open cost per file spread over the default
parallelism, if larger than 4 MiB), the pieces are sorted largest first and
packed into partitions. This module reproduces that plan so that partition
layouts, and so the order of results, match PySpark's. Only the lines travel;
there is no DataFrame behind them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scheduler.rdd.fileio import (
    _decoded_lines,
    _read_lines,
    _read_split,
    _splittable,
    list_input_files,
)
from scheduler.rdd.rdd import RDD

if TYPE_CHECKING:
    from scheduler.rdd.host import RDDHost
    from scheduler.task.taskcontext import TaskContext

__all__ = ["Row", "TextScanRDD", "plan_file_partitions"]

#: spark.sql.files.maxPartitionBytes and spark.sql.files.openCostInBytes (Spark's defaults).
MAX_PARTITION_BYTES = 128 << 20
OPEN_COST_BYTES = 4 << 20

#: One piece of a file: (path, start, length).
Piece = tuple[str, int, int]


class Row(tuple):  # type: ignore[type-arg]
    """A row with named fields, as the ``Row(value='...')`` that PySpark's text scan yields."""

    __fields__: tuple[str, ...]

    def __new__(cls, **fields: Any) -> Row:
        row = super().__new__(cls, fields.values())
        row.__fields__ = tuple(fields)
        return row

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self.__fields__.index(name)]
        except (ValueError, AttributeError):
            raise AttributeError(name) from None

    def asDict(self) -> dict[str, Any]:
        """The fields as a dict."""
        return dict(zip(self.__fields__, self, strict=True))

    def __reduce__(self) -> Any:
        return (_make_row, (self.__fields__, tuple(self)))

    def __repr__(self) -> str:
        return (
            "Row("
            + ", ".join(f"{k}={v!r}" for k, v in zip(self.__fields__, self, strict=True))
            + ")"
        )


def _make_row(fields: tuple[str, ...], values: tuple[Any, ...]) -> Row:
    return Row(**dict(zip(fields, values, strict=True)))


def plan_file_partitions(files: list[str], parallelism: int) -> list[list[Piece]]:
    """Spark SQL's FilePartition plan for `files` read with `parallelism` cores."""
    sizes = {f: os.path.getsize(f) for f in files}
    total = sum(size + OPEN_COST_BYTES for size in sizes.values())
    max_split = min(MAX_PARTITION_BYTES, max(OPEN_COST_BYTES, total // max(parallelism, 1)))
    pieces: list[Piece] = []
    for f in files:
        size = sizes[f]
        if size == 0:
            continue
        if not _splittable(f):
            pieces.append((f, 0, size))
            continue
        pieces.extend(
            (f, start, min(max_split, size - start)) for start in range(0, size, max_split)
        )
    pieces.sort(key=lambda piece: piece[2], reverse=True)  # stable, as Scala's sortBy
    partitions: list[list[Piece]] = []
    current: list[Piece] = []
    current_size = 0
    for piece in pieces:
        if current and current_size + piece[2] > max_split:
            partitions.append(current)
            current, current_size = [], 0
        current.append(piece)
        current_size += piece[2] + OPEN_COST_BYTES
    if current:
        partitions.append(current)
    return partitions


class TextScanRDD(RDD):
    """``Row(value=line)`` for every line of the files, in Spark SQL's partitions."""

    def __init__(self, ctx: RDDHost, paths: list[str]) -> None:
        super().__init__(ctx, [])
        files = [f for path in paths for f in list_input_files(path)]
        self._partitions = plan_file_partitions(files, ctx.defaultParallelism)

    def _num_partitions(self) -> int:
        return len(self._partitions)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        for path, start, length in self._partitions[split]:
            if _splittable(path):
                lines: Iterator[Any] = _decoded_lines(_read_split(path, start, length))
            else:
                lines = (line.decode("utf-8", "replace") for line in _read_lines(path, 0, length))
            for line in lines:
                yield Row(value=line)
