"""Running jobs from a SparkContext, as a mixin: submit, wait, end, checkpoint.

A job is submitted to the DAGScheduler under the task scheduler's lock with
the local properties of the calling thread, and the calling thread waits on
its JobWaiter (waking to notice a stopped context). A barrier job that finds
too few slots is tried again a few times, as Spark does. The checkpoints a
finished job's lineage asked for are written right after it.
"""

# Mixin methods are typed with `self: SparkContext`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from scheduler.core.errors import BarrierJobSlotsNumberCheckFailed, JobCancelledError
from scheduler.core.jobs import JobWaiter
from scheduler.rdd.callsite import first_api_call
from scheduler.rdd.deps import ShuffleDependency
from scheduler.rdd.rdd import RDD

if TYPE_CHECKING:
    from scheduler.api.context import SparkContext

__all__ = ["JobRunner"]

log = logging.getLogger(__name__)


class JobRunner:
    """SparkContext's runJob and the job machinery behind every action."""

    def runJob(
        self: SparkContext,
        rdd: RDD,
        partitionFunc: Callable[[Iterator[Any]], Iterable[Any]],
        partitions: Iterable[int] | None = None,
        allowLocal: bool = False,
    ) -> list[Any]:
        """Run `partitionFunc` on the given partitions; returns all its items as one list."""
        parts = list(range(rdd.getNumPartitions())) if partitions is None else list(partitions)
        n = rdd.getNumPartitions()
        for p in parts:
            if not 0 <= p < n:
                raise ValueError(f"partition {p} is out of range: the RDD has {n} partitions")
        mapped = rdd.mapPartitions(partitionFunc)
        results = self._run_job(mapped, _collect_partition, parts)
        return [item for chunk in results for item in chunk]

    def _stopped_message(self: SparkContext) -> str:
        reason = getattr(self, "stop_reason", None)
        text = "Cannot call methods on a stopped SparkContext"
        return f"{text}: it stopped because {reason}" if reason else text

    def _run_job(
        self: SparkContext, rdd: RDD, func: Callable[[Any, Any], Any], partitions: list[int]
    ) -> list[Any]:
        if self._stopped:
            raise RuntimeError(self._stopped_message())
        if not partitions:
            return []
        waiter = JobWaiter(len(partitions))

        def submit(props: dict[str, str]) -> int:
            return self._scheduler.dag.submit_job(rdd, func, partitions, waiter, props)

        checks = 0
        while True:
            try:
                return self._await_job(submit, waiter, rdd)
            except BarrierJobSlotsNumberCheckFailed as exc:
                # As Spark: executors may still be coming; check again a few times, and
                # say so each time (40 silent checks 15 s apart looked like a hang).
                checks += 1
                if checks > self._barrier_check_failures:
                    raise
                log.warning(
                    "Barrier stage of this job requires %d slots, but only %d are available; "
                    "checking again in %gs, up to %d more time(s)",
                    exc.required,
                    exc.available,
                    self._barrier_check_interval,
                    self._barrier_check_failures - checks + 1,
                )
                time.sleep(self._barrier_check_interval)
                if self._stopped:
                    raise RuntimeError(self._stopped_message()) from None

    def run_map_stage(self: SparkContext, dep: ShuffleDependency) -> dict[int, Any]:
        """Compute only the map stage of `dep`, as a job; returns its tasks' samples.

        sortByKey runs its shuffle's map stage first: the range bounds come from it.
        """
        if self._stopped:
            raise RuntimeError(self._stopped_message())
        waiter = JobWaiter(1)

        def submit(props: dict[str, str]) -> int:
            return self._scheduler.dag.submit_map_stage(dep, waiter, props)

        results = self._await_job(submit, waiter, dep.rdd)
        return results[0]  # type: ignore[no-any-return]

    def _await_job(
        self: SparkContext, submit: Callable[[dict[str, str]], int], waiter: JobWaiter, rdd: RDD
    ) -> list[Any]:
        """Submit a job (under the scheduler lock) with this thread's properties; wait."""
        if self.profiler_collector is not None:
            _ensure_profilers(rdd)
        props = dict(self._local_props())
        props.update(self._files_properties())
        if "callSite.short" not in props:
            site = first_api_call()  # what PySpark names the job and its result stage
            if site is not None:
                props["callSite.short"] = site
        scheduler = self._scheduler
        with scheduler.lock, scheduler.bus.held():
            # The status tracker hears of the job (JobStart) when its first tasks are sent.
            job_id = submit(props)
        try:
            while not waiter.wait(0.5):
                if self._stopped:
                    break
        except KeyboardInterrupt:
            self._scheduler.cancel_job(job_id, "by KeyboardInterrupt")
            raise
        if not waiter.wait(0):
            why = self.stop_reason or "SparkContext was shut down"
            error = JobCancelledError(f"Job {job_id} cancelled because {why}")
            self._scheduler.job_ended(job_id, "FAILED", error)
            raise error
        if waiter.error is not None:
            self._scheduler.job_ended(job_id, "FAILED", waiter.error)
            raise waiter.error
        self._scheduler.job_ended(job_id, "SUCCEEDED")
        self._after_job(rdd)
        return waiter.results

    def _after_job(self: SparkContext, rdd: RDD) -> None:
        """Write the checkpoints that the finished job's lineage asked for."""
        if self._checkpoint_dir is None:  # none can be written (nor asked for: checkpoint())
            return
        todo = [rdd]
        seen: set[int] = set()
        wanted: list[RDD] = []
        while todo:
            current = todo.pop()
            if current.id() in seen:
                continue
            seen.add(current.id())
            if current._checkpoint_requested and current._checkpoint_rdd is None:
                wanted.append(current)
            todo.extend(dep.rdd for dep in current.dependencies)
        for target in wanted:
            self._write_checkpoint(target)

    def _write_checkpoint(self: SparkContext, rdd: RDD) -> None:
        from scheduler.rdd.fileio import PickleFileRDD, write_pickle_partitions

        if self._checkpoint_dir is None:
            return
        rdd._checkpoint_requested = False
        path = os.path.join(self._checkpoint_dir, f"rdd-{rdd.id()}")
        os.makedirs(path, exist_ok=True)
        write_pickle_partitions(rdd, path, 1024)
        rdd._checkpoint_rdd = PickleFileRDD(self, path, partition_order=True)


def _collect_partition(context: Any, iterator: Iterator[Any]) -> list[Any]:
    return list(iterator)


def _ensure_profilers(rdd: RDD) -> None:
    """Give each Python RDD of `rdd`'s lineage its profiler, parents first (PySpark's order)."""
    from scheduler.rdd.kinds import MapPartitionsRDD

    seen: set[int] = set()
    todo: list[tuple[RDD, bool]] = [(rdd, False)]
    while todo:
        current, parents_done = todo.pop()
        if parents_done:
            if isinstance(current, MapPartitionsRDD):
                current.ensure_profiler()
            continue
        if current.id() in seen:
            continue
        seen.add(current.id())
        todo.append((current, True))
        todo.extend((dep.rdd, False) for dep in reversed(current.dependencies))
