"""The driver's event log: one JSON-lines file of Spark listener events per application.

`EventLogSettings.from_conf` reads spark.eventLog.* and fails at SparkContext
start, naming the key, for a missing directory or an unknown codec.
`EventLogWriter` is a task scheduler listener: on the job path it only
timestamps an event and queues it; a background thread encodes (Spark's
JsonProtocol, see `scheduler.status.jsonprotocol`), writes, and flushes whenever the queue
runs dry. The file is `<dir>/<app id>[.gzip].inprogress` while the
application runs and loses `.inprogress` at stop. An I/O error (full disk,
removed directory) logs one warning and turns the log off: it never fails a
job. `read_log` reads a log back, skipping lines that are not JSON events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import logging
import os
import queue
import re
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from rpcenv import Conf
from scheduler import settings
from scheduler.core.events import SchedulerEvent
from scheduler.status.jsonprotocol import EventEncoder

__all__ = [
    "DEFAULT_LOG_DIR",
    "EventLogSettings",
    "EventLogWriter",
    "LogFile",
    "log_dir_path",
    "parse_log_name",
    "read_log",
]

log = logging.getLogger(__name__)

#: Spark's default spark.eventLog.dir and spark.history.fs.logDirectory.
DEFAULT_LOG_DIR = Conf().get(settings.EVENT_LOG_DIR)
IN_PROGRESS = ".inprogress"
#: Codecs sparkctl writes and reads (Python's stdlib has none of Spark's own).
CODECS = ("gzip",)
#: Spark's codecs: named in errors, and their logs are passed over when listing.
SPARK_CODECS = ("lz4", "lzf", "snappy", "zstd")
#: Seconds stop() waits for the writer to drain the queue.
STOP_TIMEOUT = 30.0
_MAX_BATCH = 1024
#: Spark's compact JSON; made once (json.dumps with options builds an encoder per call).
_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False)

#: What the writer thread takes off its queue: an event and when it was heard, or
#: (None, end ms) to finish the log.
_Item = tuple[SchedulerEvent, float] | tuple[None, int]


def log_dir_path(text: str, key: str) -> Path:
    """A local directory from a plain path or a `file:` URI.

    Raises:
        ValueError: another scheme (hdfs:, s3a:, ...), naming `key`.
    """
    value = text.strip()
    if value.startswith("file:"):
        rest = value[len("file:") :]
        if rest.startswith("//"):
            host, _, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise ValueError(f"{key}: {text!r} names host {host!r}; use a local directory")
            rest = "/" + path
        return Path(rest).expanduser().absolute()
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
        raise ValueError(
            f"{key}: only local directories (a path or a file: URI) are supported, not {text!r}"
        )
    return Path(value).expanduser().absolute()


def _sanitize(app_id: str) -> str:
    """Spark's file name for an app id (Utils.sanitizeDirName)."""
    return re.sub(r"[.${}'\"]", "_", re.sub(r"[ :/]", "-", app_id)).lower()


@dataclasses.dataclass(frozen=True)
class LogFile:
    """What a file name in the log directory says."""

    app_id: str
    codec: str | None
    in_progress: bool


def parse_log_name(name: str) -> LogFile | None:
    """The app id, codec and state of an event log file name; None for other files."""
    if name.startswith("."):
        return None
    in_progress = name.endswith(IN_PROGRESS)
    stem = name.removesuffix(IN_PROGRESS)
    app_id, dot, ext = stem.partition(".")
    if not app_id or (dot and ext not in CODECS + SPARK_CODECS):
        return None
    return LogFile(app_id, ext or None, in_progress)


@dataclasses.dataclass(frozen=True)
class EventLogSettings:
    """spark.eventLog.*, checked."""

    directory: Path
    codec: str | None
    overwrite: bool

    @classmethod
    def from_conf(cls, conf: Conf) -> EventLogSettings | None:
        """The settings, or None when spark.eventLog.enabled is false.

        Raises:
            FileNotFoundError: spark.eventLog.dir does not exist (or is not a directory).
            ValueError: a bad value, naming its key.
        """
        if not conf.get(settings.EVENT_LOG_ENABLED):
            return None
        text = conf.get(settings.EVENT_LOG_DIR) or DEFAULT_LOG_DIR
        directory = log_dir_path(text, settings.EVENT_LOG_DIR.key)
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise FileNotFoundError(
                f"spark.eventLog.dir: log directory {text} {what}; create it or set "
                "spark.eventLog.dir (or spark.eventLog.enabled=false)"
            )
        codec_key = settings.EVENT_LOG_CODEC.key
        codec = (conf.get(settings.EVENT_LOG_CODEC) or CODECS[0]).strip().lower()
        if codec not in CODECS:
            hint = " (Spark's codecs are not in Python's stdlib)" if codec in SPARK_CODECS else ""
            raise ValueError(
                f"{codec_key}: unknown codec {codec!r}{hint}; use one of {', '.join(CODECS)}"
            )
        compress = conf.get(settings.EVENT_LOG_COMPRESS)
        overwrite = conf.get(settings.EVENT_LOG_OVERWRITE)
        return cls(directory, codec if compress else None, overwrite)


