"""Reading and writing files: textFile, wholeTextFiles, pickle files, checkpoints.

Input splits follow Hadoop's FileInputFormat rules (goal size from
minPartitions, 32 MiB local block size, 10% slop; a line belongs to the split
it starts in) so partition layouts match PySpark's. Output writes one
`part-NNNNN` file per partition plus `_SUCCESS`. Splits are planned on the
driver; files are read and written by tasks on the executors.
"""

from __future__ import annotations

import glob
import gzip
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scheduler._aggregation import dump_chunk, load_chunks
from scheduler._rdd import RDD

if TYPE_CHECKING:
    from scheduler._context import SparkContext
    from scheduler._taskcontext import TaskContext

__all__ = [
    "PickleFileRDD",
    "TextFileRDD",
    "WholeTextFilesRDD",
    "list_input_files",
    "save_as_pickle_file",
    "save_as_text_file",
]

_BLOCK_SIZE = 32 * 1024 * 1024
_SLOP = 1.1


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    return path


def list_input_files(path: str) -> list[str]:
    """The files named by `path`: comma-separated paths, directories or globs.

    Raises:
        FileNotFoundError: naming a path that matches nothing.
    """
    files: list[str] = []
    for part in path.split(","):
        local = _local_path(part.strip())
        if glob.has_magic(local):
            # Hadoop's hidden-file filter: a glob never matches _SUCCESS-style or dot files.
            matches = sorted(
                m for m in glob.glob(local) if not os.path.basename(m).startswith(("_", "."))
            )
        else:
            matches = [local]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise FileNotFoundError(f"Input path does not exist: {part.strip()}")
        for match in matches:
            if os.path.isdir(match):
                for name in sorted(os.listdir(match)):
                    full = os.path.join(match, name)
                    if not name.startswith(("_", ".")) and os.path.isfile(full):
                        files.append(os.path.abspath(full))
            else:
                files.append(os.path.abspath(match))
    return files


def _splittable(path: str) -> bool:
    return not path.endswith((".gz", ".bz2", ".zst", ".xz"))


class TextFileRDD(RDD):
    """Lines of text files, split as Hadoop's TextInputFormat does."""

    def __init__(
        self, ctx: SparkContext, path: str, min_partitions: int, use_unicode: bool
    ) -> None:
        super().__init__(ctx, [])
        files = list_input_files(path)
        sizes = {f: os.path.getsize(f) for f in files}
        goal = sum(sizes.values()) // max(min_partitions, 1)
        self._splits: list[tuple[str, int, int]] = []
        for f in files:
            length = sizes[f]
            if length == 0:
                continue  # Spark drops empty splits (spark.hadoopRDD.ignoreEmptySplits)
            if not _splittable(f):
                self._splits.append((f, 0, length))
                continue
            split_size = max(1, min(goal, _BLOCK_SIZE))
            remaining = length
            while remaining / split_size > _SLOP:
                self._splits.append((f, length - remaining, split_size))
                remaining -= split_size
            if remaining:
                self._splits.append((f, length - remaining, remaining))
        self._use_unicode = use_unicode

    def _num_partitions(self) -> int:
        return len(self._splits)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        path, start, length = self._splits[split]
        if self._use_unicode and _splittable(path):
            return _split_lines(_read_split(path, start, length).decode("utf-8"))
        lines = _read_lines(path, start, length)
        if self._use_unicode:
            return (line.decode("utf-8") for line in lines)
        return lines


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith((b"\n", b"\r")):
        return line[:-1]
    return line


def _read_lines(path: str, start: int, length: int) -> Iterator[bytes]:
    if not _splittable(path):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            for line in f:
                yield _strip_eol(line)
        return
    yield from _split_lines(_read_split(path, start, length))


def _read_split(path: str, start: int, length: int) -> bytes:
    """The bytes of the lines that start in [start, start + length]."""
    with open(path, "rb") as f:
        f.seek(start)
        # Our bytes, plus the rest of the line that starts at or crosses our end
        # (Hadoop's reader takes lines while their start is <= end).
        data = f.read(length) + f.readline()
    if start != 0:
        # The line that straddles (or starts at) our start belongs to the previous split.
        cut = data.find(b"\n")
        data = b"" if cut < 0 else data[cut + 1 :]
    return data


