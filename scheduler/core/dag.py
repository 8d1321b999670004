"""DAGScheduler bookkeeping: jobs, stages at shuffle boundaries, map outputs.

A plain state machine without I/O: the task scheduler calls it when tasks
finish or fail and when executors go away; it answers by calling back
`TaskSetSink.job_started` / `submit_task_set` / `cancel_stage` and a job's
`JobListener`.
Shuffle map stages are keyed by shuffle id so a later job reuses a shuffle
computed earlier. A fetch failure removes the lost map output and resubmits
the parent stage, then the failed stage; executor loss drops the outputs
that lived on it. Callers serialise calls (one lock in the task scheduler).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from scheduler.core.errors import (
    BarrierJobSlotsNumberCheckFailed,
    JobCancelledError,
    JobFailedError,
)
from scheduler.rdd.barrier import (
    BARRIER_CHAIN_MESSAGE,
    BARRIER_DYN_ALLOCATION_MESSAGE,
    BARRIER_SLOTS_MESSAGE,
    chain_ok,
    is_barrier,
)
from scheduler.rdd.deps import NarrowDependency, ShuffleDependency
from scheduler.rdd.profiles import PROFILE_CONFLICT_MESSAGE, stage_profile, stage_profiles
from scheduler.rdd.rdd import RDD
from scheduler.rdd.stagespec import TaskSetSpec
from scheduler.shuffle.mapoutput import MapOutput

if TYPE_CHECKING:
    from scheduler.resource.profile import ResourceProfile
    from scheduler.shuffle.rangesort import Sample

__all__ = [
    "DAGScheduler",
    "Job",
    "JobListener",
    "Stage",
    "TaskSet",
    "TaskSetSink",
]


@dataclass
class TaskSet:
    """One attempt of a stage: the partitions to run and where they would like to run."""

    stage_id: int
    attempt: int
    job_id: int
    #: The RDD partition each task computes.
    partitions: list[int]
    #: What the DAGScheduler calls each task: map partition, or the job's output index.
    indices: list[int]
    preferred: list[list[str]]
    spec: TaskSetSpec
    properties: dict[str, str]
    #: RDD.barrier() stage: all tasks launch together; one failure fails the attempt.
    barrier: bool = False

    @functools.cached_property
    def key(self) -> str:
        """`stage.attempt`, looked up several times per task on the scheduler's hot path."""
        return f"{self.stage_id}.{self.attempt}"


@dataclass(eq=False)
class Stage:
    """A set of tasks that run the same pipelined function on different partitions."""

    id: int
    rdd: RDD
    num_tasks: int
    parents: list[Stage]
    shuffle_dep: ShuffleDependency | None
    first_job_id: int
    job_ids: set[int] = field(default_factory=set)
    attempt: int = -1
    pending: set[int] = field(default_factory=set)
    outputs: list[MapOutput | None] = field(default_factory=list)
    failed_attempts: set[int] = field(default_factory=set)
    #: Result stages: which job and which of its partitions.
    job: Job | None = None
    #: Map stages of sortByKey: each task's count and key sample, by map partition.
    samples: dict[int, Sample] = field(default_factory=dict)
    #: Computes an RDD made by RDD.barrier() (without a shuffle in between).
    barrier: bool = False

    @property
    def is_map(self) -> bool:
        return self.shuffle_dep is not None

    def missing_outputs(self) -> list[int]:
        return [i for i, out in enumerate(self.outputs) if out is None]

    def available(self) -> bool:
        return self.is_map and all(out is not None for out in self.outputs)


class JobListener(Protocol):
    """Told about one job's results and its end."""

    def task_succeeded(self, index: int, result: Any) -> None: ...

    def job_failed(self, error: BaseException) -> None: ...


@dataclass(eq=False)
class Job:
    id: int
    final_stage: Stage
    partitions: list[int]
    listener: JobListener
    properties: dict[str, str]
    finished: list[bool]
    num_finished: int = 0


