"""TaskContext: what a running task may ask about itself (PySpark's API).

Set by the executor's Python worker around each task; `TaskContext.get()`
returns None on the driver. Holds no I/O of its own: the worker runtime it
points to (`_runtime`) reads shuffles, caches and broadcasts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from scheduler.resource.information import ResourceInformation

__all__ = [
    "BarrierTaskContext",
    "BarrierTaskInfo",
    "TaskContext",
    "in_python_worker",
    "mark_python_worker",
]

#: True in an executor's Python worker (set once at its start): code there runs tasks.
_IN_PYTHON_WORKER: list[bool] = [False]


def mark_python_worker() -> None:
    """Called by an executor's Python worker at start: this process is not a driver."""
    _IN_PYTHON_WORKER[0] = True


def in_python_worker() -> bool:
    """Whether this process is an executor's Python worker (where no SparkContext may start)."""
    return _IN_PYTHON_WORKER[0]


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
        resources: dict[str, list[str]] | None = None,
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
        #: Custom resource addresses the driver assigned this task (name -> addresses).
        self._resources = {name: list(addresses) for name, addresses in (resources or {}).items()}

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

    def resources(self) -> dict[str, ResourceInformation]:
        """The custom resources assigned to this task: name -> ResourceInformation.

        Its addresses are its own (or shared only with tasks asking a fraction of
        one) while it runs, as the driver's scheduler assigned them.
        """
        return {name: ResourceInformation(name, a) for name, a in self._resources.items()}


class BarrierTaskInfo:
    """Where one task of a barrier stage runs (PySpark's BarrierTaskInfo)."""

    def __init__(self, address: str) -> None:
        #: "host:port" of the task's executor (its host alone if it serves no port).
        self.address = address

    def __repr__(self) -> str:
        return f"BarrierTaskInfo(address={self.address!r})"


class BarrierTaskContext(TaskContext):
    """The context of a task in a barrier stage: a TaskContext that can sync with the others.

    barrier() and allGather() block until every task of the stage attempt made the same
    call (the driver's coordinator answers all at once) or fail after
    spark.barrier.sync.timeout; call them the same number of times in every task.
    """

    def __init__(self, *args: Any, stage_attempt: int = 0, **kwargs: Any) -> None:
        if getattr(self, "_initialized", False):
            return
        super().__init__(*args, **kwargs)
        self._stage_attempt = stage_attempt
        #: How many syncs this task finished: the epoch of its next one.
        self._epoch = 0

    @classmethod
    def get(cls) -> BarrierTaskContext:
        """The running barrier task's context.

        Raises:
            RuntimeError: not called inside a task of a barrier stage.
        """
        current = TaskContext._current
        if not isinstance(current, BarrierTaskContext):
            raise RuntimeError(
                "It is not in a barrier stage: BarrierTaskContext.get() works only in a "
                "function passed to rdd.barrier().mapPartitions()"
            )
        return current

    def _sync(self, method: str, message: str) -> list[str]:
        if self._runtime is None:
            raise RuntimeError(f"{method}() can only be called inside a barrier task")
        messages: list[str] = self._runtime.barrier_sync(
            self._stage_id,
            self._stage_attempt,
            self._task_attempt_id,
            self._partition_id,
            self._epoch,
            method,
            message,
        )
        if method != "getTaskInfos":
            self._epoch += 1
        return messages

    def barrier(self) -> None:
        """Wait until every task of this stage attempt called barrier() (a global sync)."""
        self._sync("barrier", "")

    def allGather(self, message: str = "") -> list[str]:
        """Sync like barrier(); returns every task's `message`, in partition order."""
        if not isinstance(message, str):
            raise TypeError(f"allGather expects a string message, not {type(message).__name__}")
        return self._sync("allGather", message)

    def getTaskInfos(self) -> list[BarrierTaskInfo]:
        """Where every task of this stage attempt runs, in partition order."""
        return [BarrierTaskInfo(a) for a in self._sync("getTaskInfos", "")]
