"""Reading and writing files: textFile, wholeTextFiles, binary files, pickle files, checkpoints.

Input splits follow Hadoop's FileInputFormat rules (goal size from
minPartitions, 32 MiB local block size, 10% slop; a line belongs to the split
it starts in) so partition layouts match PySpark's. Output writes one
`part-NNNNN` file per partition plus `_SUCCESS`. Splits are planned on the
driver; files are read and written by tasks on the executors.
"""

from __future__ import annotations

import bz2
import functools
import glob
import gzip
import io
import itertools
import os
import re
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from scheduler import settings
from scheduler.rdd.rdd import RDD
from scheduler.shuffle.aggregation import dump_chunk, load_chunks

if TYPE_CHECKING:
    from scheduler.rdd.host import RDDHost
    from scheduler.task.taskcontext import TaskContext

__all__ = [
    "BinaryFilesRDD",
    "BinaryRecordsRDD",
    "PickleFileRDD",
    "TextFileRDD",
    "WholeTextFilesRDD",
    "combine_files",
    "expand_braces",
    "list_input_files",
    "save_as_pickle_file",
    "save_as_text_file",
    "split_path_list",
]

_BLOCK_SIZE = 32 * 1024 * 1024
_SLOP = 1.1


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://") :]
    if path.startswith("file:"):
        return path[len("file:") :]
    return path


def split_path_list(path: str) -> list[str]:
    """Hadoop's comma-separated path list, where a comma inside `{...}` is the glob's."""
    parts: list[str] = []
    depth = start = 0
    for index, char in enumerate(path):
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == "," and not depth:
            parts.append(path[start:index])
            start = index + 1
    parts.append(path[start:])
    return parts


def expand_braces(pattern: str) -> list[str]:
    """Hadoop's glob alternation, which Python's glob lacks: `a{b,c{d,e}}` is ab, acd, ace.

    An unbalanced `{` is taken literally.
    """
    start = pattern.find("{")
    if start == -1:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        if pattern[end] == "{":
            depth += 1
        elif pattern[end] == "}":
            depth -= 1
            if not depth:
                head, tail = pattern[:start], pattern[end + 1 :]
                options = split_path_list(pattern[start + 1 : end])
                return [x for option in options for x in expand_braces(head + option + tail)]
    return [pattern]


def list_input_files(path: str, nested_dirs_fail: bool = False) -> list[str]:
    """The files named by `path`: comma-separated paths, directories or globs
    (Hadoop's: `*`, `?`, `[...]` and `{a,b}`).

    Subdirectories of a named directory are skipped, or, with
    `nested_dirs_fail` (Hadoop's record readers: textFile, pickleFile), an error.

    Raises:
        FileNotFoundError: naming a path that matches nothing.
        IsADirectoryError: a named directory holds a directory and `nested_dirs_fail`.
    """
    files: list[str] = []
    for part in split_path_list(path):
        local = _local_path(part.strip())
        patterns = expand_braces(local)
        if len(patterns) > 1 or glob.has_magic(local):
            # Hadoop's hidden-file filter: a glob never matches _SUCCESS-style or dot files.
            found = {m for p in patterns for m in glob.glob(p)}
            matches = sorted(m for m in found if not os.path.basename(m).startswith(("_", ".")))
        else:
            matches = [local]
        if not matches or not all(os.path.exists(m) for m in matches):
            raise FileNotFoundError(f"Input path does not exist: {part.strip()}")
        for match in matches:
            if os.path.isdir(match):
                # Hadoop's local file system lists a directory in readdir order, as
                # os.listdir does (globs come back sorted).
                for name in os.listdir(match):
                    full = os.path.join(match, name)
                    if name.startswith(("_", ".")):
                        continue
                    if os.path.isfile(full):
                        files.append(os.path.abspath(full))
                    elif nested_dirs_fail and os.path.isdir(full):
                        raise IsADirectoryError(
                            f"Path: {os.path.abspath(full)} is a directory, which is not "
                            "supported by the record reader when "
                            "`mapreduce.input.fileinputformat.input.dir.recursive` is false."
                        )
            else:
                files.append(os.path.abspath(match))
    return files


