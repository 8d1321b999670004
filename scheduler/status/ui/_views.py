"""The store's records as Spark's REST API objects (`/api/v1/...`), for the API and the pages.

Field names follow Spark's `status/api/v1` classes (JobData, StageData,
TaskData, ExecutorSummary, RDDStorageInfo, ApplicationEnvironmentInfo), so
tools that read Spark's API read ours. Keys that start with `_` are extras
the HTML pages use (epoch times, durations, picture data); `public` strips
them from API answers. A metric sparkctl does not measure is 0 in the API,
as Spark reports an absent metric, and blank on the pages. Every function
takes the store's lock itself and returns fresh plain data.
"""

from __future__ import annotations

import time
from typing import Any

from scheduler._version import SPARK_VERSION
from scheduler.status.ui._store import AppStatusStore, ExecutorRecord, StageRecord, TaskRecord

__all__ = [
    "api_time",
    "application_info",
    "driver",
    "environment",
    "executors",
    "job",
    "jobs",
    "public",
    "quantiles",
    "stage",
    "stages",
    "storage",
    "task_stream",
]

Json = dict[str, Any]

#: Spark's quantiles of a stage's task metrics (min, 25th, median, 75th, max).
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def api_time(seconds: float | None) -> str | None:
    """Spark's REST API date format, e.g. 2026-11-22T22:49:38.901GMT."""
    if seconds is None:
        return None
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}GMT"