class TaskSetSink(Protocol):
    """Where the DAGScheduler sends task sets (the task scheduler)."""

    def job_started(self, job: Job) -> None:
        """A job's stages exist and none was submitted yet: announce it (JobStart first)."""
        ...

    def submit_task_set(self, task_set: TaskSet) -> None: ...

    def cancel_stage(self, stage_id: int, reason: str) -> None: ...


class DAGScheduler:
    """Job and stage bookkeeping.

    Args:
        sink: receives task sets to run and stage cancellations.
        max_stage_attempts: spark.stage.maxConsecutiveAttempts.
        preferred: (rdd, partition) -> executor ids holding that partition cached.
    """

    def __init__(
        self,
        sink: TaskSetSink,
        max_stage_attempts: int = 4,
        preferred: Callable[[RDD, int], list[str]] | None = None,
    ) -> None:
        self._sink = sink
        #: How many tasks the executors can run at once (barrier stages must fit), and
        #: whether dynamic allocation is on (barrier stages refuse it); set by the owner.
        self.max_slots: Callable[[ResourceProfile | None], int] = lambda profile: 1 << 30
        self.dynamic_allocation = False
        #: spark.scheduler.resource.profileMergeConflicts: merge a stage's profiles.
        self.merge_profiles = False
        self._max_stage_attempts = max_stage_attempts
        self._preferred_cache = preferred or (lambda rdd, split: [])
        self._stage_ids = itertools.count()
        self._job_ids = itertools.count()
        #: The map stage of each shuffle, while some active job needs it.
        self.shuffle_stages: dict[int, Stage] = {}
        #: Map outputs by shuffle id; they outlive stages, so later jobs skip the map stage.
        self.map_outputs: dict[int, list[MapOutput | None]] = {}
        #: Each shuffle's dependency while the program still references it: dynamic
        #: allocation keeps the executors holding its map outputs until then.
        self.shuffle_deps: weakref.WeakValueDictionary[int, ShuffleDependency] = (
            weakref.WeakValueDictionary()
        )
        self.stages: dict[int, Stage] = {}
        self.jobs: dict[int, Job] = {}
        self.waiting: set[Stage] = set()
        self.running: set[Stage] = set()
        self.failed: set[Stage] = set()

    # -- jobs -------------------------------------------------------------------------

    def submit_job(
        self,
        rdd: RDD,
        func: Callable[[Any, Any], Any],
        partitions: list[int],
        listener: JobListener,
        properties: dict[str, str] | None = None,
    ) -> int:
        """Start a job computing `func` over `partitions` of `rdd`; returns the job id.

        Raises:
            BarrierJobSlotsNumberCheckFailed: a barrier stage needs more slots than there are.
            JobFailedError: a barrier stage breaks one of Spark's other barrier rules.
        """
        self._check_barrier(rdd, len(set(partitions)))
        job_id = next(self._job_ids)
        final = self._new_stage(rdd, len(partitions), None, job_id)
        job = Job(
            job_id,
            final,
            list(partitions),
            listener,
            dict(properties or {}),
            [False] * len(partitions),
        )
        final.job = job
        final.result_func = func  # type: ignore[attr-defined]
        self.jobs[job_id] = job
        self._mark_job(final, job_id)
        self._sink.job_started(job)
        self._submit_first_stages(job, final)
        return job_id

    def submit_map_stage(
        self,
        dep: ShuffleDependency,
        listener: JobListener,
        properties: dict[str, str] | None = None,
    ) -> int:
        """Start a job that computes only the map stage of `dep` (Spark's submitMapStage).

        When every map output is available the listener gets, as result 0, the
        samples its tasks returned by map partition (empty for a reused shuffle).
        """
        job_id = next(self._job_ids)
        stage = self._shuffle_stage(dep, job_id)
        job = Job(job_id, stage, [0], listener, dict(properties or {}), [False])
        self.jobs[job_id] = job
        self._mark_job(stage, job_id)
        self._sink.job_started(job)
        self._submit_first_stages(job, stage)
        if stage.available() and job.id in self.jobs:
            self._finish_map_jobs(stage)
        return job_id

    def _submit_first_stages(self, job: Job, stage: Stage) -> None:
        """Submit a new job's stages; one that cannot be (its code does not pickle) fails it.

        The job was announced already: it ends like any failed job, its listener told
        the error, rather than staying active with nothing to run.
        """
        try:
            self._submit_stage(stage)
        except Exception as exc:
            self._fail_job(job, exc)

    def _check_barrier(self, rdd: RDD, num_tasks: int) -> None:
        """Spark's checks of the barrier stages a job would run, before it runs any; and
        that no stage's RDDs carry two resource profiles unless they are to be merged
        (Spark's default refusal)."""
        todo: list[tuple[RDD, int]] = [(rdd, num_tasks)]
        seen: set[int] = set()
        while todo:
            stage_rdd, tasks = todo.pop()
            if not self.merge_profiles and len(stage_profiles(stage_rdd)) > 1:
                raise JobFailedError(PROFILE_CONFLICT_MESSAGE)
            if is_barrier(stage_rdd):
                if self.dynamic_allocation:
                    raise JobFailedError(BARRIER_DYN_ALLOCATION_MESSAGE)
                slots = self.max_slots(stage_profile(stage_rdd))
                if tasks > slots:
                    raise BarrierJobSlotsNumberCheckFailed(BARRIER_SLOTS_MESSAGE, tasks, slots)
                if not chain_ok(stage_rdd, tasks):
                    raise JobFailedError(BARRIER_CHAIN_MESSAGE)
            for dep in _shuffle_deps(stage_rdd):
                if dep.shuffle_id not in seen and not self._shuffle_available(dep.shuffle_id):
                    seen.add(dep.shuffle_id)
                    todo.append((dep.rdd, dep.rdd.getNumPartitions()))

    def _shuffle_available(self, shuffle_id: int) -> bool:
        outputs = self.map_outputs.get(shuffle_id)
        return outputs is not None and all(out is not None for out in outputs)

    def barrier_task_failed(
        self, stage_id: int, attempt: int, reason: str, partition: int | None = None
    ) -> None:
        """A task of a barrier stage attempt failed: retry the whole stage, or abort it.

        As in Spark, every map output of a barrier map stage is dropped so that all its
        tasks run again; a barrier result stage is aborted instead (Spark cannot tell
        whether some of its tasks already committed output).
        """
        stage = self.stages.get(stage_id)
        if stage is None or attempt != stage.attempt or stage not in self.running:
            return
        stage.failed_attempts.add(attempt)
        self.running.discard(stage)
        self._sink.cancel_stage(stage.id, "a barrier task failed")
        # Spark names the task as its Task.toString does: ResultTask(stage, partition).
        kind = "ShuffleMapTask" if stage.is_map else "ResultTask"
        task = f"{kind}({stage_id}, {partition})" if partition is not None else "of the stage"
        message = f"Stage failed because barrier task {task} finished unsuccessfully.\n{reason}"
        if len(stage.failed_attempts) >= self._max_stage_attempts:
            self._abort_stage(
                stage,
                f"Stage {stage.id} has failed the maximum allowable number of times: "
                f"{self._max_stage_attempts}. Most recent failure reason: {message}",
            )
            return
        if stage.is_map:
            for i in range(len(stage.outputs)):
                stage.outputs[i] = None
        else:
            self._abort_stage(
                stage,
                "Could not recover from a failed barrier ResultStage. Most recent failure "
                f"reason: {message}",
            )
            return
        self._submit_stage(stage)

    def job_stage_ids(self, job_id: int) -> list[int]:
        """The ids of the stages a job needs."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        return sorted(s.id for s in self.stages.values() if job_id in s.job_ids)

    def cancel_job(self, job_id: int, reason: str) -> None:
        """Fail a job as cancelled and stop the stages only it needs."""
        job = self.jobs.get(job_id)
        if job is None:
            return
        self._fail_job(job, JobCancelledError(f"Job {job_id} cancelled {reason}".rstrip()))

    # -- task outcomes ----------------------------------------------------------------

    def task_succeeded(self, stage_id: int, attempt: int, partition: int, result: Any) -> None:
        """A task finished; `result` is a MapOutput (map stages) or the value."""
        stage = self.stages.get(stage_id)
        if stage is None:
            return
        if stage.is_map:
            assert isinstance(result, MapOutput)
            if result.sample is not None:
                stage.samples[partition] = result.sample
                result = dataclasses.replace(result, sample=None)
            stage.outputs[partition] = result
            stage.pending.discard(partition)
            if stage in self.running and not stage.pending:
                self._map_stage_done(stage)
            return
        job = stage.job
        if job is None or job.id not in self.jobs:
            return
        index = partition
        if job.finished[index]:
            return
        job.finished[index] = True
        job.num_finished += 1
        stage.pending.discard(index)
        job.listener.task_succeeded(index, result)
        if job.num_finished == len(job.partitions):
            self._finish_job(job)

    def fetch_failed(
        self, stage_id: int, attempt: int, shuffle_id: int, map_index: int, executor_id: str
    ) -> None:
        """A reduce task could not read a map output: recompute it, then retry the stage."""
        stage = self.stages.get(stage_id)
        if stage is None:
            return
        outputs = self.map_outputs.get(shuffle_id)
        if outputs is not None and 0 <= map_index < len(outputs):
            outputs[map_index] = None
        if executor_id:
            self._forget_executor_outputs(executor_id)
        if attempt != stage.attempt or stage not in self.running:
            return  # an older attempt's failure: already handled
        stage.failed_attempts.add(attempt)
        self.running.discard(stage)
        self._sink.cancel_stage(stage.id, "fetch failure")
        if stage.barrier and not stage.is_map:
            self._abort_stage(
                stage,
                "Could not recover from a failed barrier ResultStage. Most recent failure "
                f"reason: shuffle {shuffle_id} map output {map_index} on executor "
                f"{executor_id} was lost",
            )
            return
        if len(stage.failed_attempts) >= self._max_stage_attempts:
            self._abort_stage(
                stage,
                f"Stage {stage.id} failed {len(stage.failed_attempts)} times because of fetch "
                f"failures (spark.stage.maxConsecutiveAttempts); last: shuffle {shuffle_id} "
                f"map output {map_index} on executor {executor_id} was lost",
            )
            return
        self._submit_stage(stage)

    def task_set_failed(self, stage_id: int, attempt: int, reason: str) -> None:
        """A task failed too many times: abort the stage and its jobs."""
        stage = self.stages.get(stage_id)
        if stage is None or attempt != stage.attempt:
            return
        self._abort_stage(stage, reason)

    def executor_lost(self, executor_id: str) -> None:
        """Map outputs on a lost executor are gone; finished map stages become incomplete."""
        self._forget_executor_outputs(executor_id)
        for stage in list(self.running):
            if stage.is_map and not stage.pending and not stage.available():
                self._map_stage_done(stage)

    def forget_shuffle(self, shuffle_id: int) -> None:
        """Drop a shuffle's map outputs (RDD.cleanShuffleDependencies): a later job reruns them.

        In place, as when their executor is lost, so that a stage holding the list sees it.
        """
        outputs = self.map_outputs.get(shuffle_id)
        if outputs is None:
            return
        outputs[:] = [None] * len(outputs)
        for stage in list(self.running):
            if stage.is_map and not stage.pending and not stage.available():
                self._map_stage_done(stage)

    # -- internals ----------------------------------------------------------------------

    def _forget_executor_outputs(self, executor_id: str) -> None:
        for outputs in self.map_outputs.values():
            for i, out in enumerate(outputs):
                if out is not None and out.executor_id == executor_id:
                    outputs[i] = None

    def _new_stage(
        self, rdd: RDD, num_tasks: int, shuffle_dep: ShuffleDependency | None, job_id: int
    ) -> Stage:
        parents = [self._shuffle_stage(dep, job_id) for dep in _shuffle_deps(rdd)]
        stage = Stage(next(self._stage_ids), rdd, num_tasks, parents, shuffle_dep, job_id)
        stage.barrier = is_barrier(rdd)
        if shuffle_dep is not None:
            stage.outputs = self.map_outputs.setdefault(shuffle_dep.shuffle_id, [None] * num_tasks)
            self.shuffle_deps[shuffle_dep.shuffle_id] = shuffle_dep
        self.stages[stage.id] = stage
        return stage

    def _shuffle_stage(self, dep: ShuffleDependency, job_id: int) -> Stage:
        stage = self.shuffle_stages.get(dep.shuffle_id)
        if stage is None:
            stage = self._new_stage(dep.rdd, dep.rdd.getNumPartitions(), dep, job_id)
            self.shuffle_stages[dep.shuffle_id] = stage
        return stage

    def _mark_job(self, stage: Stage, job_id: int) -> None:
        todo = [stage]
        while todo:
            s = todo.pop()
            if job_id not in s.job_ids:
                s.job_ids.add(job_id)
                todo.extend(s.parents)

    def _missing_parents(self, stage: Stage) -> list[Stage]:
        return [p for p in stage.parents if not p.available()]

    def _submit_stage(self, stage: Stage) -> None:
        if stage in self.waiting or stage in self.running:
            return
        if not self._has_active_job(stage):
            return
        missing = self._missing_parents(stage)
        if not missing:
            self._submit_missing_tasks(stage)
            return
        for parent in missing:
            self._submit_stage(parent)
        self.waiting.add(stage)

    def _active_job_ids(self, stage: Stage) -> list[int]:
        return sorted(j for j in stage.job_ids if j in self.jobs)

    def _has_active_job(self, stage: Stage) -> bool:
        """`_active_job_ids(stage)` is not empty (asked of every stage after every job)."""
        jobs = self.jobs
        return any(j in jobs for j in stage.job_ids)

    def _submit_missing_tasks(self, stage: Stage) -> None:
        job_ids = self._active_job_ids(stage)
        job = self.jobs[job_ids[0]]
        if stage.is_map:
            partitions = stage.missing_outputs()
            if stage.barrier and 0 < len(partitions) < len(stage.outputs):
                # Lost map outputs of a barrier stage: all its tasks run again, together.
                for i in range(len(stage.outputs)):
                    stage.outputs[i] = None
                partitions = stage.missing_outputs()
            parts_to_run = partitions
        else:
            assert stage.job is not None
            partitions = [i for i, done in enumerate(stage.job.finished) if not done]
            parts_to_run = [stage.job.partitions[i] for i in partitions]
        if not partitions:
            if stage.is_map:
                self._map_stage_done(stage)
            return
        stage.attempt += 1
        stage.pending = set(partitions)
        self.running.add(stage)
        map_outputs = {
            dep.shuffle_id: list(self.map_outputs[dep.shuffle_id])
            for dep in _shuffle_deps(stage.rdd)
            if dep.shuffle_id in self.map_outputs
        }
        spec = TaskSetSpec(
            stage_id=stage.id,
            stage_attempt=stage.attempt,
            rdd=stage.rdd,
            func=getattr(stage, "result_func", None) if not stage.is_map else None,
            shuffle_dep=stage.shuffle_dep,
            map_outputs=map_outputs,
            properties=job.properties,
            barrier=stage.barrier,
        )
        if _has_cached_rdd(stage.rdd):
            preferred = [self._preferred_locations(stage.rdd, p) for p in parts_to_run]
        else:
            preferred = [[] for _ in parts_to_run]  # nothing cached: no preference to look up
        self._sink.submit_task_set(
            TaskSet(
                stage_id=stage.id,
                attempt=stage.attempt,
                job_id=job.id,
                partitions=parts_to_run,
                indices=partitions,
                preferred=preferred,
                spec=spec,
                properties=job.properties,
                barrier=stage.barrier,
            )
        )

    def _preferred_locations(self, rdd: RDD, split: int) -> list[str]:
        todo: list[tuple[RDD, int]] = [(rdd, split)]
        seen: set[tuple[int, int]] = set()
        while todo:
            current, part = todo.pop(0)
            if (current.id(), part) in seen:
                continue
            seen.add((current.id(), part))
            if current.is_cached:
                cached = self._preferred_cache(current, part)
                if cached:
                    return cached
            for dep in current.dependencies:
                if isinstance(dep, NarrowDependency):
                    todo.extend((dep.rdd, p) for p in dep.parents(part))
        return []

    def _map_stage_done(self, stage: Stage) -> None:
        self.running.discard(stage)
        if not stage.available():
            if self._has_active_job(stage):
                self._submit_stage(stage)  # some outputs were lost meanwhile
            return
        stage.failed_attempts.clear()
        self._finish_map_jobs(stage)
        for waiting in sorted(self.waiting, key=lambda s: s.id):
            if not self._missing_parents(waiting):
                self.waiting.discard(waiting)
                self._submit_stage(waiting)

    def _finish_map_jobs(self, stage: Stage) -> None:
        """Finish the map-stage jobs (submit_map_stage) waiting for `stage`."""
        for job in [j for j in self.jobs.values() if j.final_stage is stage]:
            job.finished[0] = True
            job.num_finished = 1
            job.listener.task_succeeded(0, dict(stage.samples))
            self._finish_job(job)

    def _finish_job(self, job: Job) -> None:
        del self.jobs[job.id]
        self.running.discard(job.final_stage)
        self._cleanup_stages()

    def _fail_job(self, job: Job, error: BaseException) -> None:
        self.jobs.pop(job.id, None)
        for stage in list(self.running | self.waiting):
            if job.id in stage.job_ids and not self._has_active_job(stage):
                self.running.discard(stage)
                self.waiting.discard(stage)
                self._sink.cancel_stage(stage.id, str(error))
        self._cleanup_stages()
        job.listener.job_failed(error)

    def _abort_stage(self, stage: Stage, reason: str) -> None:
        self.running.discard(stage)
        for job_id in self._active_job_ids(stage):
            job = self.jobs.get(job_id)
            if job is not None:
                self._fail_job(
                    job, JobFailedError(f"Job {job_id} aborted due to stage failure: {reason}")
                )

    def _cleanup_stages(self) -> None:
        """Forget stages no active job needs; map outputs stay for later jobs.

        As in Spark, a later job that reuses a shuffle gets a new (skipped) map stage.
        """
        for stage_id, stage in list(self.stages.items()):
            if not self._has_active_job(stage):
                del self.stages[stage_id]
                self.waiting.discard(stage)
                self.running.discard(stage)
                dep = stage.shuffle_dep
                if dep is not None and self.shuffle_stages.get(dep.shuffle_id) is stage:
                    del self.shuffle_stages[dep.shuffle_id]


def _has_cached_rdd(rdd: RDD) -> bool:
    """Whether any RDD of the stage (narrow lineage of `rdd`) is persisted."""
    seen: set[int] = set()
    todo: list[RDD] = [rdd]
    while todo:
        current = todo.pop()
        if current.id() in seen:
            continue
        seen.add(current.id())
        if current.is_cached:
            return True
        todo.extend(d.rdd for d in current.dependencies if not isinstance(d, ShuffleDependency))
    return False


def _shuffle_deps(rdd: RDD) -> list[ShuffleDependency]:
    """The shuffle dependencies reachable from `rdd` through narrow ones only."""
    found: list[ShuffleDependency] = []
    seen: set[int] = set()
    todo: list[RDD] = [rdd]
    while todo:
        current = todo.pop()
        if current.id() in seen:
            continue
        seen.add(current.id())
        for dep in current.dependencies:
            if isinstance(dep, ShuffleDependency):
                if all(f.shuffle_id != dep.shuffle_id for f in found):
                    found.append(dep)
            else:
                todo.append(dep.rdd)
    return found