def _splittable(path: str) -> bool:
    return not path.endswith((".gz", ".bz2", ".deflate", ".zst", ".xz"))


def _open_input(path: str) -> Any:
    """A binary file object of `path`'s data, decompressed by its extension as Hadoop does."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    if path.endswith(".deflate"):  # DefaultCodec: one zlib stream
        with open(path, "rb") as f:
            return io.BytesIO(zlib.decompress(f.read()))
    return open(path, "rb")


class _DeflateWriter:
    """A write-only file that zlib-compresses into `path` (Hadoop's DefaultCodec)."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._zlib = zlib.compressobj()

    def write(self, data: bytes) -> None:
        self._file.write(self._zlib.compress(data))

    def close(self) -> None:
        self._file.write(self._zlib.flush())
        self._file.close()

    def __enter__(self) -> _DeflateWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Hadoop codec classes saveAsTextFile writes, by their class name: extension, opener.
_OUTPUT_CODECS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "GzipCodec": (".gz", functools.partial(gzip.open, mode="wb")),
    "BZip2Codec": (".bz2", functools.partial(bz2.open, mode="wb")),
    "DefaultCodec": (".deflate", _DeflateWriter),
    "DeflateCodec": (".deflate", _DeflateWriter),
}


def _output_codec(codec: str | None) -> tuple[str, Callable[[str], Any]]:
    """Extension and opener for a compressionCodecClass (none: plain files).

    Raises:
        ValueError: a codec sparkctl cannot write (Snappy, LZ4, ZStandard...).
    """
    if codec is None:
        return "", functools.partial(open, mode="wb")
    found = _OUTPUT_CODECS.get(codec.rsplit(".", 1)[-1])
    if found is None:
        known = ", ".join(f"org.apache.hadoop.io.compress.{n}" for n in _OUTPUT_CODECS)
        raise ValueError(f"compression codec {codec} is not supported; sparkctl writes {known}")
    return found


class TextFileRDD(RDD):
    """Lines of text files, split as Hadoop's TextInputFormat does."""

    def __init__(self, ctx: RDDHost, path: str, min_partitions: int, use_unicode: bool) -> None:
        super().__init__(ctx, [])
        files = list_input_files(path, nested_dirs_fail=True)
        sizes = {f: os.path.getsize(f) for f in files}
        goal = sum(sizes.values()) // max(min_partitions, 1)
        self._splits: list[tuple[str, int, int]] = []
        for f in files:
            length = sizes[f]
            if length == 0:
                continue  # Spark drops empty splits (spark.hadoopRDD.ignoreEmptySplits)
            if not _splittable(f) and not f.endswith(".bz2"):
                self._splits.append((f, 0, length))
                continue
            # BZip2 is splittable in Hadoop: its splits are planned like plain text. Each
            # starts at the next bzip2 block; we read a file whole in its first split.
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
        if path.endswith(".bz2") and start != 0:
            return iter(())
        if self._use_unicode and _splittable(path):
            return _decoded_lines(_read_split(path, start, length))
        lines = _read_lines(path, start, length)
        if self._use_unicode:
            return (line.decode("utf-8", "replace") for line in lines)
        return (_as_java_string_bytes(line) for line in lines)