def public(value: Any) -> Any:
    """`value` without the `_`-prefixed keys the pages use."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


def _now(store: AppStatusStore, now: float | None) -> float:
    if now is not None:
        return now
    return store.end_time if store.end_time is not None else time.time()


def application_info(store: AppStatusStore, now: float | None = None) -> Json:
    """ApplicationInfo with its one attempt."""
    end = _now(store, now)
    with store.lock:
        completed = store.end_time is not None
        attempt = {
            "startTime": api_time(store.start_time),
            "endTime": api_time(store.end_time) if completed else api_time(None),
            "lastUpdated": api_time(end),
            "duration": int((end - store.start_time) * 1000),
            "sparkUser": store.user,
            "completed": completed,
            "appSparkVersion": SPARK_VERSION,
            "startTimeEpoch": int(store.start_time * 1000),
            "endTimeEpoch": int(store.end_time * 1000) if store.end_time is not None else -1,
            "lastUpdatedEpoch": int(end * 1000),
        }
        return {"id": store.app_id, "name": store.app_name, "attempts": [attempt]}


# -- jobs ----------------------------------------------------------------------------------


def jobs(store: AppStatusStore, now: float | None = None) -> list[Json]:
    """JobData of every retained job, newest first."""
    end = _now(store, now)
    with store.lock:
        return [_job(store, j.job_id, end) for j in reversed(list(store.jobs.values()))]


def job(store: AppStatusStore, job_id: int, now: float | None = None) -> Json | None:
    """JobData of one job (with `_stages`, its stage attempts), or None."""
    end = _now(store, now)
    with store.lock:
        if job_id not in store.jobs:
            return None
        data = _job(store, job_id, end)
        data["_stages"] = [
            _stage(s, end) for s in store.stages.values() if s.stage_id in data["stageIds"]
        ]
        return data


def _job(store: AppStatusStore, job_id: int, end: float) -> Json:
    record = store.jobs[job_id]
    attempts = [s for s in store.stages.values() if s.stage_id in record.stage_ids]
    latest: dict[int, StageRecord] = {}
    for stage in attempts:
        if stage.stage_id not in latest or stage.attempt > latest[stage.stage_id].attempt:
            latest[stage.stage_id] = stage
    names = [s for s in latest.values() if not s.is_map] or list(latest.values())
    name = max(names, key=lambda s: s.stage_id).name if names else ""
    skipped = [s for s in latest.values() if s.status == "SKIPPED"]
    finish = record.completed if record.completed is not None else end
    return {
        "jobId": record.job_id,
        "name": name,
        "description": record.description,
        "submissionTime": api_time(record.submitted),
        "completionTime": api_time(record.completed),
        "stageIds": list(record.stage_ids),
        "jobGroup": record.group,
        "jobTags": [],
        "status": record.status,
        "numTasks": sum(s.num_tasks for s in latest.values()),
        "numActiveTasks": sum(s.active for s in attempts),
        "numCompletedTasks": sum(s.complete for s in attempts),
        "numSkippedTasks": sum(s.num_tasks for s in skipped),
        "numFailedTasks": sum(s.failed for s in attempts),
        "numKilledTasks": sum(s.killed for s in attempts),
        "numCompletedIndices": sum(min(s.complete, s.num_tasks) for s in latest.values()),
        "numActiveStages": sum(1 for s in latest.values() if s.status == "ACTIVE"),
        "numCompletedStages": sum(1 for s in latest.values() if s.status == "COMPLETE"),
        "numSkippedStages": len(skipped),
        "numFailedStages": sum(1 for s in attempts if s.status == "FAILED"),
        "killedTasksSummary": {},
        "_submitted": record.submitted,
        "_completed": record.completed,
        "_duration_ms": int((finish - record.submitted) * 1000),
        "_error": record.error,
    }


# -- stages --------------------------------------------------------------------------------


def stages(store: AppStatusStore, now: float | None = None) -> list[Json]:
    """StageData of every retained stage attempt, newest first (no tasks)."""
    end = _now(store, now)
    with store.lock:
        ordered = sorted(store.stages.values(), key=lambda s: (s.stage_id, s.attempt))
        return [_stage(s, end) for s in reversed(ordered)]


def stage(
    store: AppStatusStore,
    stage_id: int,
    attempt: int | None = None,
    now: float | None = None,
    tasks_window: tuple[int, int] | None = None,
) -> Json | None:
    """StageData of one attempt (the latest when `attempt` is None) with tasks and summaries.

    `tasks_window` (offset, count) limits `tasks` to one page of them (in task id
    order); `_task_count` says how many there are. Summaries cover them all.
    """
    end = _now(store, now)
    with store.lock:
        found = [s for s in store.stages.values() if s.stage_id == stage_id]
        if attempt is not None:
            found = [s for s in found if s.attempt == attempt]
        if not found:
            return None
        record = max(found, key=lambda s: s.attempt)
        data = _stage(record, end)
        tasks = sorted(record.tasks.values(), key=lambda t: t.task_id)
        shown = tasks
        if tasks_window is not None:
            shown = tasks[tasks_window[0] : tasks_window[0] + tasks_window[1]]
        data["tasks"] = {str(t.task_id): _task(t, store, end) for t in shown}
        data["_task_count"] = len(tasks)
        data["executorSummary"] = _executor_summary(tasks)
        data["_quantiles"] = quantiles(tasks)
        data["_dropped_tasks"] = record.dropped_tasks
        data["_attempts"] = sorted(
            s.attempt for s in store.stages.values() if s.stage_id == stage_id
        )
        data["_job"] = store.jobs[record.job_id].status if record.job_id in store.jobs else None
        return data


def _stage(record: StageRecord, end: float) -> Json:
    start = record.submitted
    finish = record.completed if record.completed is not None else end
    return {
        "status": record.status,
        "stageId": record.stage_id,
        "attemptId": record.attempt,
        "numTasks": record.num_tasks,
        "numActiveTasks": record.active,
        "numCompleteTasks": record.complete,
        "numFailedTasks": record.failed,
        "numKilledTasks": record.killed,
        "numCompletedIndices": min(record.complete, record.num_tasks),
        "submissionTime": api_time(record.submitted),
        "firstTaskLaunchedTime": api_time(record.first_launch),
        "completionTime": api_time(record.completed),
        "failureReason": record.failure,
        "executorRunTime": record.run_ms,
        "jvmGcTime": record.gc_ms,
        "inputBytes": 0,
        "inputRecords": 0,
        "outputBytes": 0,
        "outputRecords": 0,
        "shuffleReadBytes": record.shuffle_read,
        "shuffleReadRecords": 0,
        "shuffleWriteBytes": record.shuffle_write,
        "shuffleWriteRecords": 0,
        "memoryBytesSpilled": 0,
        "diskBytesSpilled": record.spilled,
        "name": record.name,
        "details": "",
        "schedulingPool": "default",
        "rddIds": [r["id"] for r in record.rdds],
        "accumulatorUpdates": [],
        "killedTasksSummary": {},
        "_job_id": record.job_id,
        "_parent_ids": list(record.parent_ids),
        "_rdds": [dict(r) for r in record.rdds],
        "_measured": sorted(record.measured),
        "_duration_ms": int((finish - start) * 1000) if start is not None else None,
        "_submitted": start,
        "_completed": record.completed,
    }


def _task(task: TaskRecord, store: AppStatusStore, end: float) -> Json:
    executor = store.executors.get(task.executor_id)
    duration = task.duration_ms
    if duration is None and task.finish is None:
        duration = int((end - task.launch) * 1000)
    return {
        "taskId": task.task_id,
        "index": task.index,
        "attempt": task.attempt,
        "partitionId": task.partition,
        "launchTime": api_time(task.launch),
        "duration": duration,
        "executorId": task.executor_id,
        "host": task.host,
        "status": task.status,
        "taskLocality": task.locality,
        "speculative": task.speculative,
        "accumulatorUpdates": [],
        "errorMessage": task.error,
        "taskMetrics": {
            "executorRunTime": task.run_ms or 0,
            "jvmGcTime": task.gc_ms or 0,
            "diskBytesSpilled": task.spilled or 0,
            "shuffleReadMetrics": {"remoteBytesRead": task.shuffle_read or 0},
            "shuffleWriteMetrics": {"bytesWritten": task.shuffle_write or 0},
        },
        "executorLogs": dict(executor.log_urls) if executor is not None else {},
        "schedulerDelay": 0,
        "gettingResultTime": 0,
        "_launch": task.launch,
        "_ran_from": _ran_from(task),
        "_finish": task.finish,
        "_gc_ms": task.gc_ms,
        "_shuffle_read": task.shuffle_read,
        "_shuffle_write": task.shuffle_write,
        "_error_type": task.error_type,
        "_error_line": _last_line(task.error),
    }


def _ran_from(task: TaskRecord) -> float:
    """When the task started running: its launch includes time queued on the executor."""
    if task.finish is not None and task.run_ms is not None:
        return max(task.launch, task.finish - task.run_ms / 1000)
    return task.launch


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def _executor_summary(tasks: list[TaskRecord]) -> Json:
    out: dict[str, Json] = {}
    for task in tasks:
        entry = out.setdefault(
            task.executor_id,
            {"taskTime": 0, "failedTasks": 0, "succeededTasks": 0, "killedTasks": 0,
             "shuffleRead": 0, "shuffleWrite": 0, "diskBytesSpilled": 0},
        )  # fmt: skip
        entry["taskTime"] += task.duration_ms or 0
        if task.status == "SUCCESS":
            entry["succeededTasks"] += 1
        elif task.status == "FAILED":
            entry["failedTasks"] += 1
        elif task.status == "KILLED":
            entry["killedTasks"] += 1
        entry["shuffleRead"] += task.shuffle_read or 0
        entry["shuffleWrite"] += task.shuffle_write or 0
        entry["diskBytesSpilled"] += task.spilled or 0
    return out


def _quantile(values: list[int], q: float) -> int:
    """The value at index q * n of sorted `values`, as Spark's task summary picks it."""
    return values[min(int(q * len(values)), len(values) - 1)]


