"""JobWaiter: one job's per-partition results and the thread that waits for them.

The DAGScheduler reports each finished partition and the job's end to the
job's listener; this one stores the results in order and wakes the user's
thread blocked in an action. No I/O.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["JobWaiter", "wakeups_after"]

_deferred = threading.local()


def wakeups_after() -> _WakeupsAfter:
    """A context within which a finished job's waiter is woken only when it ends.

    The scheduler handles a batch of task statuses under its lock, on the RPC
    reader thread, holding the GIL: a user thread woken in the middle of it can
    neither run Python nor take the lock until the batch is done, and then has
    to be woken again for the GIL. Woken at the end, after the lock is released,
    it finds both free. Nests; on this thread only.
    """
    return _WakeupsAfter()


class _WakeupsAfter:
    """`wakeups_after`'s context: the events to set, kept per thread."""

    __slots__ = ("_outer",)

    def __enter__(self) -> None:
        self._outer: list[threading.Event] | None = getattr(_deferred, "events", None)
        if self._outer is None:
            _deferred.events = []

    def __exit__(self, *exc: object) -> None:
        if self._outer is not None:
            return
        events: list[threading.Event] = _deferred.events
        _deferred.events = None
        for event in events:
            event.set()


def _wake(event: threading.Event) -> None:
    events: list[threading.Event] | None = getattr(_deferred, "events", None)
    if events is None:
        event.set()
    else:
        events.append(event)


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
            _wake(self._done)

    def job_failed(self, error: BaseException) -> None:
        self.error = error
        _wake(self._done)

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