def _split_lines(data: Any) -> Iterator[Any]:
    """Lines of `data` (bytes or str) without their \\n or \\r\\n."""
    if not data:
        return iter(())
    newline = "\n" if isinstance(data, str) else b"\n"
    lines = data.split(newline)
    if not lines[-1]:
        lines.pop()
    cr = "\r" if isinstance(data, str) else b"\r"
    if cr in data:
        lines = [line[:-1] if line.endswith(cr) else line for line in lines]
    return iter(lines)


class WholeTextFilesRDD(RDD):
    """(path, content) per file, files grouped into at most minPartitions partitions."""

    def __init__(
        self, ctx: SparkContext, path: str, min_partitions: int, use_unicode: bool
    ) -> None:
        super().__init__(ctx, [])
        files = list_input_files(path)
        n = max(1, min(min_partitions, len(files)))
        self._groups = [
            files[(i * len(files)) // n : ((i + 1) * len(files)) // n] for i in range(n)
        ]
        self._use_unicode = use_unicode

    def _num_partitions(self) -> int:
        return len(self._groups)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        for f in self._groups[split]:
            with open(f, "rb") as fh:
                data = fh.read()
            uri = "file:" + f
            yield (uri, data.decode("utf-8")) if self._use_unicode else (uri, data)


class PickleFileRDD(RDD):
    """Items saved by saveAsPickleFile (or a checkpoint): one partition per part file."""

    def __init__(self, ctx: SparkContext, path: str, min_partitions: int = 0) -> None:
        super().__init__(ctx, [])
        self.path = path
        self._files = [f for f in list_input_files(path) if os.path.basename(f).startswith("part-")]

    def _num_partitions(self) -> int:
        return len(self._files)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        with open(self._files[split], "rb") as f:
            for chunk in load_chunks(f):
                yield from chunk


def _prepare_output_dir(path: str) -> str:
    local = _local_path(path)
    if os.path.exists(local):
        raise FileExistsError(f"Output directory file:{os.path.abspath(local)} already exists")
    os.makedirs(local)
    return os.path.abspath(local)


def save_as_text_file(rdd: RDD, path: str, codec: str | None) -> None:
    """Write `str(item)` lines, one part file per partition (gzip when the codec says Gzip)."""
    out = _prepare_output_dir(path)
    compress = codec is not None and "gzip" in codec.lower()

    def write(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        name = os.path.join(out, f"part-{index:05d}" + (".gz" if compress else ""))
        tmp = name + ".tmp"
        with gzip.open(tmp, "wb") if compress else open(tmp, "wb") as f:
            for x in iterator:
                if isinstance(x, bytes):
                    f.write(x)
                else:
                    f.write(str(x).encode("utf-8"))
                f.write(b"\n")
        os.replace(tmp, name)
        return iter([])

    rdd.mapPartitionsWithIndex(write).count()
    open(os.path.join(out, "_SUCCESS"), "wb").close()


def write_pickle_partitions(rdd: RDD, out: str, batch_size: int) -> None:
    """Write each partition as pickled batches to `out/part-NNNNN`."""

    def write(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        name = os.path.join(out, f"part-{index:05d}")
        tmp = name + ".tmp"
        with open(tmp, "wb") as f:
            batch: list[Any] = []
            for x in iterator:
                batch.append(x)
                if len(batch) >= batch_size:
                    dump_chunk(batch, f)
                    batch = []
            if batch:
                dump_chunk(batch, f)
        os.replace(tmp, name)
        return iter([])

    rdd.mapPartitionsWithIndex(write).count()


def save_as_pickle_file(rdd: RDD, path: str, batch_size: int) -> None:
    """saveAsPickleFile: pickled batches, one part file per partition."""
    out = _prepare_output_dir(path)
    write_pickle_partitions(rdd, out, max(1, batch_size))
    open(os.path.join(out, "_SUCCESS"), "wb").close()
