"""TaskContext: what a running task may ask about itself (PySpark's API).

Set by the executor's Python worker around each task; `TaskContext.get()`
returns None on the driver. Holds no I/O of its own: the worker runtime it
points to (`_runtime`) reads shuffles, caches and broadcasts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

__all__ = ["TaskContext"]


class TaskContext:
    """Contextual information about the task running in this process."""

    _current: ClassVar[TaskContext | None] = None

    def __new__(cls, *args: Any, **kwargs: Any) -> TaskContext:
        # Inside a task, TaskContext() is the running task's context, as in PySpark.
        if not args and not kwargs and cls._current is not None:
            return cls._current
        return super().__new__(cls)

    def __init__(
        self,
        stage_id: int = 0,
        partition_id: int = 0,
        attempt_number: int = 0,
        task_attempt_id: int = 0,
        properties: dict[str, str] | None = None,
        cpus: int = 1,
        runtime: Any = None,
    ) -> None:
        if getattr(self, "_initialized", False):
            return
        self._initialized = True
        self._stage_id = stage_id
        self._partition_id = partition_id
        self._attempt_number = attempt_number
        self._task_attempt_id = task_attempt_id
        self._local_properties = dict(properties or {})
        self._cpus = cpus
        #: The executor-side worker runtime (shuffle reader, block store); None on the driver.
        self._runtime = runtime

    @classmethod
    def get(cls) -> TaskContext | None:
        """The context of the task running now, or None outside a task."""
        return cls._current

    @classmethod
    def _set(cls, context: TaskContext | None) -> None:
        cls._current = context

    def stageId(self) -> int:
        """The id of the stage this task belongs to."""
        return self._stage_id

    def partitionId(self) -> int:
        """The index of the partition this task computes."""
        return self._partition_id

    def attemptNumber(self) -> int:
        """How many times this task was attempted before (0 for the first attempt)."""
        return self._attempt_number

    def taskAttemptId(self) -> int:
        """An id unique to this task attempt within the application."""
        return self._task_attempt_id

    def getLocalProperty(self, key: str) -> str | None:
        """A local property set on the driver with `SparkContext.setLocalProperty`."""
        return self._local_properties.get(key)

    def cpus(self) -> int:
        """CPUs reserved for this task."""
        return self._cpus

    def cpuAmount(self) -> Decimal:
        """The exact CPUs reserved for this task (PySpark 4.3); whole numbers in sparkctl."""
        return Decimal(self._cpus)

    def resources(self) -> dict[str, Any]:
        """Custom resources of this task (none in sparkctl)."""
        return {}