def _as_java_string_bytes(line: bytes) -> bytes:
    """`line` after PySpark's trip through a Java String: invalid UTF-8 becomes U+FFFD."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("utf-8", "replace").encode("utf-8")
    return line


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith((b"\n", b"\r")):
        return line[:-1]
    return line


def _read_lines(path: str, start: int, length: int) -> Iterator[bytes]:
    if not _splittable(path):
        with _open_input(path) as f:
            first = f.readline()
            first = first[len(_BOM) :] if first.startswith(_BOM) else first
            head = [first] if first else []
            for line in itertools.chain(head, f):
                if b"\r" in line[:-2]:
                    yield from _split_lines(line)  # lone \r ends lines too
                else:
                    yield _strip_eol(line)
        return
    yield from _split_lines(_read_split(path, start, length))


_BOM = b"\xef\xbb\xbf"


def _read_split(path: str, start: int, length: int) -> bytes:
    """The bytes of the lines that start in [start, start + length]."""
    with open(path, "rb") as f:
        f.seek(start)
        # Our bytes, plus the rest of the line that starts at or crosses our end
        # (Hadoop's reader takes lines while their start is <= end).
        data = f.read(length) + f.readline()
    if start == 0 and data.startswith(_BOM):
        # Hadoop's LineRecordReader skips a UTF-8 byte order mark at the start of a file.
        data = data[len(_BOM) :]
    if start != 0:
        # The line that straddles (or starts at) our start belongs to the previous split.
        cut = data.find(b"\n")
        data = b"" if cut < 0 else data[cut + 1 :]
    return data


def _split_lines(data: Any) -> Iterator[Any]:
    """Lines of `data` (bytes or str) ended, as in Hadoop's LineReader, by \\n, \\r\\n or \\r."""
    if not data:
        return iter(())
    if isinstance(data, bytes):
        return iter(data.splitlines())  # exactly \n, \r\n and \r for bytes
    lines = _LINE_ENDS.split(data) if "\r" in data else data.split("\n")
    if not lines[-1]:
        lines.pop()
    return iter(lines)


_LINE_ENDS = re.compile("\r\n|\r|\n")

#: Bytes of a split decoded and cut into lines at a time (see `_decoded_lines`).
_PIECE = 1 << 20


def _decoded_lines(data: bytes) -> Iterator[str]:
    """The lines of UTF-8 `data` (invalid bytes replaced), decoded a piece at a time.

    Decoding and splitting a whole split at once (12 MB for a 100 MB file in 8
    partitions) holds its text and every line of it at the same time; a piece of
    about _PIECE bytes is decoded, split and consumed while still in the CPU's
    cache, and its memory is reused by the next. Each piece ends just after a
    \n, which is never part of a multibyte UTF-8 sequence and ends any \r\n,
    so the decoded characters and the lines are exactly those of the whole.
    """
    if len(data) <= _PIECE:
        return _split_lines(data.decode("utf-8", "replace"))
    return itertools.chain.from_iterable(map(_piece_lines, _pieces(data)))


def _pieces(data: bytes) -> Iterator[memoryview]:
    """`data` cut just after a \n at least every _PIECE bytes (the last piece: the rest)."""
    view = memoryview(data)
    size = len(data)
    start = 0
    while start < size:
        cut = data.find(b"\n", start + _PIECE - 1)
        end = size if cut < 0 else cut + 1
        yield view[start:end]
        start = end


def _piece_lines(piece: memoryview) -> list[str]:
    text = str(piece, "utf-8", "replace")
    lines = _LINE_ENDS.split(text) if "\r" in text else text.split("\n")
    if not lines[-1]:
        lines.pop()
    return lines


def combine_files(files: list[str], max_split: int) -> list[list[str]]:
    """Files packed into splits as Hadoop's CombineFileInputFormat does on one node.

    Hadoop first packs the files that have a block on the node (the non-empty
    ones), in order, into splits of `max_split` bytes or more (0: no limit);
    what is left of them joins the empty files, which have no location, and
    all of those are packed again in listing order, the remainder making the
    last split.
    """
    sizes = {f: os.path.getsize(f) for f in files}
    groups: list[list[str]] = []
    placed: set[str] = set()
    current: list[str] = []
    size = 0
    for f in (f for f in files if sizes[f] > 0):
        current.append(f)
        size += sizes[f]
        if max_split and size >= max_split:
            groups.append(current)
            placed.update(current)
            current, size = [], 0
    current, size = [], 0
    for f in (f for f in files if f not in placed):
        current.append(f)
        size += sizes[f]
        if max_split and size >= max_split:
            groups.append(current)
            current, size = [], 0
    if current or not groups:
        groups.append(current)
    return groups


