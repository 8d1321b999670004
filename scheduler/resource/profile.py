"""ResourceProfile: what a stage's executors and tasks need; the builder that makes one.

Profile 0 is the application's default, built from its conf
(`spark.executor.cores/memory`, `spark.executor.resource.*`, `spark.task.cpus`,
`spark.task.resource.*`). A profile built with `ResourceProfileBuilder` gets the
next id; `rdd.withResources(profile)` runs that RDD's stage with it. A profile
with only task requests runs on the default profile's executors; one with
executor requests needs executors of its own (dynamic allocation, as in Spark).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping
from fractions import Fraction

from scheduler.resource.requests import (
    ExecutorResourceRequest,
    ExecutorResourceRequests,
    TaskResourceRequest,
    TaskResourceRequests,
    check_task_amount,
    memory_mib,
)

__all__ = [
    "DEFAULT_PROFILE_ID",
    "ResourceProfile",
    "ResourceProfileBuilder",
    "TaskRequirement",
    "default_profile",
]

#: The id of the profile an application's conf implies.
DEFAULT_PROFILE_ID = 0

_ids = itertools.count(1)
_ids_lock = threading.Lock()

#: What one task takes of one resource: `count` addresses, each for `share` of it.
TaskRequirement = tuple[int, Fraction]


class ResourceProfile:
    """Executor and task resource requests of a stage (immutable once built)."""

    def __init__(
        self,
        _exec_req: Mapping[str, ExecutorResourceRequest] | None = None,
        _task_req: Mapping[str, TaskResourceRequest] | None = None,
        _id: int | None = None,
    ) -> None:
        self._executor_resources = dict(_exec_req or {})
        self._task_resources = dict(_task_req or {})
        for name, req in self._task_resources.items():
            # (A task-only profile borrows the default profile's executors and resources.)
            custom = name != TaskResourceRequests._CPUS
            if custom and self._executor_resources and name not in self._executor_resources:
                raise ValueError(
                    f"The executor resource config for: {name} needs to be specified "
                    f"since a task requirement config: {name} (amount {req.amount}) was "
                    "specified"
                )
        if _id is None:
            with _ids_lock:
                _id = next(_ids)
        self._id = _id

    @property
    def id(self) -> int:
        """The profile's id: 0 for the default, then 1, 2, ... in build order."""
        return self._id

    @property
    def taskResources(self) -> dict[str, TaskResourceRequest]:
        """Task requests by name (`cpus` and custom resources)."""
        return dict(self._task_resources)

    @property
    def executorResources(self) -> dict[str, ExecutorResourceRequest]:
        """Executor requests by name (`cores`, `memory`, ... and custom resources)."""
        return dict(self._executor_resources)

    # -- what the scheduler reads ---------------------------------------------------------

    @property
    def task_only(self) -> bool:
        """It asks nothing of executors: it runs on the default profile's executors."""
        return not self._executor_resources

    def task_cpus(self, default: int) -> int:
        """Cores each task takes (`default`: the application's spark.task.cpus)."""
        req = self._task_resources.get(TaskResourceRequests._CPUS)
        return int(req.amount) if req is not None else default

    def executor_cores(self) -> int | None:
        """Cores of each executor, if the profile sets them."""
        req = self._executor_resources.get(ExecutorResourceRequests._CORES)
        return req.amount if req is not None else None

    def executor_memory_mb(self) -> int | None:
        """Memory of each executor in MiB, if the profile sets it."""
        req = self._executor_resources.get(ExecutorResourceRequests._MEMORY)
        return req.amount if req is not None else None

    def pyspark_memory_mb(self) -> int | None:
        """Memory of each executor's Python workers in MiB, if the profile sets it."""
        req = self._executor_resources.get(ExecutorResourceRequests._PYSPARK_MEM)
        return req.amount if req is not None else None

    def custom_executor_resources(self) -> dict[str, int]:
        """Custom resources each executor needs (name -> addresses)."""
        builtin = {
            ExecutorResourceRequests._CORES,
            ExecutorResourceRequests._MEMORY,
            ExecutorResourceRequests._OVERHEAD_MEM,
            ExecutorResourceRequests._PYSPARK_MEM,
            ExecutorResourceRequests._OFFHEAP_MEM,
        }
        return {n: r.amount for n, r in self._executor_resources.items() if n not in builtin}

    def task_requirements(self) -> dict[str, TaskRequirement]:
        """What each task takes of each custom resource: (addresses, share of each).

        A fraction takes that share of one address, which tasks share while their
        shares add up to at most 1 (Spark 4's exact counting: 0.5 runs two tasks to
        an address, 0.3 three, 0.7 one); a whole amount takes that many addresses.
        """
        out: dict[str, TaskRequirement] = {}
        for name, req in self._task_resources.items():
            if name == TaskResourceRequests._CPUS:
                continue
            if req.amount < 1:
                out[name] = (1, Fraction(str(req.amount)).limit_denominator(10**9))
            else:
                out[name] = (int(req.amount), Fraction(1))
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceProfile):
            return NotImplemented
        return (self._executor_resources, self._task_resources) == (
            other._executor_resources,
            other._task_resources,
        )

    def __hash__(self) -> int:
        return hash(
            (
                frozenset(self._executor_resources.items()),
                frozenset(self._task_resources.items()),
            )
        )

    def __repr__(self) -> str:
        return (
            f"ResourceProfile(id={self._id}, executorResources={self._executor_resources}, "
            f"taskResources={self._task_resources})"
        )


