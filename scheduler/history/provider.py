"""The history server's view of an event log directory: which applications, and their state.

`HistoryProvider` lists the logs in the directory (finished and in
progress) with what their ApplicationStart/End events say, and rebuilds an
application's `AppStatusStore` by replaying its log. Both are cached by each
file's size and modification time, so a request re-reads only logs that
changed. An application is looked up by the id its file name gives, in the
listing only: an id from a request never becomes part of a path. Nothing
here writes to the directory.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any

from scheduler.status.eventlog import LogFile, parse_log_name, read_log
from scheduler.status.jsonprotocol import MALFORMED, AppInfo, replay_events
from scheduler.status.ui import AppStatusStore

__all__ = ["AppEntry", "HistoryProvider"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AppEntry:
    """One application of the listing (times in ms since the epoch)."""

    app_id: str
    name: str
    user: str
    start_ms: int | None
    end_ms: int | None
    completed: bool
    last_updated_ms: int
    spark_version: str
    path: Path

    @property
    def duration_ms(self) -> int | None:
        """Run time: to the end, or (in progress) to the last write."""
        if self.start_ms is None:
            return None
        end = self.end_ms if self.completed and self.end_ms else self.last_updated_ms
        return max(0, end - self.start_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.app_id,
            "name": self.name,
            "sparkUser": self.user,
            "startTime": self.start_ms,
            "endTime": self.end_ms if self.completed else None,
            "duration": self.duration_ms,
            "completed": self.completed,
            "lastUpdated": self.last_updated_ms,
            "appSparkVersion": self.spark_version,
        }


class HistoryProvider:
    """Applications of one event log directory.

    Args:
        log_dir: the directory (spark.history.fs.logDirectory).
        retained: replayed applications kept in memory (spark.history.retainedApplications).
    """

    def __init__(self, log_dir: Path, retained: int = 50) -> None:
        self.log_dir = log_dir
        self._retained = max(1, retained)
        self._lock = threading.Lock()
        self._summaries: dict[Path, tuple[tuple[int, int], AppEntry]] = {}
        self._stores: collections.OrderedDict[Path, tuple[tuple[int, int], AppStatusStore]] = (
            collections.OrderedDict()
        )
        self._warned: set[str] = set()

    def applications(self) -> list[AppEntry]:
        """Every readable application, newest first (a finished log wins over its .inprogress)."""
        found: dict[str, AppEntry] = {}
        seen: set[Path] = set()
        try:
            entries = list(os.scandir(self.log_dir))
        except OSError as exc:
            log.warning("cannot list the event log directory %s: %s", self.log_dir, exc)
            return []
        for entry in entries:
            parsed = parse_log_name(entry.name)
            if parsed is None or not entry.is_file(follow_symlinks=False):
                continue
            if parsed.codec not in (None, "gzip"):
                self._warn_once(entry.name, "%s: codec %s is not supported; skipped", parsed.codec)
                continue
            path = Path(entry.path)
            seen.add(path)
            app = self._summary(path, parsed, entry.stat())
            if app is None:
                continue
            old = found.get(app.app_id)
            if old is None or (app.completed and not old.completed):
                found[app.app_id] = app
        with self._lock:
            for path in list(self._summaries):
                if path not in seen:
                    del self._summaries[path]
        return sorted(found.values(), key=lambda a: (a.start_ms or 0, a.app_id), reverse=True)

    def find(self, app_id: str) -> AppEntry | None:
        """The application of that id in the listing, else None."""
        for app in self.applications():
            if app.app_id == app_id:
                return app
        return None

    def store(self, app: AppEntry) -> AppStatusStore:
        """The application's status, replayed from its log (cached while the log is unchanged)."""
        try:
            stat = app.path.stat()
        except OSError:
            stat = None
        key = (stat.st_size, stat.st_mtime_ns) if stat is not None else (-1, -1)
        with self._lock:
            cached = self._stores.get(app.path)
            if cached is not None and cached[0] == key:
                self._stores.move_to_end(app.path)
                return cached[1]
        store = AppStatusStore(app.app_id, app.name)
        store.environment = {}  # the log's, not the history server's own
        store.user = app.user
        if app.start_ms is not None:
            store.start_time = app.start_ms / 1000.0
        for event in replay_events(read_log(app.path, not app.completed)):
            store(event)
        if app.completed:
            store.app_ended(app.end_ms / 1000.0 if app.end_ms else None)
        with self._lock:
            self._stores[app.path] = (key, store)
            self._stores.move_to_end(app.path)
            while len(self._stores) > self._retained:
                self._stores.popitem(last=False)
        return store

    def _summary(self, path: Path, parsed: LogFile, stat: os.stat_result) -> AppEntry | None:
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._summaries.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        info = AppInfo()
        try:
            for event in read_log(path, parsed.in_progress):
                try:
                    info.update(event)
                except MALFORMED as exc:
                    log.warning("%s: malformed %s event: %r", path, event.get("Event"), exc)
        except OSError as exc:
            log.warning("cannot read the event log %s: %s", path, exc)
            return None
        app = AppEntry(
            app_id=parsed.app_id,
            name=info.name,
            user=info.user,
            start_ms=info.start_ms,
            end_ms=info.end_ms,
            completed=not parsed.in_progress,
            last_updated_ms=stat.st_mtime_ns // 1_000_000,
            spark_version=info.spark_version,
            path=path,
        )
        with self._lock:
            self._summaries[path] = (key, app)
        return app

    def _warn_once(self, name: str, message: str, *args: Any) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(message, name, *args)