class WholeTextFilesRDD(RDD):
    """(path, content) per file, packed into splits of total size / minPartitions bytes."""

    def __init__(self, ctx: RDDHost, path: str, min_partitions: int, use_unicode: bool) -> None:
        super().__init__(ctx, [])
        files = list_input_files(path)
        total = sum(os.path.getsize(f) for f in files)
        self._groups = combine_files(files, -(-total // max(min_partitions, 1)))
        self._use_unicode = use_unicode

    def _num_partitions(self) -> int:
        return len(self._groups)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        # As Spark's WholeTextFileRecordReader: decompressed by extension, then through a
        # Java String (bad UTF-8 becomes U+FFFD); without use_unicode both are UTF-8 bytes.
        for f in self._groups[split]:
            with _open_input(f) as fh:
                text = fh.read().decode("utf-8", "replace")
            uri = "file:" + f
            yield (uri, text) if self._use_unicode else (uri.encode(), text.encode())


class BinaryFilesRDD(RDD):
    """(path, bytes) per file, packed as Spark's StreamFileInputFormat packs them.

    Splits hold up to min(spark.files.maxPartitionBytes, max(spark.files.openCostInBytes,
    the files' bytes plus an open cost each, over max(defaultParallelism, minPartitions))).
    """

    def __init__(self, ctx: RDDHost, path: str, min_partitions: int) -> None:
        super().__init__(ctx, [])
        conf = ctx.settings
        max_bytes = conf.get(settings.FILES_MAX_PARTITION_BYTES)
        open_cost = conf.get(settings.FILES_OPEN_COST)
        files = list_input_files(path)
        total = sum(os.path.getsize(f) + open_cost for f in files)
        per_core = total // max(ctx.defaultParallelism, min_partitions)
        max_split = min(max_bytes, max(open_cost, per_core))
        self._groups = combine_files(files, max_split)

    def _num_partitions(self) -> int:
        return len(self._groups)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        for f in self._groups[split]:
            with open(f, "rb") as fh:
                yield "file:" + f, fh.read()


class BinaryRecordsRDD(RDD):
    """Fixed-length records of flat binary files, one split per 32 MiB block of records."""

    def __init__(self, ctx: RDDHost, path: str, record_length: int) -> None:
        super().__init__(ctx, [])
        if record_length <= 0:
            raise ValueError(f"recordLength must be positive, got {record_length}")
        self._record_length = record_length
        # FixedLengthBinaryInputFormat: splits of the block size rounded down to whole records.
        split_size = max(record_length, _BLOCK_SIZE // record_length * record_length)
        self._splits: list[tuple[str, int, int]] = []
        for f in list_input_files(path):
            length = os.path.getsize(f)
            start = 0
            while length - start > split_size * _SLOP:
                self._splits.append((f, start, split_size))
                start += split_size
            if length - start > 0:
                self._splits.append((f, start, length - start))

    def _num_partitions(self) -> int:
        return len(self._splits)

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        path, start, length = self._splits[split]
        size = self._record_length
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(length)
        for offset in range(0, len(data), size):
            record = data[offset : offset + size]
            if len(record) < size:
                # Spark's FixedLengthBinaryRecordReader fails on a partial last record too.
                raise EOFError(
                    f"{path}: {os.path.getsize(path)} bytes is not a whole number "
                    f"of {size}-byte records"
                )
            yield record


class PickleFileRDD(RDD):
    """Items saved by saveAsPickleFile (or a checkpoint): one partition per part file.

    pickleFile reads part files in the directory's listing order, as Hadoop
    does; a checkpoint (`partition_order`) reads part-NNNNN as partition NNNNN.
    """

    def __init__(
        self, ctx: RDDHost, path: str, min_partitions: int = 0, partition_order: bool = False
    ) -> None:
        super().__init__(ctx, [])
        self.path = path
        files = list_input_files(path, nested_dirs_fail=True)
        self._files = [f for f in files if os.path.basename(f).startswith("part-")]
        if partition_order:
            self._files.sort()

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
    """Write `str(item)` lines, one part file per partition, compressed as `codec` says."""
    extension, opener = _output_codec(codec)
    out = _prepare_output_dir(path)

    def write(index: int, iterator: Iterator[Any]) -> Iterator[Any]:
        name = os.path.join(out, f"part-{index:05d}{extension}")
        tmp = name + ".tmp"
        with opener(tmp) as f:
            for x in iterator:
                if isinstance(x, bytes):
                    # PySpark writes bytes through a Java String: invalid UTF-8 becomes U+FFFD.
                    f.write(_as_java_string_bytes(x))
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
