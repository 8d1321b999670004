"""What an RDD needs from the context it was made on: the `RDDHost` protocol.

RDDs live below the driver's API: they never import SparkContext, only this
protocol, which SparkContext implements (and the unit tests' FakeContext,
without any process). Its members are the seam, not PySpark's API: PySpark
names (`runJob`, `defaultParallelism`, ...) where the context has them
anyway, plain names for what only RDDs ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from scheduler.task.host import SharedVariableHost

if TYPE_CHECKING:
    from rpcenv import Conf
    from scheduler.rdd.deps import ShuffleDependency
    from scheduler.rdd.rdd import RDD
    from scheduler.task.profiler import ProfilerCollector

__all__ = ["RDDHost"]

_F = TypeVar("_F", bound=Callable[..., Any])


class RDDHost(SharedVariableHost, Protocol):
    """The driver's context as RDDs see it: ids, settings, jobs, the persisted set."""

    #: One profiler per RDD that runs Python code, with spark.python.profile (else None).
    profiler_collector: ProfilerCollector | None

    @property
    def defaultParallelism(self) -> int:
        """Partitions of an RDD made without a count (spark.default.parallelism, else cores)."""
        ...

    @property
    def settings(self) -> Conf:
        """The application's settings."""
        ...

    @property
    def checkpoint_dir(self) -> str | None:
        """Where checkpoint() writes RDDs (a local path), or None before setCheckpointDir."""
        ...

    def new_rdd_id(self) -> int:
        """A fresh RDD id, unique within the context."""
        ...

    def new_shuffle_id(self) -> int:
        """A fresh shuffle id, unique within the context."""
        ...

    def python_worker_memory_mb(self) -> int:
        """spark.python.worker.memory in MiB: where aggregation spills to disk."""
        ...

    def mark_persisted(self, rdd: RDD) -> None:
        """`rdd` was persisted (or locally checkpointed): list it in getPersistentRDDs."""
        ...

    def unpersist_rdd(self, rdd_id: int, blocking: bool) -> None:
        """Forget an RDD's cached partitions, on the driver and the executors."""
        ...

    def clean_shuffles(self, shuffle_ids: list[int], blocking: bool) -> None:
        """Forget shuffles' map outputs on the driver and delete their files on the executors."""
        ...

    def runJob(
        self,
        rdd: RDD,
        partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
        partitions: Iterable[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        """Run `partitionFunc` on the given partitions; all its items as one list."""
        ...

    def run_map_stage(self, dep: ShuffleDependency) -> dict[int, Any]:
        """Compute only the map stage of `dep`; its tasks' samples by map partition."""
        ...

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        """Put the jobs this thread starts in a group."""
        ...

    def with_local_properties(self, f: _F) -> _F:
        """`f`, to run on another thread with the calling thread's local properties."""
        ...
