"""Deadlines for pending asks, on one thread per env.

Deadlines are bucketed (`RESOLUTION` seconds) so that completing an ask is an
O(1) set removal, whatever the number of asks in flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["DeadlineWheel"]

RESOLUTION = 0.02


class DeadlineWheel:
    """Calls `on_expire(key)` for every key whose deadline passes before `cancel(key)`."""

    def __init__(self, on_expire: Callable[[int], None], name: str) -> None:
        self._on_expire = on_expire
        self._buckets: dict[int, set[int]] = {}
        self._bucket_of: dict[int, int] = {}
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._stopped = False
        self._waiting_until = float("inf")  # bucket the thread sleeps until
        self._thread = threading.Thread(target=self._run, name=f"{name}-deadlines", daemon=True)
        self._thread.start()

    def add(self, key: int, timeout: float) -> None:
        """Expire `key` after `timeout` seconds."""
        bucket = math.ceil((time.monotonic() + timeout) / RESOLUTION)
        with self._lock:
            keys = self._buckets.get(bucket)
            if keys is None:
                keys = self._buckets[bucket] = set()
                if bucket < self._waiting_until:  # only an earlier deadline needs a wake-up
                    self._wakeup.notify()
            keys.add(key)
            self._bucket_of[key] = bucket

    def cancel(self, key: int) -> None:
        """Forget `key` (its ask completed)."""
        with self._lock:
            bucket = self._bucket_of.pop(key, None)
            if bucket is not None:
                keys = self._buckets.get(bucket)
                if keys is not None:
                    keys.discard(key)

    def stop(self) -> None:
        """End the thread; pending keys never expire."""
        with self._lock:
            self._stopped = True
            self._wakeup.notify()

    def _run(self) -> None:
        while True:
            expired: list[int] = []
            with self._lock:
                if self._stopped:
                    return
                now_bucket = time.monotonic() / RESOLUTION
                due = [b for b in self._buckets if b <= now_bucket]
                for bucket in due:
                    for key in self._buckets.pop(bucket):
                        self._bucket_of.pop(key, None)
                        expired.append(key)
                if not expired:
                    if self._buckets:
                        self._waiting_until = min(self._buckets)
                        wait = max(0.0, self._waiting_until * RESOLUTION - time.monotonic())
                        self._wakeup.wait(wait + 0.001)
                    else:
                        self._waiting_until = float("inf")
                        self._wakeup.wait()
                    self._waiting_until = float("-inf")
                    continue
            for key in expired:
                self._on_expire(key)
