"""Executor and task resource requests: what one profile asks of each executor and task.

Amounts follow Spark 4: an executor asks whole numbers; a task asks a share of one
address (any amount up to 1.0: tasks share an address while their shares add up
to at most 1) or whole addresses.
"""

from __future__ import annotations

import re

__all__ = [
    "ExecutorResourceRequest",
    "ExecutorResourceRequests",
    "TaskResourceRequest",
    "TaskResourceRequests",
]

_MEMORY = re.compile(r"^\s*(\d+)\s*([kmgtp]?)b?\s*$", re.IGNORECASE)
_MIB = {"k": 1 / 1024, "m": 1, "": 1, "g": 1024, "t": 1024**2, "p": 1024**3}


def memory_mib(amount: str) -> int:
    """`2g`, `512m`, `512` (MiB) as MiB, as Spark reads executor memory.

    Raises:
        ValueError: not a size.
    """
    match = _MEMORY.match(str(amount))
    if match is None:
        raise ValueError(f"memory must be a size such as 512m or 2g, not {amount!r}")
    return int(int(match.group(1)) * _MIB[match.group(2).lower()])


def check_task_amount(name: str, amount: float) -> None:
    """Spark's rule for task amounts: <= 1.0 (a share of one address) or whole.

    Raises:
        ValueError: any other amount, or one not above 0.
    """
    if amount <= 0:
        raise ValueError(f"The resource amount {amount} for {name} must be positive.")
    if amount > 1.0 and amount % 1 != 0:
        raise ValueError(f"The resource amount {amount} must be either <= 1.0, or a whole number.")


class ExecutorResourceRequest:
    """One executor resource: `amount` of `resourceName`, found by `discoveryScript`."""

    def __init__(
        self, resourceName: str, amount: int, discoveryScript: str = "", vendor: str = ""
    ) -> None:
        self._name = resourceName
        self._amount = amount
        self._discovery_script = discoveryScript
        self._vendor = vendor

    @property
    def resourceName(self) -> str:
        return self._name

    @property
    def amount(self) -> int:
        return self._amount

    @property
    def discoveryScript(self) -> str:
        return self._discovery_script

    @property
    def vendor(self) -> str:
        return self._vendor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExecutorResourceRequest):
            return NotImplemented
        return (self._name, self._amount, self._discovery_script, self._vendor) == (
            other._name,
            other._amount,
            other._discovery_script,
            other._vendor,
        )

    def __hash__(self) -> int:
        return hash((self._name, self._amount, self._discovery_script, self._vendor))

    def __repr__(self) -> str:
        return f"ExecutorResourceRequest({self._name!r}, {self._amount!r})"


class ExecutorResourceRequests:
    """What each executor of a profile has: cores, memory and custom resources (chainable)."""

    _CORES = "cores"
    _MEMORY = "memory"
    _OVERHEAD_MEM = "memoryOverhead"
    _PYSPARK_MEM = "pyspark.memory"
    _OFFHEAP_MEM = "offHeap"

    def __init__(self, _requests: dict[str, ExecutorResourceRequest] | None = None) -> None:
        self._requests: dict[str, ExecutorResourceRequest] = dict(_requests or {})

    def _set(self, name: str, amount: int) -> ExecutorResourceRequests:
        self._requests[name] = ExecutorResourceRequest(name, amount)
        return self

    def memory(self, amount: str) -> ExecutorResourceRequests:
        """Executor memory (`2g`), as spark.executor.memory."""
        return self._set(self._MEMORY, memory_mib(amount))

    def memoryOverhead(self, amount: str) -> ExecutorResourceRequests:
        """Executor memory overhead (recorded; sparkctl's executors have none apart)."""
        return self._set(self._OVERHEAD_MEM, memory_mib(amount))

    def pysparkMemory(self, amount: str) -> ExecutorResourceRequests:
        """Memory of the executor's Python workers, as spark.executor.pyspark.memory."""
        return self._set(self._PYSPARK_MEM, memory_mib(amount))

    def offheapMemory(self, amount: str) -> ExecutorResourceRequests:
        """Off-heap memory (recorded; there is no JVM heap here)."""
        return self._set(self._OFFHEAP_MEM, memory_mib(amount))

    def cores(self, amount: int) -> ExecutorResourceRequests:
        """Cores of each executor, as spark.executor.cores."""
        if int(amount) < 1:
            raise ValueError(f"executor cores must be at least 1, not {amount}")
        return self._set(self._CORES, int(amount))

    def resource(
        self, resourceName: str, amount: int, discoveryScript: str = "", vendor: str = ""
    ) -> ExecutorResourceRequests:
        """`amount` addresses of `resourceName` on each executor."""
        if float(amount) % 1 != 0 or float(amount) < 0:
            raise ValueError(
                f"Only tasks support fractional resources: executor {resourceName} amount "
                f"{amount} must be a whole number"
            )
        self._requests[resourceName] = ExecutorResourceRequest(
            resourceName, int(amount), discoveryScript, vendor
        )
        return self

    @property
    def requests(self) -> dict[str, ExecutorResourceRequest]:
        """The requests by name (cores, memory, and custom resources)."""
        return dict(self._requests)


class TaskResourceRequest:
    """One task resource: `amount` of `resourceName` (a fraction shares an address)."""

    def __init__(self, resourceName: str, amount: float) -> None:
        amount = float(amount)
        if resourceName != TaskResourceRequests._CPUS:
            check_task_amount(resourceName, amount)
        self._name = resourceName
        self._amount = amount

    @property
    def resourceName(self) -> str:
        return self._name

    @property
    def amount(self) -> float:
        return self._amount

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TaskResourceRequest):
            return NotImplemented
        return (self._name, self._amount) == (other._name, other._amount)

    def __hash__(self) -> int:
        return hash((self._name, self._amount))

    def __repr__(self) -> str:
        return f"TaskResourceRequest({self._name!r}, {self._amount!r})"


class TaskResourceRequests:
    """What each task of a profile needs: cpus and custom resources (chainable)."""

    _CPUS = "cpus"

    def __init__(self, _requests: dict[str, TaskResourceRequest] | None = None) -> None:
        self._requests: dict[str, TaskResourceRequest] = dict(_requests or {})

    def cpus(self, amount: float) -> TaskResourceRequests:
        """Cores each task takes, as spark.task.cpus (whole numbers)."""
        if float(amount) < 1 or float(amount) % 1 != 0:
            raise ValueError(f"task cpus must be a whole number of at least 1, not {amount}")
        self._requests[self._CPUS] = TaskResourceRequest(self._CPUS, float(amount))
        return self

    def resource(self, resourceName: str, amount: float) -> TaskResourceRequests:
        """`amount` of `resourceName` for each task."""
        self._requests[resourceName] = TaskResourceRequest(resourceName, amount)
        return self

    @property
    def requests(self) -> dict[str, TaskResourceRequest]:
        """The requests by name (cpus and custom resources)."""
        return dict(self._requests)
