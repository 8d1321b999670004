"""The Worker's work directories: which ones may go, and removing them off-thread.

Executors run in `<work_dir>/<app-id>/<executor-id>/` and drivers in
`<work_dir>/<driver-id>/`. This module only ever deletes directories named
like those (`app-*`, `driver-*`) directly under the work dir, never a daemon's
pid or log files beside them, and never on the caller's thread.
"""

from __future__ import annotations

import logging
import pathlib
import shutil
import time
from collections.abc import Collection

from cluster._timers import later

__all__ = ["expired_dirs", "remove_later"]

log = logging.getLogger(__name__)

_OURS = ("app-", "driver-")


def expired_dirs(
    work_dir: pathlib.Path, active: Collection[str], ttl: float, now: float | None = None
) -> list[pathlib.Path]:
    """Our directories under `work_dir` not in `active` and untouched for `ttl` seconds."""
    now = time.time() if now is None else now
    try:
        entries = list(work_dir.iterdir())
    except OSError:
        return []
    expired = []
    for path in entries:
        if not path.name.startswith(_OURS) or path.name in active or not path.is_dir():
            continue
        try:
            age = now - path.stat().st_mtime
        except OSError:
            continue
        if age > ttl:
            expired.append(path)
    return expired


def remove_later(work_dir: pathlib.Path, name: str) -> bool:
    """Delete `work_dir/name` on a helper thread; False if it is not ours to delete."""
    path = work_dir / name
    if path.parent != work_dir or not name.startswith(_OURS) or not path.is_dir():
        return False
    later(0.0, lambda: shutil.rmtree(path, ignore_errors=True), f"rm-{name}")
    return True
