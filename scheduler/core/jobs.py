"""JobWaiter: one job's per-partition results and the thread that waits for them.

The DAGScheduler reports each finished partition and the job's end to the
job's listener; this one stores the results in order and wakes the user's
thread blocked in an action. No I/O.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["JobWaiter"]


class JobWaiter:
    """Collects a job's results; `wait` returns them or raises the job's error."""

    def __init__(self, num_tasks: int) -> None:
        self.results: list[Any] = [None] * num_tasks
        self._remaining = num_tasks
        self._done = threading.Event()
        self.error: BaseException | None = None
        if num_tasks == 0:
            self._done.set()

    def task_succeeded(self, index: int, result: Any) -> None:
        self.results[index] = result
        self._remaining -= 1
        if self._remaining == 0:
            self._done.set()

    def job_failed(self, error: BaseException) -> None:
        self.error = error
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
