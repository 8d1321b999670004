"""StatusTracker and its info records: PySpark's `sc.statusTracker()` API.

The tracker reads the context's `JobRegistry`, a scheduler listener that
keeps what the tracker reports (jobs, stage attempts and their task counts,
executors and their running tasks) from the task scheduler's events, as
Spark's tracker reads its status store: it never touches the scheduler's
state. Finished jobs and stages are kept up to spark.ui.retainedJobs and
spark.ui.retainedStages. No I/O.
"""

from __future__ import annotations

import collections
import itertools
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from rpcenv import Conf
from scheduler import settings
from scheduler.core.events import (
    End,
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    Launch,
    ListenerBus,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
)

#: The settings' defaults (a registry made without a conf, as in unit tests).
_DEFAULTS = Conf()

__all__ = [
    "JobRecord",
    "JobRegistry",
    "SparkExecutorInfo",
    "SparkJobInfo",
    "SparkStageInfo",
    "StatusTracker",
]

#: The events the registry follows (JobStart's stage descriptions are not needed); tasks
#: it counts as a `TaskCounter`, with no event built per task.
_KINDS = (
    JobStart, JobEnd, StageSubmitted, StageCompleted, ExecutorAdded, ExecutorRemoved,
)  # fmt: skip


class SparkJobInfo(NamedTuple):
    """Information about a job."""

    jobId: int
    stageIds: list[int]
    status: str


class SparkStageInfo(NamedTuple):
    """Information about a running stage."""

    stageId: int
    currentAttemptId: int
    name: str
    numTasks: int
    numActiveTasks: int
    numCompletedTasks: int
    numFailedTasks: int


class SparkExecutorInfo(NamedTuple):
    """One registered executor (a few of Scala's SparkExecutorInfo fields, plus its id)."""

    executorId: str
    host: str
    totalCores: int
    #: Tasks launched to it and not finished, including those queued behind its cores.
    numRunningTasks: int


@dataclass
class JobRecord:
    job_id: int
    group: str | None
    stage_ids: list[int] = field(default_factory=list)
    status: str = "RUNNING"


@dataclass
class _StageRecord:
    """The latest attempt of a stage, as its events told it."""

    attempt: int
    name: str
    num_tasks: int
    #: Task id -> executor id of its tasks launched and not ended.
    running: dict[int, str] = field(default_factory=dict)
    completed: int = 0
    failed: int = 0
    active: bool = True


class _ExecutorRecord(NamedTuple):
    executor_id: str
    host: str
    cores: int


