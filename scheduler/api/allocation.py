"""Spark's developer API for executors: request and kill them (a mixin of SparkContext).

Only the standalone backend can act on these (`ExecutorAllocationClient`); in
local mode each call logs Spark's warning and returns False.
"""

from __future__ import annotations

import logging

from scheduler.backend.base import ExecutorAllocationClient

__all__ = ["ExecutorRequests"]

log = logging.getLogger(__name__)


class ExecutorRequests:
    """requestExecutors, requestTotalExecutors, killExecutors and killExecutor."""

    _allocation_client: ExecutorAllocationClient | None

    def requestExecutors(self, numAdditionalExecutors: int) -> bool:
        """Ask the cluster manager for this many executors more than requested so far."""
        backend = self._standalone("Requesting executors")
        return backend is not None and backend.request_executors(numAdditionalExecutors)

    def requestTotalExecutors(
        self,
        numExecutors: int,
        localityAwareTasks: int = 0,
        hostToLocalTaskCount: dict[str, int] | None = None,
    ) -> bool:
        """Set the number of executors the cluster manager keeps for this application."""
        backend = self._standalone("Requesting executors")
        return backend is not None and backend.request_total(numExecutors)

    def killExecutors(self, executorIds: list[str]) -> bool:
        """Kill executors (their running tasks run again elsewhere) and lower the target.

        Raises:
            ValueError: dynamic allocation is on (it decides which executors go).
        """
        backend = self._standalone("Killing executors")
        return backend is not None and backend.kill_executors(list(executorIds))

    def killExecutor(self, executorId: str) -> bool:
        """Kill one executor; see killExecutors."""
        return self.killExecutors([executorId])

    def _standalone(self, what: str) -> ExecutorAllocationClient | None:
        """The backend's allocation client, or None (with Spark's warning) in local mode."""
        if self._allocation_client is not None:
            return self._allocation_client
        log.warning("%s is not supported by the local scheduler", what)
        return None