class ResourceProfileBuilder:
    """Collects executor and task requests, then `build()`s a ResourceProfile."""

    def __init__(self) -> None:
        self._executor_resources: dict[str, ExecutorResourceRequest] = {}
        self._task_resources: dict[str, TaskResourceRequest] = {}

    def require(
        self, resourceRequest: ExecutorResourceRequests | TaskResourceRequests
    ) -> ResourceProfileBuilder:
        """Add (or replace, by name) the requests of `resourceRequest`."""
        if isinstance(resourceRequest, TaskResourceRequests):
            self._task_resources.update(resourceRequest.requests)
        elif isinstance(resourceRequest, ExecutorResourceRequests):
            self._executor_resources.update(resourceRequest.requests)
        else:
            raise TypeError(
                "require() takes ExecutorResourceRequests or TaskResourceRequests, not "
                f"{type(resourceRequest).__name__}"
            )
        return self

    def clearExecutorResourceRequests(self) -> None:
        self._executor_resources.clear()

    def clearTaskResourceRequests(self) -> None:
        self._task_resources.clear()

    @property
    def taskResources(self) -> dict[str, TaskResourceRequest]:
        return dict(self._task_resources)

    @property
    def executorResources(self) -> dict[str, ExecutorResourceRequest]:
        return dict(self._executor_resources)

    @property
    def build(self) -> ResourceProfile:
        """The profile, with the next id (a property, as in PySpark)."""
        return ResourceProfile(self._executor_resources, self._task_resources)


def _amounts(conf: Mapping[str, str], prefix: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in conf.items():
        if key.startswith(prefix) and key.endswith(".amount"):
            out[key[len(prefix) : -len(".amount")]] = value
    return out


def default_profile(conf: Mapping[str, str], task_cpus: int) -> ResourceProfile:
    """Profile 0, from the application's conf.

    Raises:
        ValueError: a bad amount, or a task resource no executor resource backs,
            naming the key.
    """
    executor: dict[str, ExecutorResourceRequest] = {}
    cores = conf.get("spark.executor.cores")
    if cores:
        executor["cores"] = ExecutorResourceRequest("cores", int(cores))
    memory = conf.get("spark.executor.memory")
    if memory:
        executor["memory"] = ExecutorResourceRequest("memory", memory_mib(memory))
    for name, raw in _amounts(conf, "spark.executor.resource.").items():
        try:
            amount = float(raw)
        except ValueError:
            raise ValueError(
                f"spark.executor.resource.{name}.amount must be a whole number, not {raw!r}"
            ) from None
        if amount % 1 != 0 or amount < 0:
            raise ValueError(
                "Only tasks support fractional resources, please check your spark.executor "
                f"settings (spark.executor.resource.{name}.amount = {raw})"
            )
        if amount > 0:
            script = conf.get(f"spark.executor.resource.{name}.discoveryScript", "")
            executor[name] = ExecutorResourceRequest(name, int(amount), script)
    task: dict[str, TaskResourceRequest] = {"cpus": TaskResourceRequest("cpus", task_cpus)}
    for name, raw in _amounts(conf, "spark.task.resource.").items():
        try:
            amount = float(raw)
        except ValueError:
            raise ValueError(
                f"spark.task.resource.{name}.amount must be a number, not {raw!r}"
            ) from None
        if amount <= 0:
            continue
        check_task_amount(name, amount)
        if name not in executor:
            raise ValueError(
                f"The executor resource config for: {name} needs to be specified since a task "
                f"requirement config: spark.task.resource.{name}.amount was specified"
            )
        if math.ceil(amount) > executor[name].amount:
            raise ValueError(
                f"The executor resource: {name}, amount: {executor[name].amount} needs to be "
                f">= the task resource request amount of {amount}"
            )
        task[name] = TaskResourceRequest(name, amount)
    profile = ResourceProfile.__new__(ResourceProfile)
    profile._executor_resources = executor
    profile._task_resources = task
    profile._id = DEFAULT_PROFILE_ID
    return profile
