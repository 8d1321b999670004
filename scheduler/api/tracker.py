"""StatusTracker and its info records: PySpark's `sc.statusTracker()` API.

The tracker reads the context's `JobRegistry`, a scheduler listener that
keeps what the tracker reports (jobs, stage attempts and their task counts,
executors and their running tasks) from the task scheduler's events, as
Spark's tracker reads its status store: it never touches the scheduler's
state. Finished stages are kept up to spark.ui.retainedStages. No I/O.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from rpcenv import Conf
from scheduler import settings
from scheduler.core.events import (
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    ListenerBus,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
)

__all__ = [
    "JobRecord",
    "JobRegistry",
    "SparkExecutorInfo",
    "SparkJobInfo",
    "SparkStageInfo",
    "StatusTracker",
]

#: The events the registry follows (JobStart's stage descriptions are not needed).
_KINDS = (
    JobStart, JobEnd, StageSubmitted, StageCompleted, TasksLaunched, TaskEnd, ExecutorAdded,
    ExecutorRemoved,
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

    Jobs come from JobStart and JobEnd; a stage's latest attempt and its task
    counts from StageSubmitted, TasksLaunched, TaskEnd and StageCompleted (a
    new attempt is only submitted after the previous one completed, so one
    record per stage id is enough); executors from ExecutorAdded and
    ExecutorRemoved. Tasks still running when their attempt completes (an
    aborted or cancelled stage's, a speculative copy's) were killed: they
    report no TaskEnd, so they stop counting then, and tasks of a lost
    executor stop counting when it is removed. Events come on the
    scheduler's thread, questions on the program's: a lock of its own.
    """

    def __init__(self, retained_stages: int = Conf().get(settings.UI_RETAINED_STAGES)) -> None:
        if retained_stages < 1:
            raise ValueError(f"retained_stages must be positive, got {retained_stages}")
        self.jobs: dict[int, JobRecord] = {}
        self._retained = retained_stages
        self._lock = threading.Lock()
        #: By stage id, least recently submitted first.
        self._stages: collections.OrderedDict[int, _StageRecord] = collections.OrderedDict()
        self._executors: dict[str, _ExecutorRecord] = {}

    def listen(self, bus: ListenerBus, retained_stages: int | None = None) -> None:
        """Follow `bus`'s jobs, stages and executors, keeping `retained_stages` finished ones.

        A limit that is not positive keeps the default, as the UI's store does.
        """
        if retained_stages is not None and retained_stages > 0:
            self._retained = retained_stages
        bus.add(self, kinds=_KINDS, lineage=False)

    def __call__(self, event: SchedulerEvent) -> None:
        if type(event) is TaskEnd:  # once per task, under the scheduler's lock: straight-line
            with self._lock:
                stage = self._stages.get(event.stage_id)
                if stage is None or stage.attempt != event.attempt:
                    return
                if event.task_id is not None:
                    stage.running.pop(event.task_id, None)
                if event.ok:
                    stage.completed += 1
                else:
                    stage.failed += 1
            return
        with self._lock:
            match event:
                case TasksLaunched(tasks=tasks):
                    for task in tasks:
                        stage = self._stages.get(task.stage_id)
                        if stage is not None and stage.attempt == task.stage_attempt:
                            stage.running[task.task_id] = task.executor_id
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
                    self.jobs[job_id] = JobRecord(job_id, group, list(stage_ids))
                case JobEnd(job_id=job_id, status=status):
                    record = self.jobs.get(job_id)
                    if record is not None:
                        record.status = status
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
        for stage_id in [s for s, r in self._stages.items() if not r.active][:excess]:
            del self._stages[stage_id]

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
    stage until spark.ui.retainedStages newer ones push it out), not the
    scheduler's own state.
    """

    def __init__(self, registry: JobRegistry) -> None:
        self._registry = registry
        self._jobs = registry.jobs

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """Ids of the jobs in a group (or without a group when None)."""
        return sorted(j.job_id for j in list(self._jobs.values()) if j.group == jobGroup)

    def getActiveStageIds(self) -> list[int]:
        """Ids of the stages running now."""
        return self._registry.active_stage_ids()

    def getActiveJobsIds(self) -> list[int]:
        """Ids of the jobs running now."""
        return sorted(j.job_id for j in list(self._jobs.values()) if j.status == "RUNNING")

    def getJobInfo(self, jobId: int) -> SparkJobInfo | None:
        """A job's stages and status (RUNNING, SUCCEEDED, FAILED), or None."""
        job = self._jobs.get(jobId)
        if job is None:
            return None
        return SparkJobInfo(job.job_id, list(job.stage_ids), job.status)

    def getStageInfo(self, stageId: int) -> SparkStageInfo | None:
        """The latest attempt of a running or recently finished stage, or None."""
        return self._registry.stage_info(stageId)

    def getExecutorInfos(self) -> list[SparkExecutorInfo]:
        """The executors registered now (Scala's API; dynamic allocation changes them)."""
        return self._registry.executor_infos()
