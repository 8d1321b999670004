"""Watches the resident memory of a Worker's executor processes.

A daemon thread samples each registered process tree's RSS (the process and
all its descendants) with psutil and reports the first one over its limit
through a callback, which the Worker turns into a message to itself; the
Worker then stops the process. This module never kills anything itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable

import psutil

__all__ = ["MemoryMonitor", "tree_rss_bytes"]

log = logging.getLogger(__name__)

MIB = 1 << 20


def tree_rss_bytes(pid: int) -> int:
    """RSS of `pid` plus all its descendants, in bytes (0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue  # exited between listing and sampling
    return total


class MemoryMonitor:
    """Samples registered process trees every `interval` seconds.

    Args:
        interval: seconds between samples.
        on_exceeded: called with (key, limit_mb, rss_mb) when a tree is over its
            limit; it is then unregistered, so it is reported once.
        rss_bytes: how a tree is measured (`tree_rss_bytes`; tests pass their own).
    """

    def __init__(
        self,
        interval: float,
        on_exceeded: Callable[[Hashable, int, int], None],
        rss_bytes: Callable[[int], int] = tree_rss_bytes,
    ) -> None:
        self._interval = interval
        self._rss_bytes = rss_bytes
        self._on_exceeded = on_exceeded
        self._watched: dict[Hashable, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-monitor", daemon=True)

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stopped.set()

    def watch(self, key: Hashable, pid: int, limit_mb: int) -> None:
        """Watch the tree of `pid` against `limit_mb` (0 = no limit)."""
        if limit_mb <= 0:
            return
        with self._lock:
            self._watched[key] = (pid, limit_mb)

    def unwatch(self, key: Hashable) -> None:
        """Stop watching `key`."""
        with self._lock:
            self._watched.pop(key, None)

    def check_once(self) -> None:
        """Sample every watched tree now (the thread calls this each interval)."""
        with self._lock:
            items = list(self._watched.items())
        for key, (pid, limit_mb) in items:
            rss_mb = self._rss_bytes(pid) // MIB
            if rss_mb > limit_mb:
                with self._lock:
                    if self._watched.get(key) != (pid, limit_mb):
                        continue
                    del self._watched[key]
                log.warning(
                    "process %d (%s) uses %d MiB, over its %d MiB", pid, key, rss_mb, limit_mb
                )
                self._on_exceeded(key, limit_mb, rss_mb)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.check_once()
            except Exception:
                log.exception("memory check failed")
