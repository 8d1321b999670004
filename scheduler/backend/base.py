"""What the driver asks of its backend: the seam between SparkContext and a cluster.

A backend gets executors for the application and lets them go again: the
`local[N]` one starts its executor process itself, the standalone one asks a
Master. The context only ever talks to it through `SchedulerBackend`; the
developer API's executor requests (`sc.requestExecutors`, `sc.killExecutors`)
go through `ExecutorAllocationClient`, which only a backend with a cluster
manager to ask implements. Executors themselves register with the driver's
endpoint, never with the backend. No I/O here.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ExecutorAllocationClient", "SchedulerBackend"]


class SchedulerBackend(Protocol):
    """Starts and stops the application's executors (Spark's SchedulerBackend)."""

    def start(self) -> str:
        """Get the first executors; returns the application id (the Master's, or local-<ms>).

        Raises:
            RuntimeError: the application could not start (no Master took it, or the
                local executor did not register).
        """
        ...

    def stop(self) -> None:
        """Stop the executors and leave the cluster manager (idempotent)."""
        ...

    def executor_lost(self, executor_id: str, reason: str) -> None:
        """The task scheduler forgot an executor: replace it, if this backend does that."""
        ...

    @property
    def pids(self) -> list[int]:
        """Process ids of the executors this driver started itself (none on a cluster)."""
        ...


class ExecutorAllocationClient(Protocol):
    """Asks the cluster manager for more or fewer executors (Spark's namesake)."""

    def request_total(self, total: int) -> bool:
        """Keep `total` executors for the application; True once acknowledged."""
        ...

    def request_executors(self, additional: int) -> bool:
        """`additional` executors more than requested so far; True once acknowledged."""
        ...

    def kill_executors(self, executor_ids: list[str]) -> bool:
        """Kill these executors and lower the target accordingly; True if any was killed."""
        ...
