"""StatusTracker and its info records: PySpark's `sc.statusTracker()` API.

The tracker reads the context's `JobRegistry`, a scheduler listener that
follows JobStart and JobEnd, and (for stages and executors) the task
scheduler's live state under its lock. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from scheduler.core.events import JobEnd, JobStart, ListenerBus, SchedulerEvent
from scheduler.rdd.callsite import task_set_name

if TYPE_CHECKING:
    from scheduler.core.taskscheduler import TaskScheduler

__all__ = [
    "JobRecord",
    "JobRegistry",
    "SparkExecutorInfo",
    "SparkJobInfo",
    "SparkStageInfo",
    "StatusTracker",
]


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


class JobRegistry:
    """The context's jobs as the status tracker reports them, kept from JobStart and JobEnd."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobRecord] = {}

    def listen(self, bus: ListenerBus) -> None:
        """Follow `bus`'s jobs (their stage descriptions are not needed here)."""
        bus.add(self, kinds=(JobStart, JobEnd), lineage=False)

    def __call__(self, event: SchedulerEvent) -> None:
        match event:
            case JobStart(job_id=job_id, stage_ids=stage_ids, group=group):
                self.jobs[job_id] = JobRecord(job_id, group, list(stage_ids))
            case JobEnd(job_id=job_id, status=status):
                record = self.jobs.get(job_id)
                if record is not None:
                    record.status = status


class StatusTracker:
    """Low-level status of jobs and stages (`sc.statusTracker()`)."""

    def __init__(self, jobs: JobRegistry, scheduler: TaskScheduler) -> None:
        self._jobs = jobs.jobs
        self._scheduler = scheduler

    def getJobIdsForGroup(self, jobGroup: str | None = None) -> list[int]:
        """Ids of the jobs in a group (or without a group when None)."""
        return sorted(j.job_id for j in list(self._jobs.values()) if j.group == jobGroup)

    def getActiveStageIds(self) -> list[int]:
        """Ids of the stages running now."""
        with self._scheduler.lock:
            return sorted({t.task_set.stage_id for t in self._scheduler.tsms.values()})

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
        """A running or recently finished stage's task counts, or None."""
        with self._scheduler.lock:
            for tsm in self._scheduler.tsms.values():
                if tsm.task_set.stage_id == stageId:
                    ts = tsm.task_set
                    failed = sum(t.failures for t in tsm.tasks)
                    return SparkStageInfo(
                        stageId, ts.attempt, task_set_name(ts.spec), tsm.num_tasks,
                        len(tsm.running), tsm.num_done, failed,
                    )  # fmt: skip
            done = self._scheduler.finished_stages.get(stageId)
        if done is None:
            return None
        return SparkStageInfo(
            stageId, done.attempt, done.name, done.num_tasks, done.num_active,
            done.num_completed, done.num_failed,
        )  # fmt: skip

    def getExecutorInfos(self) -> list[SparkExecutorInfo]:
        """The executors registered now (Scala's API; dynamic allocation changes them)."""
        with self._scheduler.lock:
            handles = list(self._scheduler.executors.values())
            return [
                SparkExecutorInfo(h.executor_id, h.host, h.cores, len(h.running)) for h in handles
            ]