class JobRegistry:
    """What the status tracker reports, kept from scheduler events.

    Jobs come from JobStart and JobEnd; a stage's latest attempt from
    StageSubmitted and StageCompleted (a new attempt is only submitted after
    the previous one completed, so one record per stage id is enough), and its
    task counts from the bus's task-counter calls (`TaskCounter`: no event
    object per task, so a driver without UI or event log builds none);
    executors from ExecutorAdded and ExecutorRemoved. Finished jobs and
    stages are kept up to spark.ui.retainedJobs / retainedStages, the oldest
    forgotten first; running ones always. Tasks still running when their attempt completes (an
    aborted or cancelled stage's, a speculative copy's) were killed: they
    report no TaskEnd, so they stop counting then, and tasks of a lost
    executor stop counting when it is removed. Events come on the
    scheduler's thread, questions on the program's: a lock of its own.
    """

    def __init__(
        self,
        retained_stages: int = _DEFAULTS.get(settings.UI_RETAINED_STAGES),
        retained_jobs: int = _DEFAULTS.get(settings.UI_RETAINED_JOBS),
    ) -> None:
        if retained_stages < 1:
            raise ValueError(f"retained_stages must be positive, got {retained_stages}")
        if retained_jobs < 1:
            raise ValueError(f"retained_jobs must be positive, got {retained_jobs}")
        #: By job id, least recently started first.
        self._jobs: collections.OrderedDict[int, JobRecord] = collections.OrderedDict()
        self._retained = retained_stages
        self._retained_jobs = retained_jobs
        self._lock = threading.Lock()
        #: By stage id, least recently submitted first.
        self._stages: collections.OrderedDict[int, _StageRecord] = collections.OrderedDict()
        self._executors: dict[str, _ExecutorRecord] = {}

    def listen(
        self, bus: ListenerBus, retained_stages: int | None = None, retained_jobs: int | None = None
    ) -> None:
        """Follow `bus`'s jobs, stages and executors, keeping so many finished stages and jobs.

        A limit that is not positive keeps the default, as the UI's store does.
        """
        if retained_stages is not None and retained_stages > 0:
            self._retained = retained_stages
        if retained_jobs is not None and retained_jobs > 0:
            self._retained_jobs = retained_jobs
        bus.add(self, kinds=_KINDS, lineage=False)
        bus.add_counter(self)

    # -- TaskCounter: a batch per scheduler round, under the scheduler's lock --------------

    def tasks_launched(self, launches: list[Launch]) -> None:
        stages = self._stages
        with self._lock:
            for stage_id, attempt, task_id, executor_id in launches:
                stage = stages.get(stage_id)
                if stage is not None and stage.attempt == attempt:
                    stage.running[task_id] = executor_id

    def tasks_ended(self, ends: list[End]) -> None:
        stages = self._stages
        with self._lock:
            for stage_id, attempt, task_id, ok in ends:
                stage = stages.get(stage_id)
                if stage is None or stage.attempt != attempt:
                    continue
                stage.running.pop(task_id, None)
                if ok:
                    stage.completed += 1
                else:
                    stage.failed += 1

    def __call__(self, event: SchedulerEvent) -> None:
        with self._lock:
            match event:
                case StageSubmitted(stage_id=stage_id, attempt=attempt, num_tasks=num_tasks):
                    name = event.name or f"stage {stage_id}"
                    self._stages[stage_id] = _StageRecord(attempt, name, num_tasks)
                    self._stages.move_to_end(stage_id)
                    self._trim()
                case StageCompleted(stage_id=stage_id, attempt=attempt):
                    stage = self._stages.get(stage_id)
                    if stage is not None and stage.attempt == attempt:
                        stage.running.clear()  # killed: they report no TaskEnd
                        stage.active = False
                        self._trim()
                case JobStart(job_id=job_id, stage_ids=stage_ids, group=group):
                    self._jobs[job_id] = JobRecord(job_id, group, list(stage_ids))
                case JobEnd(job_id=job_id, status=status):
                    record = self._jobs.get(job_id)
                    if record is not None:
                        record.status = status
                        self._trim_jobs()
                case ExecutorAdded(executor_id=executor_id, host=host, cores=cores):
                    self._executors[executor_id] = _ExecutorRecord(executor_id, host, cores)
                case ExecutorRemoved(executor_id=executor_id):
                    self._executors.pop(executor_id, None)
                    for stage in self._stages.values():  # its tasks run again, as new ones
                        for task_id in [t for t, e in stage.running.items() if e == executor_id]:
                            del stage.running[task_id]

    def _trim(self) -> None:
        """Forget the least recently submitted finished stages beyond the limit."""
        excess = len(self._stages) - self._retained
        if excess <= 0:
            return
        # Oldest first: the first finished ones are nearly always at the front, so this
        # stops after `excess` of them instead of listing all the retained stages.
        finished = (s for s, r in self._stages.items() if not r.active)
        for stage_id in list(itertools.islice(finished, excess)):
            del self._stages[stage_id]

    def _trim_jobs(self) -> None:
        """Forget the least recently started finished jobs beyond spark.ui.retainedJobs."""
        excess = len(self._jobs) - self._retained_jobs
        if excess <= 0:
            return
        finished = (j for j, r in self._jobs.items() if r.status != "RUNNING")
        for job_id in list(itertools.islice(finished, excess)):
            del self._jobs[job_id]

    def job_ids(self, group: str | None, running_only: bool = False) -> list[int]:
        """Ids of the retained jobs of `group` (any group: `running_only`), sorted."""
        with self._lock:
            if running_only:
                return sorted(j for j, r in self._jobs.items() if r.status == "RUNNING")
            return sorted(j for j, r in self._jobs.items() if r.group == group)

    def job_info(self, job_id: int) -> SparkJobInfo | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return SparkJobInfo(job.job_id, list(job.stage_ids), job.status)

    def active_stage_ids(self) -> list[int]:
        with self._lock:
            return sorted(s for s, r in self._stages.items() if r.active)

    def stage_info(self, stage_id: int) -> SparkStageInfo | None:
        with self._lock:
            r = self._stages.get(stage_id)
            if r is None:
                return None
            return SparkStageInfo(
                stage_id, r.attempt, r.name, r.num_tasks, len(r.running), r.completed, r.failed
            )

    def executor_infos(self) -> list[SparkExecutorInfo]:
        """Counted from the running stages' tasks: a question is rarer than a task."""
        with self._lock:
            running = collections.Counter(
                e for r in self._stages.values() if r.active for e in r.running.values()
            )
            return [
                SparkExecutorInfo(e.executor_id, e.host, e.cores, running[e.executor_id])
                for e in self._executors.values()
            ]


class StatusTracker:
    """Low-level status of jobs, stages and executors (`sc.statusTracker()`).

    Like Spark's, it reports what the scheduler's events said (a finished
    stage until spark.ui.retainedStages newer ones push it out, a finished job
    until spark.ui.retainedJobs do), not the scheduler's own state.
    """

    def __init__(self, registry: JobRegistry) -> None:
        self._registry = registry

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """Ids of the jobs in a group (or without a group when None)."""
        return self._registry.job_ids(jobGroup)

    def getActiveStageIds(self) -> list[int]:
        """Ids of the stages running now."""
        return self._registry.active_stage_ids()

    def getActiveJobsIds(self) -> list[int]:
        """Ids of the jobs running now."""
        return self._registry.job_ids(None, running_only=True)

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        """A job's stages and status (RUNNING, SUCCEEDED, FAILED), or None.

        None too for a finished job that spark.ui.retainedJobs newer ones pushed out.
        """
        return self._registry.job_info(jobId)

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        """The latest attempt of a running or recently finished stage, or None."""
        return self._registry.stage_info(stageId)

    def getExecutorInfos(self) -> list[SparkExecutorInfo]:
        """The executors registered now (Scala's API; dynamic allocation changes them)."""
        return self._registry.executor_infos()