class EventLogWriter:
    """A scheduler listener that writes the event log on a background thread."""

    def __init__(self, settings: EventLogSettings) -> None:
        self.settings = settings
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._enabled = True
        #: False once stopped or disabled: later events are not even queued.
        self._accepting = True
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self.path: Path | None = None
        self.in_progress_path: Path | None = None

    def __call__(self, event: SchedulerEvent) -> None:
        # The job path: a timestamp and a queue put, nothing else.
        if self._accepting:
            self._queue.put((event, event.time or time.time()))

    @property
    def enabled(self) -> bool:
        """False once an I/O error turned the log off."""
        return self._enabled

    def start(
        self,
        app_id: str,
        app_name: str,
        start_ms: int,
        user: str,
        conf: Iterable[tuple[str, str]],
    ) -> None:
        """Create `<app id>.inprogress` and start writing (events queued so far come after).

        Raises:
            FileExistsError: the log exists and spark.eventLog.overwrite is false.
        """
        name = _sanitize(app_id) + (f".{self.settings.codec}" if self.settings.codec else "")
        self.path = self.settings.directory / name
        self.in_progress_path = self.settings.directory / (name + IN_PROGRESS)
        if not self.settings.overwrite:
            for path in (self.path, self.in_progress_path):
                if path.exists():
                    raise FileExistsError(
                        f"event log {path} already exists (set spark.eventLog.overwrite=true)"
                    )
        try:
            self._file = self._open(self.in_progress_path)
        except OSError as exc:
            self._disable(exc)
            return
        encoder = EventEncoder()
        header = encoder.header(app_id, app_name, start_ms, user, conf)
        self._thread = threading.Thread(
            target=self._run, args=(encoder, header), name="event-log-writer", daemon=True
        )
        self._thread.start()

    def _open(self, path: Path) -> IO[bytes]:
        raw = open(path, "wb")  # noqa: SIM115 - kept open until stop
        if self.settings.codec == "gzip":
            # GzipFile does not close a file it was given: _close does.
            return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="wb"))
        return raw

    def stop(self, end_ms: int | None = None) -> None:
        """Write ApplicationEnd, close, and drop `.inprogress` (waits up to STOP_TIMEOUT)."""
        thread = self._thread
        if thread is None:
            return
        self._thread = None
        self._accepting = False
        if self._enabled:
            self._queue.put((None, end_ms or int(time.time() * 1000)))
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning(
                "the event log writer did not finish within %.0f s; %s stays in progress",
                STOP_TIMEOUT,
                self.in_progress_path,
            )
            self._enabled = False

    # -- the writer thread ----------------------------------------------------------------

    def _run(self, encoder: EventEncoder, header: list[dict[str, Any]]) -> None:
        warned: set[str] = set()
        try:
            self._write(_lines(header))
            while True:
                batch = [self._queue.get()]
                with contextlib.suppress(queue.Empty):
                    while len(batch) < _MAX_BATCH:
                        batch.append(self._queue.get_nowait())
                for event, t in batch:
                    if event is None:
                        self._write(_lines(encoder.application_end(int(t))))
                        self._finish()
                        return
                    try:
                        text = _lines(encoder.encode(event, t))
                    except Exception as exc:  # a payload we cannot encode: skip it, keep logging
                        kind = type(event).__name__
                        if kind not in warned:
                            warned.add(kind)
                            log.warning("event log: cannot encode a %s event: %r", kind, exc)
                        continue
                    if text:
                        self._write(text)
                if self._file is not None:
                    self._file.flush()
        except Exception as exc:  # I/O above all; whatever it is, the jobs go on without the log
            self._disable(exc)

    def _write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text.encode())

    def _finish(self) -> None:
        self._close()
        assert self.in_progress_path is not None and self.path is not None
        if self.path.exists() and not self.settings.overwrite:
            raise FileExistsError(f"{self.path} appeared while the application ran")
        os.replace(self.in_progress_path, self.path)

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        inner = getattr(file, "fileobj", None)
        try:
            file.close()
        finally:
            if inner is not None:
                inner.close()

    def _disable(self, exc: BaseException) -> None:
        if self._enabled:
            log.warning("event log disabled (the application goes on): %s", exc)
        self._enabled = False
        self._accepting = False
        with contextlib.suppress(Exception):
            self._close()


def _lines(events: list[dict[str, Any]]) -> str:
    return "".join(_JSON.encode(e) + "\n" for e in events)


def read_log(path: Path, in_progress: bool = False) -> Iterator[dict[str, Any]]:
    """The JSON events of a log file, in order.

    A line that is not a JSON object with an "Event" is skipped (one warning
    per file); the last line of an in-progress log may be partial and is
    skipped quietly.
    """
    bad = 0
    try:
        with _open_for_read(path) as lines:
            for raw in lines:
                try:
                    event = json.loads(raw)
                except (ValueError, RecursionError):  # RecursionError: nested too deep
                    if in_progress and not raw.endswith(b"\n"):
                        break  # still being written
                    bad += 1
                    continue
                if not isinstance(event, dict) or not isinstance(event.get("Event"), str):
                    bad += 1
                    continue
                yield event
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if not in_progress:
            log.warning("%s: the compressed log ends early (%s); read what was there", path, exc)
    finally:
        if bad:
            log.warning("%s: skipped %d line(s) that are not JSON events", path, bad)


def _open_for_read(path: Path) -> IO[bytes]:
    parsed = parse_log_name(path.name)
    if parsed is not None and parsed.codec == "gzip":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")