def quantiles(tasks: list[TaskRecord]) -> dict[str, list[int] | None]:
    """min/25th/median/75th/max of the finished tasks' duration, GC and shuffle sizes.

    A metric no task measured is None (the page leaves its row out).
    """
    finished = [t for t in tasks if t.finish is not None and t.status == "SUCCESS"]
    out: dict[str, list[int] | None] = {}
    for key, values in (
        ("duration", [t.duration_ms for t in finished]),
        ("gc", [t.gc_ms for t in finished]),
        ("shuffle_read", [t.shuffle_read for t in finished]),
        ("shuffle_write", [t.shuffle_write for t in finished]),
        ("spilled", [t.spilled for t in finished]),
    ):
        known = sorted(v for v in values if v is not None)
        out[key] = [_quantile(known, q) for q in QUANTILES] if known else None
    return out


# -- executors, storage, environment ------------------------------------------------------


def executors(store: AppStatusStore, now: float | None = None) -> list[Json]:
    """ExecutorSummary of every retained executor, active ones first."""
    end = _now(store, now)
    blocks = store.storage.by_executor()  # executor -> (blocks, memory bytes, disk bytes)
    with store.lock:
        records = sorted(store.executors.values(), key=lambda e: (e.removed is not None, e.added))
        return [_executor(e, blocks.get(e.executor_id, (0, 0, 0)), end) for e in records]


