"""The Worker's work directories: what goes when, and removing it off-thread.

Executors run in `<work_dir>/<app-id>/<executor-id>/` and drivers in
`<work_dir>/<driver-id>/`; their `stdout` and `stderr` stay there after they end,
so the worker UI can show why an application failed. Two things delete here:

- at an application's end, only its executors' scratch: the local dirs they
  made (`executor-<app-id>-<executor-id>-*`, with shuffle files, blocks and temp
  files) under the worker's local dirs or, without those, inside their work dirs;
- the TTL cleanup (`spark.worker.cleanup.*`): whole `app-*` and `driver-*` dirs
  directly under the work dir in which nothing changed for `appDataTtl`.

Never a daemon's pid or log files beside them, and never on the caller's thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import shutil
import time
from collections.abc import Collection

from cluster._timers import later

__all__ = [
    "expired_dirs",
    "remove_expired_later",
    "remove_later",
    "remove_scratch_later",
    "scratch_dirs",
]

log = logging.getLogger(__name__)

_OURS = ("app-", "driver-")


def _newer_inside(path: pathlib.Path, cutoff: float) -> bool:
    """Whether `path` or anything under it changed after `cutoff` (as Spark's cleanup asks).

    A dir's own mtime changes only when entries are added or removed: an
    executor that wrote its stderr for days in an old dir must keep it. It stops at
    the first recent entry; a whole walk happens only for a dir about to go, on the
    cleanup's own thread.
    """
    for root, dirs, files in os.walk(path, onerror=lambda _e: None):
        for name in [*dirs, *files, ""]:
            try:
                if os.lstat(os.path.join(root, name)).st_mtime > cutoff:
                    return True
            except OSError:
                continue
    return False


def expired_dirs(
    work_dir: pathlib.Path, active: Collection[str], ttl: float, now: float | None = None
) -> list[pathlib.Path]:
    """Our directories under `work_dir` not in `active`, with nothing in them newer than `ttl`."""
    now = time.time() if now is None else now
    try:
        entries = list(work_dir.iterdir())
    except OSError:
        return []
    expired = []
    for path in entries:
        if not path.name.startswith(_OURS) or path.name in active:
            continue
        if path.is_symlink() or not path.is_dir():
            continue
        if not _newer_inside(path, now - ttl):
            expired.append(path)
    return expired


def remove_later(work_dir: pathlib.Path, name: str) -> bool:
    """Delete `work_dir/name` on a helper thread; False if it is not ours to delete."""
    path = work_dir / name
    if path.parent != work_dir or not name.startswith(_OURS) or not path.is_dir():
        return False
    later(0.0, lambda: shutil.rmtree(path, ignore_errors=True), f"rm-{name}")
    return True


def _scratch_name(app_id: str) -> re.Pattern[str]:
    # scheduler.executor.runtime names them executor-<app>-<id>-<mkdtemp suffix>; the
    # suffix has no '-', so app "a" never takes the dirs of app "a-1".
    return re.compile(rf"executor-{re.escape(app_id)}-\d+-[A-Za-z0-9_]+")


def scratch_dirs(app_id: str, work_dir: pathlib.Path, local_dirs: str = "") -> list[pathlib.Path]:
    """The local dirs `app_id`'s executors made here: under `local_dirs`, else in their work dirs.

    Args:
        app_id: the application that ended.
        work_dir: the worker's work dir (executors without local dirs use their own).
        local_dirs: the worker's local dirs, comma-separated (SPARK_EXECUTOR_DIRS).
    """
    pattern = _scratch_name(app_id)
    roots = [d.strip() for d in local_dirs.split(",")]
    parents = [pathlib.Path(d) for d in roots if d]
    app_dir = work_dir / app_id
    with contextlib.suppress(OSError):
        parents += [p for p in app_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    found = []
    for parent in parents:
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        found += [
            e for e in entries if pattern.fullmatch(e.name) and e.is_dir() and not e.is_symlink()
        ]
    return found


def remove_scratch_later(app_id: str, work_dir: pathlib.Path, local_dirs: str = "") -> None:
    """Find and delete `app_id`'s executor scratch (`scratch_dirs`) on a helper thread."""

    def remove() -> None:
        found = scratch_dirs(app_id, work_dir, local_dirs)
        for path in found:
            shutil.rmtree(path, ignore_errors=True)
        if found:
            log.info("removed %d local dir(s) of application %s", len(found), app_id)

    later(0.0, remove, f"rm-scratch-{app_id}")


def remove_expired_later(work_dir: pathlib.Path, active: Collection[str], ttl: float) -> None:
    """Find (`expired_dirs`) and delete expired work dirs on a helper thread."""
    keep = frozenset(active)

    def remove() -> None:
        for path in expired_dirs(work_dir, keep, ttl):
            log.info("removing %s (older than spark.worker.cleanup.appDataTtl)", path)
            shutil.rmtree(path, ignore_errors=True)

    later(0.0, remove, "rm-expired")
