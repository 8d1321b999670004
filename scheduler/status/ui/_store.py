"""The application UI's status store: jobs, stages, tasks, executors, storage, environment.

`AppStatusStore` is a task scheduler listener (and the target of an event
log replay, which feeds it the same events with their logged `time`). It
keeps plain records under one lock and is bounded like Spark's UI:
`spark.ui.retainedJobs`, `spark.ui.retainedStages`, `spark.ui.retainedTasks`
(per stage attempt) and `spark.ui.retainedDeadExecutors`. Aggregates (task
counts, run time, shuffle bytes) are kept as totals, so dropping old task
records never changes a count. The listener path (TaskEnd above all)
only updates records; everything a page shows is computed when a page asks
(`_views`). It never calls back into the scheduler.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rpcenv import Conf, ConfigEntry, ConfigValueError
from scheduler import settings
from scheduler.core.events import (
    EnvironmentUpdate,
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
    UnpersistRDD,
)
from scheduler.status.storage import StorageStatus

__all__ = ["AppStatusStore", "ExecutorRecord", "JobRecord", "Limits", "StageRecord", "TaskRecord"]

#: Spark's default spark.redaction.regex (keys or values that match are hidden).
DEFAULT_REDACTION = Conf().get(settings.REDACTION_REGEX)
REDACTED = "*********(redacted)"
#: Recent tasks kept for the task stream picture, across stages.
STREAM_TASKS = 2000


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much history the store keeps (Spark's spark.ui.retained* settings)."""

    jobs: int = Conf().get(settings.UI_RETAINED_JOBS)
    stages: int = Conf().get(settings.UI_RETAINED_STAGES)
    tasks: int = Conf().get(settings.UI_RETAINED_TASKS)
    dead_executors: int = Conf().get(settings.UI_RETAINED_DEAD_EXECUTORS)

    @classmethod
    def from_conf(cls, conf: Mapping[str, str]) -> Limits:
        """The limits of `conf`; a value that is not a positive integer keeps the default.

        Lenient on purpose: the UI's history must never fail the application (the CLI
        refuses a malformed value before the app starts).
        """
        values = Conf(conf)

        def pick(entry: ConfigEntry[int]) -> int:
            try:
                value = values.get(entry)
            except ConfigValueError:
                value = 0
            return value if value > 0 else Conf().get(entry)

        return cls(
            pick(settings.UI_RETAINED_JOBS),
            pick(settings.UI_RETAINED_STAGES),
            pick(settings.UI_RETAINED_TASKS),
            pick(settings.UI_RETAINED_DEAD_EXECUTORS),
        )


@dataclasses.dataclass(slots=True)
class TaskRecord:
    """One task attempt (times in seconds since the epoch; sizes in bytes; None: not known)."""

    task_id: int
    stage_id: int
    stage_attempt: int
    index: int
    attempt: int
    partition: int
    executor_id: str
    host: str
    launch: float
    locality: str = "PROCESS_LOCAL"
    speculative: bool = False
    status: str = "RUNNING"
    finish: float | None = None
    run_ms: int | None = None
    gc_ms: int | None = None
    shuffle_read: int | None = None
    shuffle_write: int | None = None
    spilled: int | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def duration_ms(self) -> int | None:
        """Executor run time if measured, else launch to finish."""
        if self.run_ms is not None:
            return self.run_ms
        if self.finish is None:
            return None
        return max(0, int((self.finish - self.launch) * 1000))


@dataclasses.dataclass(slots=True)
class StageRecord:
    """One stage attempt (PENDING until submitted)."""

    stage_id: int
    attempt: int
    job_id: int
    name: str = ""
    num_tasks: int = 0
    parent_ids: list[int] = dataclasses.field(default_factory=list)
    rdds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    is_map: bool = False
    status: str = "PENDING"
    submitted: float | None = None
    first_launch: float | None = None
    completed: float | None = None
    failure: str | None = None
    active: int = 0
    complete: int = 0
    failed: int = 0
    killed: int = 0
    run_ms: int = 0
    gc_ms: int = 0
    shuffle_read: int = 0
    shuffle_write: int = 0
    spilled: int = 0
    #: Which of the three size totals some task reported (else the page shows nothing).
    measured: set[str] = dataclasses.field(default_factory=set)
    tasks: dict[int, TaskRecord] = dataclasses.field(default_factory=dict)
    #: Task records dropped by spark.ui.retainedTasks.
    dropped_tasks: int = 0