def driver(store: AppStatusStore) -> Json:
    """The driver as Spark's REST API lists it among the executors: id "driver".

    Spark shows the driver's block manager there; it runs no tasks (totalCores 0),
    was added when the application started, and stays active (nothing removes it).
    """
    blocks = store.storage.by_executor().get("driver", (0, 0, 0))
    with store.lock:
        properties = dict(store.environment.get("Spark Properties", []))
        started = store.start_time
    host, port = properties.get("spark.driver.host", ""), properties.get("spark.driver.port", "")
    record = ExecutorRecord("driver", f"{host}:{port}" if host and port else host, 0, started)
    return _executor(record, blocks, started)


def _executor(record: ExecutorRecord, blocks: tuple[int, int, int], end: float) -> Json:
    return {
        "id": record.executor_id,
        "hostPort": record.host,
        "isActive": record.removed is None,
        "rddBlocks": blocks[0],
        "memoryUsed": blocks[1],
        "diskUsed": blocks[2],
        "totalCores": record.cores,
        "maxTasks": record.cores,
        "activeTasks": record.active,
        "failedTasks": record.failed,
        "completedTasks": record.completed,
        "totalTasks": record.active + record.failed + record.completed,
        "totalDuration": record.run_ms,
        "totalGCTime": record.gc_ms,
        "totalInputBytes": 0,
        "totalShuffleRead": record.shuffle_read,
        "totalShuffleWrite": record.shuffle_write,
        "isBlacklisted": False,
        "isExcluded": False,
        "maxMemory": 0,
        "addTime": api_time(record.added),
        "removeTime": api_time(record.removed),
        "removeReason": record.remove_reason,
        "executorLogs": dict(record.log_urls),
        "_added": record.added,
        "_removed": record.removed,
    }


def storage(store: AppStatusStore) -> list[Json]:
    """RDDStorageInfo of the persisted RDDs that have cached partitions.

    memoryUsed: estimated bytes of the objects live Python workers hold; diskUsed:
    the serialized copies in the executors' local dirs (see scheduler.status.storage).
    """
    return [
        {
            "id": row.id,
            "name": row.name,
            "numPartitions": row.num_partitions,
            "numCachedPartitions": row.cached_partitions,
            "storageLevel": row.storage_level,
            "memoryUsed": row.memory_bytes,
            "diskUsed": row.disk_bytes,
            "_sized": row.sized,
            "_executors": list(row.executors),
            "_workers": row.workers,
            "_callsite": row.callsite,
        }
        for row in store.storage.rdds()
    ]


def environment(store: AppStatusStore) -> Json:
    """ApplicationEnvironmentInfo (Python's runtime in place of the JVM's)."""
    with store.lock:
        sections = {k: list(v) for k, v in store.environment.items()}
    runtime = dict(sections.get("Runtime Information", []))
    return {
        "runtime": {
            "javaVersion": "",
            "javaHome": "",
            "scalaVersion": "",
            "pythonVersion": runtime.get("Python Version", ""),
        },
        "sparkProperties": [list(p) for p in sections.get("Spark Properties", [])],
        "hadoopProperties": [],
        "systemProperties": [list(p) for p in sections.get("System Properties", [])],
        "metricsProperties": [],
        "classpathEntries": [list(p) for p in sections.get("Classpath Entries", [])],
        "resourceProfiles": [],
        "_sections": sections,
    }


def task_stream(store: AppStatusStore, now: float | None = None) -> Json:
    """The recent tasks for the task stream picture: executors' slots and task spans."""
    end = _now(store, now)
    with store.lock:
        cores = {e.executor_id: max(1, e.cores) for e in store.executors.values()}
        spans = [
            (t.executor_id, t.stage_id, t.task_id, _ran_from(t), t.finish, t.status)
            for t in store.stream
        ]
    return {"cores": cores, "spans": spans, "now": end}
