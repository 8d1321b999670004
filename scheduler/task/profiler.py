"""PySpark's Python profiler: `spark.python.profile`, `sc.show_profiles()`, `dump_profiles`.

With `spark.python.profile=true` every RDD that runs Python functions
(a `MapPartitionsRDD`: map, filter, mapPartitions... fused) gets a profiler
of the context's `profiler_cls` (default `BasicProfiler`) when a job first runs
it, as PySpark's PythonRDD does: one per fused RDD, not one per step. Its `profile` runs
a partition's work under cProfile on the executors and adds the `pstats.Stats`
to an accumulator, so the driver holds the sum over all tasks. The driver shows
them (`show_profiles`, and at exit unless `spark.python.profile.dump` names a
directory, where they are written as `rdd_<id>.pstats` instead).
"""

from __future__ import annotations

import atexit
import cProfile
import os
import pstats
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from scheduler.task.accumulators import AccumulatorParam

if TYPE_CHECKING:
    from scheduler.task.host import SharedVariableHost

__all__ = ["BasicProfiler", "PStatsParam", "Profiler", "ProfilerCollector", "profiled"]


#: cProfile cannot nest: the outermost profiled RDD of a task measures the whole chain.
_active = threading.local()


class Profiler:
    """PySpark's profiler interface: subclass it and pass `profiler_cls=` to the context."""

    def __init__(self, ctx: SharedVariableHost) -> None:
        pass

    def profile(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `func(*args, **kwargs)` profiled (on an executor); return its result."""
        raise NotImplementedError

    def stats(self) -> pstats.Stats | None:
        """The statistics collected so far (on the driver)."""
        raise NotImplementedError

    def show(self, id: int) -> None:
        """Print the statistics of RDD `id`."""
        stats = self.stats()
        if stats:
            print("=" * 60)
            print(f"Profile of RDD<id={id}>")
            print("=" * 60)
            stats.sort_stats("time", "cumulative").print_stats()

    def dump(self, id: int, path: str) -> None:
        """Write the statistics of RDD `id` to `path/rdd_<id>.pstats`."""
        os.makedirs(path, exist_ok=True)
        stats = self.stats()
        if stats:
            stats.dump_stats(os.path.join(path, f"rdd_{id}.pstats"))


class PStatsParam(AccumulatorParam[Any]):
    """Adds `pstats.Stats` objects (None is the zero)."""

    @staticmethod
    def zero(value: Any) -> None:
        return None

    @staticmethod
    def addInPlace(value1: Any, value2: Any) -> Any:
        if value1 is None:
            return value2
        value1.add(value2)
        return value1


class BasicProfiler(Profiler):
    """cProfile per task, summed on the driver through an accumulator."""

    def __init__(self, ctx: SharedVariableHost) -> None:
        super().__init__(ctx)
        self._accumulator = ctx.accumulator(None, PStatsParam)  # type: ignore[arg-type]

    def profile(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        profile = cProfile.Profile()
        result = profile.runcall(func, *args, **kwargs)
        stats = pstats.Stats(profile)
        stats.stream = None  # type: ignore[attr-defined] # picklable, as PySpark's
        stats.strip_dirs()
        self._accumulator.add(stats)
        return result

    def stats(self) -> pstats.Stats | None:
        return self._accumulator.value  # type: ignore[no-any-return]


class ProfilerCollector:
    """The context's profilers, one per profiled RDD, shown or dumped on request or at exit."""

    def __init__(self, profiler_cls: type[Profiler], dump_path: str | None) -> None:
        self.profiler_cls = profiler_cls
        self.profile_dump_path = dump_path
        #: [rdd id, profiler, shown] per profiled RDD, in the order jobs first ran them.
        self.profilers: list[list[Any]] = []
        self._lock = threading.Lock()

    def new_profiler(self, ctx: SharedVariableHost) -> Profiler:
        """A profiler for one more RDD."""
        return self.profiler_cls(ctx)

    def add_profiler(self, rdd_id: int, profiler: Profiler) -> None:
        """Remember RDD `rdd_id`'s profiler; the first one registers the exit-time show or dump."""
        with self._lock:
            if not self.profilers:
                if self.profile_dump_path:
                    atexit.register(self.dump_profiles, self.profile_dump_path)
                else:
                    atexit.register(self.show_profiles)
            self.profilers.append([rdd_id, profiler, False])

    def show_profiles(self) -> None:
        """Print every profile not shown yet."""
        for entry in self.profilers:
            rdd_id, profiler, shown = entry
            if not shown and profiler is not None:
                profiler.show(rdd_id)
                entry[2] = True

    def dump_profiles(self, path: str) -> None:
        """Write every profile under `path` and forget them."""
        for rdd_id, profiler, _ in self.profilers:
            profiler.dump(rdd_id, path)
        self.profilers = []


def profiled(profiler: Profiler, compute: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """The items of `compute()`, all its work (and its parents') run under `profiler`.

    The partition is computed inside `profiler.profile`, as PySpark's worker
    profiles its whole partition; an RDD inside another profiled one is not
    profiled again.
    """
    if getattr(_active, "on", False):
        return compute()
    _active.on = True
    try:
        items: list[Any] = profiler.profile(lambda: list(compute()))
    finally:
        _active.on = False
    return iter(items)