@dataclasses.dataclass(slots=True)
class JobRecord:
    """One job."""

    job_id: int
    stage_ids: list[int]
    description: str | None = None
    group: str | None = None
    status: str = "RUNNING"
    submitted: float = 0.0
    completed: float | None = None
    error: str | None = None


@dataclasses.dataclass(slots=True)
class ExecutorRecord:
    """One executor (the driver's tasks never show here: it runs none)."""

    executor_id: str
    host: str
    cores: int
    added: float
    removed: float | None = None
    remove_reason: str | None = None
    active: int = 0
    completed: int = 0
    failed: int = 0
    run_ms: int = 0
    gc_ms: int = 0
    shuffle_read: int = 0
    shuffle_write: int = 0
    log_urls: dict[str, str] = dataclasses.field(default_factory=dict)


class AppStatusStore:
    """What the application UI shows, updated from scheduler events (thread-safe).

    Args:
        app_id: the application id (replaced once a Master assigns one).
        app_name: spark.app.name.
        conf: the application's settings, for the Environment page and the limits.
        limits: overrides the limits `conf` gives.
    """

    def __init__(
        self,
        app_id: str,
        app_name: str,
        conf: Iterable[tuple[str, str]] = (),
        limits: Limits | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_name = app_name
        self.start_time = time.time()
        self.end_time: float | None = None
        self.user = ""
        self.lock = threading.Lock()
        pairs = list(conf)
        self.limits = limits or Limits.from_conf(dict(pairs))
        self.environment: dict[str, list[tuple[str, str]]] = environment_of(pairs)
        self.jobs: dict[int, JobRecord] = {}
        self.stages: dict[tuple[int, int], StageRecord] = {}
        #: Stage id -> its attempts in `stages` (JobStart looks them up per stage).
        self._attempts: dict[int, set[int]] = {}
        self.executors: dict[str, ExecutorRecord] = {}
        #: What JobStart told of each stage (name, parents, RDDs), for later attempts.
        self._stage_info: dict[int, Mapping[str, Any]] = {}
        #: Task records of running tasks by task id (until their TaskEnd).
        self._running: dict[int, TaskRecord] = {}
        #: Recent tasks for the task stream, oldest first.
        self.stream: collections.deque[TaskRecord] = collections.deque(maxlen=STREAM_TASKS)
        #: Cached partitions: where, and their sizes on disk and in Python workers' memory.
        self.storage = StorageStatus()
        self.tasks_completed = 0
        self.tasks_failed = 0
        #: Bumped on every change: the pages' live refresh polls it.
        self.version = 0

    def __call__(self, event: SchedulerEvent) -> None:
        now = event.time or time.time()  # a replayed event brings its own time
        with self.lock:
            match event:
                case TasksLaunched():
                    self._tasks_launched(event, now)
                case TaskEnd():
                    self._task_end(event, now)
                    self.storage(event)
                case JobStart():
                    self._job_start(event, now)
                    self.storage(event)
                case JobEnd():
                    self._job_end(event, now)
                case StageSubmitted():
                    self._stage_submitted(event, now)
                case StageCompleted():
                    self._stage_completed(event, now)
                case ExecutorAdded():
                    self._executor_added(event, now)
                case ExecutorRemoved():
                    self._executor_removed(event, now)
                    self.storage(event)
                case UnpersistRDD():
                    self.storage(event)
                case EnvironmentUpdate():
                    for section, pairs in event.sections.items():
                        self.environment[section] = [(str(k), str(v)) for k, v in pairs]
            self.version += 1

    # -- tasks ---------------------------------------------------------------------------

    def _tasks_launched(self, event: TasksLaunched, now: float) -> None:
        # Once per offer round, under the scheduler's lock: a round's tasks mostly share
        # their stage and executor, so those lookups are cached across the loop.
        running, stream, stages, executors = self._running, self.stream, self.stages, self.executors
        touched: list[StageRecord] = []
        stage_key: tuple[int, int] | None = None
        stage: StageRecord | None = None
        executor_id_seen: str | None = None
        executor: ExecutorRecord | None = None
        host = ""
        for launched in event.tasks:
            task_id, stage_id, stage_attempt, index, attempt, executor_id = launched[:6]
            partition, local, spec = launched[6:]
            if (stage_id, stage_attempt) != stage_key:
                stage_key = (stage_id, stage_attempt)
                stage = stages.get(stage_key)
                if stage is not None:
                    touched.append(stage)
            if executor_id != executor_id_seen:
                executor_id_seen = executor_id
                executor = executors.get(executor_id)
                host = executor.host if executor is not None else ""
            record = TaskRecord(
                task_id, stage_id, stage_attempt, index, attempt, partition, executor_id, host,
                now, "PROCESS_LOCAL" if local else "ANY", spec,
            )  # fmt: skip
            running[task_id] = record
            stream.append(record)
            if executor is not None:
                executor.active += 1
            if stage is not None:
                stage.active += 1
                stage.tasks[task_id] = record
        for stage in touched:
            if stage.first_launch is None:
                stage.first_launch = now
            if len(stage.tasks) > self.limits.tasks:
                self._trim_tasks(stage)

    def _task_end(self, event: TaskEnd, now: float) -> None:
        stage_id, stage_attempt = event.stage_id, event.attempt
        ok = event.ok
        stage = self.stages.get((stage_id, stage_attempt))
        task_id = event.task_id
        record = self._running.pop(task_id, None) if task_id is not None else None
        if record is None and task_id is not None:  # a replay, or launched before we listened
            launch = event.launch_time
            if launch is None and event.launched_ago is not None:
                launch = now - event.launched_ago
            record = TaskRecord(
                task_id, stage_id, stage_attempt, event.task_index, event.task_attempt,
                event.partition, event.executor_id, event.host,
                launch if launch is not None else now, event.locality, event.speculative,
            )  # fmt: skip
            if not record.host and record.executor_id in self.executors:
                record.host = self.executors[record.executor_id].host
            self.stream.append(record)
            if stage is not None:
                stage.active += 1  # undone below, like a launched task's
                self._keep_task(stage, record)
            executor = self.executors.get(record.executor_id)
            if executor is not None:
                executor.active += 1
        if record is None:  # no task id at all (an old log): counts only
            if ok:
                self.tasks_completed += 1
            else:
                self.tasks_failed += 1
            if stage is not None:
                if ok:
                    stage.complete += 1
                else:
                    stage.failed += 1
            return
        # The hot path (once per task, under the scheduler's lock): straight-line code.
        record.finish = now
        run = event.run_seconds
        if ok:
            self.tasks_completed += 1
            record.status = "SUCCESS"
            if run is not None:
                record.run_ms = int(run * 1000)
        else:
            self.tasks_failed += 1
            record.status = "FAILED"
            if run:
                record.run_ms = int(run * 1000)
            record.error = event.error or ""
            record.error_type = event.error_type or None
        duration = record.run_ms
        if duration is None:
            duration = max(0, int((now - record.launch) * 1000))
        gc_ms = read = written = spilled = None
        metrics = event.metrics
        if metrics:
            gc = metrics.get("gcSeconds")
            if gc is not None:
                record.gc_ms = gc_ms = int(gc * 1000)
            read = metrics.get("shuffleBytesRead")
            if read is not None:
                record.shuffle_read = read = int(read)
            written = metrics.get("shuffleBytesWritten")
            if written is not None:
                record.shuffle_write = written = int(written)
            spilled = metrics.get("diskBytesSpilled")
            if spilled is not None:
                record.spilled = spilled = int(spilled)
        executor = self.executors.get(record.executor_id)
        if executor is not None:
            if executor.active > 0:
                executor.active -= 1
            executor.run_ms += duration
            if ok:
                executor.completed += 1
            else:
                executor.failed += 1
            if gc_ms:
                executor.gc_ms += gc_ms
            if read:
                executor.shuffle_read += read
            if written:
                executor.shuffle_write += written
        if stage is None:
            return
        if stage.active > 0:
            stage.active -= 1
        if ok:
            stage.complete += 1
        else:
            stage.failed += 1
        if len(stage.tasks) > self.limits.tasks:
            self._trim_tasks(stage)
        stage.run_ms += duration
        if gc_ms:
            stage.gc_ms += gc_ms
        if read is not None:
            stage.shuffle_read += read
            stage.measured.add("shuffle_read")
        if written is not None:
            stage.shuffle_write += written
            stage.measured.add("shuffle_write")
        if spilled is not None:
            stage.spilled += spilled
            stage.measured.add("spilled")

    def _keep_task(self, stage: StageRecord, record: TaskRecord) -> None:
        stage.tasks[record.task_id] = record
        self._trim_tasks(stage)

    def _trim_tasks(self, stage: StageRecord) -> None:
        """Drop the oldest finished task records beyond spark.ui.retainedTasks."""
        excess = len(stage.tasks) - self.limits.tasks
        if excess <= 0:
            return
        victims = [t for t, old in stage.tasks.items() if old.finish is not None][:excess]
        for task_id in victims:
            del stage.tasks[task_id]
        stage.dropped_tasks += len(victims)

    # -- jobs and stages -------------------------------------------------------------------

    def _job_start(self, event: JobStart, now: float) -> None:
        job_id = event.job_id
        stage_ids = list(event.stage_ids)
        self.jobs[job_id] = JobRecord(
            job_id, stage_ids, event.description, event.group, "RUNNING", now
        )
        for info in event.stages:
            stage_id = info["stage_id"]
            self._stage_info[stage_id] = info
            for attempt in self._attempts.get(stage_id, ()):
                self._describe(self.stages[(stage_id, attempt)], info)
        for stage_id in stage_ids:
            if stage_id not in self._attempts:
                stage = StageRecord(stage_id, 0, job_id)
                self._describe(stage, self._stage_info.get(stage_id, {}))
                self._add_stage(stage)
        self._trim()

    def _add_stage(self, stage: StageRecord) -> None:
        self.stages[(stage.stage_id, stage.attempt)] = stage
        self._attempts.setdefault(stage.stage_id, set()).add(stage.attempt)

    def _describe(self, stage: StageRecord, info: Mapping[str, Any]) -> None:
        stage.name = info.get("name") or stage.name
        stage.num_tasks = stage.num_tasks or int(info.get("num_tasks", 0))
        stage.parent_ids = list(info.get("parent_ids", stage.parent_ids))
        stage.rdds = list(info.get("rdds", stage.rdds))
        stage.is_map = bool(info.get("is_map", stage.is_map))

    def _job_end(self, event: JobEnd, now: float) -> None:
        job = self.jobs.get(event.job_id)
        if job is None:
            return
        job.status = event.status
        job.completed = now
        job.error = event.error
        for stage_id in job.stage_ids:
            stage = self.stages.get((stage_id, 0))
            if stage is not None and stage.status == "PENDING":
                stage.status = "SKIPPED"

    def _stage_submitted(self, event: StageSubmitted, now: float) -> None:
        key = (event.stage_id, event.attempt)
        stage = self.stages.get(key)
        if stage is None:
            stage = StageRecord(key[0], key[1], event.job_id)
            self._add_stage(stage)
            self._describe(stage, self._stage_info.get(key[0], {}))
        stage.status = "ACTIVE"
        stage.submitted = now
        stage.num_tasks = event.num_tasks
        if event.job_id >= 0:
            stage.job_id = event.job_id
        if event.name:
            stage.name = event.name
        self._trim()

    def _stage_completed(self, event: StageCompleted, now: float) -> None:
        stage = self.stages.get((event.stage_id, event.attempt))
        if stage is None:
            return
        done = stage.complete >= stage.num_tasks and not event.failure
        stage.status = "COMPLETE" if done else "FAILED"
        stage.completed = now
        stage.failure = event.failure or (None if done else "not all tasks succeeded")
        for task in stage.tasks.values():  # a killed stage's tasks never report
            if task.finish is None:
                task.status, task.finish = "KILLED", now
                stage.killed += 1
                self._running.pop(task.task_id, None)
                executor = self.executors.get(task.executor_id)
                if executor is not None:
                    executor.active = max(0, executor.active - 1)
        stage.active = 0

    def _trim(self) -> None:
        while len(self.jobs) > self.limits.jobs:
            victim = next((j for j in self.jobs.values() if j.completed is not None), None)
            if victim is None:
                break
            del self.jobs[victim.job_id]
        while len(self.stages) > self.limits.stages:
            # The oldest finished attempt goes; a pending one only when no finished one is left.
            finished = (k for k, s in self.stages.items() if s.status not in ("ACTIVE", "PENDING"))
            pending = (k for k, s in self.stages.items() if s.status == "PENDING")
            key = next(finished, None)
            if key is None:
                key = next(pending, None)
            if key is None:
                break
            del self.stages[key]
            attempts = self._attempts[key[0]]
            attempts.discard(key[1])
            if not attempts:
                del self._attempts[key[0]]
        while len(self._stage_info) > self.limits.stages:
            del self._stage_info[next(iter(self._stage_info))]

    # -- executors, storage, environment ---------------------------------------------------

    def _executor_added(self, event: ExecutorAdded, now: float) -> None:
        executor_id = event.executor_id
        self.executors[executor_id] = ExecutorRecord(
            executor_id, event.host, event.cores, now, log_urls=dict(event.log_urls)
        )
        dead = [e for e in self.executors.values() if e.removed is not None]
        for record in dead[: max(0, len(dead) - self.limits.dead_executors)]:
            del self.executors[record.executor_id]

    def _executor_removed(self, event: ExecutorRemoved, now: float) -> None:
        record = self.executors.get(event.executor_id)
        if record is None:
            return
        record.removed = now
        record.remove_reason = event.reason
        record.active = 0
        lost = [t for t in self._running.values() if t.executor_id == record.executor_id]
        for task in lost:  # the scheduler runs them again elsewhere, as new attempts
            del self._running[task.task_id]
            task.status, task.finish = "FAILED", now
            task.error = (
                f"ExecutorLostFailure (executor {record.executor_id} exited): "
                f"{record.remove_reason}"
            )
            task.error_type = "ExecutorLostFailure"
            stage = self.stages.get((task.stage_id, task.stage_attempt))
            if stage is not None:
                stage.active = max(0, stage.active - 1)
                stage.failed += 1

    def set_app(self, app_id: str, name: str | None = None) -> None:
        """The application id a Master assigned (and, from a log, the name)."""
        with self.lock:
            self.app_id = app_id
            if name is not None:
                self.app_name = name
            self.version += 1

    def app_ended(self, end_time: float | None = None) -> None:
        """Mark the application finished (its pages stop refreshing)."""
        with self.lock:
            self.end_time = end_time or time.time()
            self.version += 1


def redactor(conf: Mapping[str, str]) -> Callable[[str, str], str]:
    """Spark's redaction: a value whose key or value matches spark.redaction.regex is hidden."""
    try:
        pattern = re.compile(Conf(conf).get(settings.REDACTION_REGEX) or DEFAULT_REDACTION)
    except re.error:
        pattern = re.compile(DEFAULT_REDACTION)

    def redact(key: str, value: str) -> str:
        return REDACTED if pattern.search(key) or pattern.search(value) else value

    return redact


def environment_of(pairs: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """The Environment page's sections for a driver's settings, secrets redacted."""
    import os
    import platform
    import sys

    redact = redactor(dict(pairs))
    runtime = [
        ("Python Version", platform.python_version()),
        ("Python Implementation", platform.python_implementation()),
        ("Python Executable", sys.executable),
        ("Platform", platform.platform()),
    ]
    system = [
        ("user.dir", os.getcwd()),
        ("os.name", platform.system()),
        ("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "")),
    ]
    return {
        "Runtime Information": runtime,
        "Spark Properties": sorted((k, redact(k, v)) for k, v in pairs),
        "System Properties": [(k, redact(k, v)) for k, v in system],
        "Classpath Entries": [(p, "Python path") for p in sys.path if p],
    }
