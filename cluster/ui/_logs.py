"""Finding and reading executor and driver log files for the worker UI, safely.

A request names a log by ids (`appId`, `executorId`, `driverId`) and a type
(`stdout` or `stderr`), never by path. Ids are checked against a strict
pattern and the resolved file must lie inside the worker's work directory,
so `..`, absolute paths and symlinks leading out are refused. This module
never writes or deletes anything.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

__all__ = ["LOG_TYPES", "LogChunk", "LogRequestError", "log_path", "read_log"]

LOG_TYPES = ("stdout", "stderr")
#: The most a single page shows, and its default (the end of the file).
MAX_CHUNK = 1 << 20
DEFAULT_CHUNK = 100 * 1024

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class LogRequestError(ValueError):
    """The request names no log we may serve; `status` is the HTTP code to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class LogChunk:
    """A piece of a log file: bytes [start, end) of a file of `total` bytes."""

    text: str
    start: int
    end: int
    total: int


def _check_id(name: str, value: str) -> str:
    if not _ID.match(value) or value in (".", ".."):
        raise LogRequestError(f"bad {name} {value[:80]!r}")
    return value


def log_path(
    root: Path,
    log_type: str,
    app_id: str | None = None,
    executor_id: str | None = None,
    driver_id: str | None = None,
    known_dirs: dict[tuple[str, str], str] | None = None,
) -> Path:
    """The log file named by a request, inside `root`.

    Args:
        root: the worker's work directory.
        log_type: `stdout` or `stderr`.
        app_id: with `executor_id`: an executor's log.
        executor_id: the executor's id within the app.
        driver_id: alternatively, a cluster-mode driver's log.
        known_dirs: work directories the worker reported, keyed by
            (app_id, executor_id) or (driver_id, ""); they win over the default layout
            `root/<app>/<executor>/` and `root/<driver>/`.

    Raises:
        LogRequestError: bad ids or type (400), or a path outside `root` or a
            missing file (404).
    """
    if log_type not in LOG_TYPES:
        raise LogRequestError(f"bad logType {log_type[:20]!r}: expected stdout or stderr")
    dirs = known_dirs or {}
    if driver_id is not None:
        key = (_check_id("driverId", driver_id), "")
        directory = Path(dirs[key]) if key in dirs else root / driver_id
    elif app_id is not None and executor_id is not None:
        key = (_check_id("appId", app_id), _check_id("executorId", executor_id))
        directory = Path(dirs[key]) if key in dirs else root / app_id / executor_id
    else:
        raise LogRequestError("name a log with appId and executorId, or with driverId")
    real_root = root.resolve()
    path = (directory / log_type).resolve()
    if real_root not in path.parents:
        raise LogRequestError("that log is not inside this worker's work directory", 404)
    if not path.is_file():
        owner = (
            f"driver {driver_id}"
            if driver_id is not None
            else (f"executor {executor_id} of {app_id}")
        )
        if not directory.is_dir():
            raise LogRequestError(
                f"the work dir of {owner} is not on this worker: it never ran here, or its "
                "logs were deleted (spark.worker.cleanup.appDataTtl)",
                404,
            )
        raise LogRequestError(f"{owner} has no {log_type} log (yet)", 404)
    return path


def read_log(path: Path, offset: int | None = None, length: int = DEFAULT_CHUNK) -> LogChunk:
    """Read `length` bytes from `offset` (default: the end of the file).

    Raises:
        LogRequestError: a negative length or offset.
    """
    if length < 0 or (offset is not None and offset < 0):
        raise LogRequestError("offset and byteLength must not be negative")
    length = min(length, MAX_CHUNK)
    with open(path, "rb") as handle:
        total = os.fstat(handle.fileno()).st_size
        start = max(0, total - length) if offset is None else min(offset, total)
        handle.seek(start)
        data = handle.read(length)
    return LogChunk(data.decode("utf-8", errors="replace"), start, start + len(data), total)
