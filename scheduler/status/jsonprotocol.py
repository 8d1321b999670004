"""Spark's JsonProtocol for the events sparkctl has: scheduler events to JSON and back.

`EventEncoder` turns the task scheduler's events (`scheduler.core.events`)
into the JSON objects Spark's event log holds (same "Event" names and field
names), and keeps the little state that takes: executor hosts, stage names
and kinds (a job's JobStart comes before its stages' StageSubmitted).
`replay_events` goes the other way, turning logged JSON (ours or Spark's)
into the same typed events, which `AppStatusStore` takes. Only measured values are
written: a metric sparkctl does not measure is left out, never zeroed.
No I/O here.
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from scheduler._version import SPARK_VERSION
from scheduler.core.events import (
    EnvironmentUpdate,
    ExecutorAdded,
    ExecutorRemoved,
    FetchFailure,
    JobEnd,
    JobStart,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
    UnpersistRDD,
)

__all__ = ["MALFORMED", "MAX_EPOCH_MS", "SPARK_VERSION", "AppInfo", "EventEncoder", "replay_events"]

log = logging.getLogger(__name__)

#: What SparkListenerLogStart records (the API level sparkctl follows).

#: Spark's default spark.redaction.regex: values of matching keys are not logged.
_REDACT = re.compile(r"(?i)secret|password|token|access[.]key")

Json = dict[str, Any]

_RDD_BLOCK = re.compile(r"^rdd_(\d+)_(\d+)$")
#: Launched tasks whose locality the encoder remembers until their TaskEnd.
_MAX_LAUNCHED = 100_000


def _stage_info(
    stage_id: int,
    attempt: int,
    num_tasks: int,
    known: Mapping[str, Any] | None,
    submitted: int | None = None,
    completed: int | None = None,
    failure: str | None = None,
) -> Json:
    known = known or {}
    info: Json = {
        "Stage ID": stage_id,
        "Stage Attempt ID": attempt,
        "Stage Name": known.get("name", f"stage {stage_id}"),
        "Number of Tasks": num_tasks,
        "RDD Info": [_rdd_info(r) for r in known.get("rdds", [])],
        "Parent IDs": list(known.get("parent_ids", [])),
        "Details": "",
    }
    if submitted is not None:
        info["Submission Time"] = submitted
    if completed is not None:
        info["Completion Time"] = completed
    if failure:
        info["Failure Reason"] = failure
    info["Accumulables"] = []
    return info


def _rdd_info(rdd: Mapping[str, Any]) -> Json:
    """Spark's RDDInfo of a stage's RDD (see `scheduler.rdd.lineage.stage_rdds`)."""
    level = rdd.get("storage") or ""
    return {
        "RDD ID": rdd["id"],
        "Name": rdd.get("name", ""),
        "Callsite": rdd.get("callsite", ""),
        "Parent IDs": list(rdd.get("parents", [])),
        "Shuffle Parent IDs": list(rdd.get("shuffle_parents", [])),
        "Storage Level": {"Description": level, "Use Memory": bool(level), "Replication": 1},
        "Number of Partitions": rdd.get("partitions", 0),
        "Number of Cached Partitions": 0,
        "Memory Size": 0,
        "Disk Size": 0,
    }


def _rdd_from_info(info: Mapping[str, Any]) -> Json:
    """`_rdd_info` backwards (Spark's logs have no shuffle parents: those stay unknown)."""
    level = info.get("Storage Level") or {}
    description = level.get("Description", "") if isinstance(level, dict) else ""
    return {
        "id": int(info["RDD ID"]),
        "name": str(info.get("Name", "")),
        "callsite": str(info.get("Callsite", "")),
        "parents": [int(p) for p in info.get("Parent IDs", [])],
        "shuffle_parents": [int(p) for p in info.get("Shuffle Parent IDs", [])],
        "partitions": int(info.get("Number of Partitions", 0)),
        "storage": description if level.get("Use Memory") or level.get("Use Disk") else "",
    }


class _OpenStage(NamedTuple):
    """A stage attempt submitted and not yet logged as completed."""

    submitted_ms: int
    num_tasks: int


class EventEncoder:
    """Scheduler events -> Spark JsonProtocol objects, one for one and in the same order.

    The task scheduler posts events in Spark's causal order (a stage's
    StageCompleted before the StageSubmitted it unblocks and before its
    JobEnd), so each is written as it comes.
    """

    def __init__(self) -> None:
        self._hosts: dict[str, str] = {}
        #: What job_start told about each stage: name, parent ids, whether it is a map stage.
        self._stages: dict[int, Mapping[str, Any]] = {}
        self._open: dict[tuple[int, int], _OpenStage] = {}
        #: Locality of launched tasks until their TaskEnd (killed ones never end: bounded).
        self._locality: dict[int, str] = {}

    def header(
        self, app_id: str, app_name: str, start_ms: int, user: str, conf: Iterable[tuple[str, str]]
    ) -> list[Json]:
        """LogStart, EnvironmentUpdate and ApplicationStart: the first lines of a log."""
        props = {k: ("*********(redacted)" if _REDACT.search(k) else v) for k, v in conf}
        return [
            {"Event": "SparkListenerLogStart", "Spark Version": SPARK_VERSION},
            {
                "Event": "SparkListenerEnvironmentUpdate",
                "JVM Information": {"Python Version": platform.python_version()},
                "Spark Properties": dict(sorted(props.items())),
                "System Properties": {},
                "Classpath Entries": {},
            },
            {
                "Event": "SparkListenerApplicationStart",
                "App Name": app_name,
                "App ID": app_id,
                "Timestamp": start_ms,
                "User": user,
            },
        ]

    def application_end(self, end_ms: int) -> list[Json]:
        """ApplicationEnd: the last line of a log."""
        return [{"Event": "SparkListenerApplicationEnd", "Timestamp": end_ms}]

    def encode(self, event: SchedulerEvent, t: float) -> list[Json]:
        """The JSON events for one scheduler event at wall time `t` (seconds)."""
        ms = int(t * 1000)
        match event:
            case TaskEnd():
                return [self._task_end(event, ms, t)]
            case TasksLaunched(tasks=tasks):
                if len(self._locality) > _MAX_LAUNCHED:
                    self._locality.clear()
                for launched in tasks:
                    self._locality[launched.task_id] = "PROCESS_LOCAL" if launched.local else "ANY"
                return []
            case StageSubmitted(stage_id=stage_id, attempt=attempt, num_tasks=num_tasks):
                self._open[(stage_id, attempt)] = _OpenStage(ms, num_tasks)
                info = _stage_info(stage_id, attempt, num_tasks, self._stages.get(stage_id), ms)
                submitted = {"Event": "SparkListenerStageSubmitted", "Stage Info": info}
                return [{**submitted, "Properties": {}}]
            case StageCompleted(stage_id=stage_id, attempt=attempt, failure=failure):
                key = (stage_id, attempt)
                stage = self._open.pop(key, None)
                return [self._stage_completed(key, stage, ms, failure)]
            case JobStart():
                return [self._job_start(event, ms)]
            case JobEnd(job_id=job_id, status=status, error=error):
                result: Json = {"Result": "JobSucceeded"}
                if status != "SUCCEEDED":
                    message = error or f"Job {job_id} {status}"
                    result = {"Result": "JobFailed", "Exception": {"Message": message}}
                end = {
                    "Event": "SparkListenerJobEnd",
                    "Job ID": job_id,
                    "Completion Time": ms,
                    "Job Result": result,
                }
                return [end]
            case ExecutorAdded(executor_id=executor_id, host=host):
                self._hosts[executor_id] = host
                info = {"Host": host, "Total Cores": event.cores, "Log Urls": dict(event.log_urls)}
                return [
                    {
                        "Event": "SparkListenerExecutorAdded",
                        "Timestamp": ms,
                        "Executor ID": executor_id,
                        "Executor Info": info,
                    }
                ]
            case ExecutorRemoved(executor_id=executor_id, reason=reason):
                return [
                    {
                        "Event": "SparkListenerExecutorRemoved",
                        "Timestamp": ms,
                        "Executor ID": executor_id,
                        "Removed Reason": reason,
                    }
                ]
        return []  # an event Spark's log has no counterpart for

    def _stage_completed(
        self, key: tuple[int, int], stage: _OpenStage | None, ms: int, failure: str | None
    ) -> Json:
        info = _stage_info(
            key[0],
            key[1],
            stage.num_tasks if stage is not None else 0,
            self._stages.get(key[0]),
            stage.submitted_ms if stage is not None else None,
            ms,
            failure,
        )
        return {"Event": "SparkListenerStageCompleted", "Stage Info": info}

    def _job_start(self, event: JobStart, ms: int) -> Json:
        for stage in event.stages:
            self._stages[stage["stage_id"]] = stage
        infos = []
        for stage_id in event.stage_ids:
            known = self._stages.get(stage_id) or {}
            infos.append(_stage_info(stage_id, 0, known.get("num_tasks", 0), known))
        props = {
            key: value
            for key, value in (
                ("spark.jobGroup.id", event.group),
                ("spark.job.description", event.description),
            )
            if value is not None
        }
        return {
            "Event": "SparkListenerJobStart",
            "Job ID": event.job_id,
            "Submission Time": ms,
            "Stage Infos": infos,
            "Stage IDs": list(event.stage_ids),
            "Properties": props,
        }

    def _task_end(self, event: TaskEnd, ms: int, t: float) -> Json:
        stage_id = event.stage_id
        executor_id = event.executor_id
        run_seconds = event.run_seconds
        task_id = event.task_id
        info: Json = {"Task ID": -1, "Index": -1, "Attempt": 0, "Partition ID": -1}
        if task_id is not None:
            launch = ms
            if event.launched_ago is not None:
                launch = int((t - event.launched_ago) * 1000)
            elif event.launch_time is not None:
                launch = int(event.launch_time * 1000)
            info = {
                "Task ID": task_id,
                "Index": event.task_index,
                "Attempt": event.task_attempt,
                "Partition ID": event.partition,
                "Launch Time": launch,
            }
        info.update(
            {
                "Executor ID": executor_id,
                "Host": self._hosts.get(executor_id, ""),
                "Locality": self._locality.pop(task_id, "ANY") if task_id is not None else "ANY",
                "Speculative": event.speculative,
                "Getting Result Time": 0,
                "Finish Time": ms,
                "Failed": not event.ok,
                "Killed": False,
                "Accumulables": [],
            }
        )
        fetch = event.fetch_failure
        if event.ok:
            reason: Json = {"Reason": "Success"}
        elif fetch is not None:  # Spark's FetchFailed end reason (no stack trace)
            reason = {
                "Reason": "FetchFailed",
                "Block Manager Address": {"Executor ID": fetch.executor_id},
                "Shuffle ID": fetch.shuffle_id,
                "Map ID": -1,
                "Map Index": fetch.map_index,
                "Reduce ID": event.partition,
                "Message": fetch.message,
            }
        else:
            error = event.error or ""
            reason = {
                "Reason": "ExceptionFailure",
                "Class Name": event.error_type or "",
                "Description": error.strip().splitlines()[-1] if error.strip() else "",
                "Stack Trace": [],
                "Full Stack Trace": error,
                "Accumulables": [],
            }
        metrics: Json = {}
        if run_seconds is not None:
            metrics["Executor Run Time"] = int(run_seconds * 1000)
        measured = event.metrics
        if "diskBytesSpilled" in measured:
            metrics["Disk Bytes Spilled"] = int(measured["diskBytesSpilled"])
        if "gcSeconds" in measured:
            metrics["JVM GC Time"] = int(measured["gcSeconds"] * 1000)
        if "shuffleBytesWritten" in measured:
            metrics["Shuffle Write Metrics"] = {
                "Shuffle Bytes Written": int(measured["shuffleBytesWritten"])
            }
        blocks = event.blocks
        updated: list[Json] = []
        if blocks:  # cached partitions, as Spark 2's logs listed them
            sizes = list(measured.get("storedBlockBytes") or ())
            sizes += [0] * (len(blocks) - len(sizes))
            updated = [
                {"Block ID": f"rdd_{rdd_id}_{split}", "Status": {"Disk Size": size}}
                for (rdd_id, split), size in zip(blocks, sizes, strict=False)
            ]
        worker = measured.get("pythonWorker")
        if worker is not None:  # which Python worker process holds the objects below
            info["Python Worker"] = [int(worker[0]), int(worker[1])]
            updated += [
                {
                    "Block ID": f"rdd_{rdd_id}_{split}",
                    "Status": {"Memory Size": int(size), "Disk Size": 0},
                    "Python Worker": True,
                }
                for rdd_id, split, size in measured.get("memoryBlocks") or ()
            ]
        if updated:
            metrics["Updated Blocks"] = updated
        if "shuffleBytesRead" in measured:
            metrics["Shuffle Read Metrics"] = {
                "Remote Bytes Read": int(measured["shuffleBytesRead"])
            }
        is_map = self._stages.get(stage_id, {}).get("is_map", False)
        return {
            "Event": "SparkListenerTaskEnd",
            "Stage ID": stage_id,
            "Stage Attempt ID": event.attempt,
            "Task Type": "ShuffleMapTask" if is_map else "ResultTask",
            "Task End Reason": reason,
            "Task Info": info,
            "Task Metrics": metrics,
        }


class AppInfo:
    """What the history listing shows of one application, read from its log."""

    def __init__(self) -> None:
        self.app_id: str | None = None
        self.name = ""
        self.user = ""
        self.start_ms: int | None = None
        self.end_ms: int | None = None
        self.spark_version = ""

    def update(self, event: Mapping[str, Any]) -> None:
        kind = event.get("Event")
        if kind == "SparkListenerApplicationStart":
            self.app_id = _opt_str(event.get("App ID")) or self.app_id
            self.name = str(event.get("App Name", ""))
            self.user = str(event.get("User", ""))
            self.start_ms = _epoch_ms(event["Timestamp"])
        elif kind == "SparkListenerApplicationEnd":
            self.end_ms = _epoch_ms(event["Timestamp"])
        elif kind == "SparkListenerLogStart":
            self.spark_version = str(event.get("Spark Version", ""))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


#: The last ms of 9999-12-31: the latest time a log may hold.
MAX_EPOCH_MS = 253_402_300_799_999

#: What reading a malformed logged event raises (infinity as an int: OverflowError).
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, ArithmeticError)


def replay_events(events: Iterable[Json]) -> Iterator[SchedulerEvent]:
    """The scheduler events (with their logged `time`) of logged JSON events.

    Events of kinds the store does not show are passed over; an event whose
    fields are malformed is skipped with a warning.
    """
    job_of_stage: dict[int, int] = {}
    for event in events:
        try:
            replayed = _replay_one(event, job_of_stage)
        except MALFORMED as exc:
            log.warning("skipping a malformed %s event: %r", event.get("Event"), exc)
            continue
        if replayed is not None:
            yield replayed


def _replay_one(event: Json, job_of_stage: dict[int, int]) -> SchedulerEvent | None:
    kind = event.get("Event")
    if kind == "SparkListenerTaskEnd":
        return _replay_task_end(event)
    if kind == "SparkListenerJobStart":
        job_id = int(event["Job ID"])
        stage_ids = tuple(int(s) for s in event.get("Stage IDs", []))
        for stage_id in stage_ids:
            job_of_stage[stage_id] = job_id
        props = event.get("Properties") or {}
        infos = [i for i in event.get("Stage Infos", []) if isinstance(i, dict)]
        parents = {int(p) for i in infos for p in i.get("Parent IDs", [])}
        stages = tuple(
            {
                "stage_id": int(i["Stage ID"]),
                "name": str(i.get("Stage Name", "")),
                "num_tasks": int(i.get("Number of Tasks", 0)),
                "parent_ids": [int(p) for p in i.get("Parent IDs", [])],
                "rdds": [_rdd_from_info(r) for r in i.get("RDD Info", [])],
                # Spark's log does not say: a stage another one of the job reads is a map stage.
                "is_map": int(i["Stage ID"]) in parents,
            }
            for i in infos
        )
        return JobStart(
            job_id,
            stage_ids,
            stages,
            props.get("spark.jobGroup.id"),
            props.get("spark.job.description"),
            _seconds(event.get("Submission Time")),
        )
    if kind == "SparkListenerJobEnd":
        result = event.get("Job Result") or {}
        ok = result.get("Result") == "JobSucceeded"
        error = (result.get("Exception") or {}).get("Message") if not ok else None
        return JobEnd(
            int(event["Job ID"]),
            "SUCCEEDED" if ok else "FAILED",
            error,
            _seconds(event.get("Completion Time")),
        )
    if kind == "SparkListenerStageSubmitted":
        info = event["Stage Info"]
        stage_id = int(info["Stage ID"])
        return StageSubmitted(
            stage_id,
            int(info.get("Stage Attempt ID", 0)),
            int(info["Number of Tasks"]),
            job_of_stage.get(stage_id, -1),
            str(info.get("Stage Name", "")),
            _seconds(info.get("Submission Time")),
        )
    if kind == "SparkListenerStageCompleted":
        info = event["Stage Info"]
        return StageCompleted(
            int(info["Stage ID"]),
            int(info.get("Stage Attempt ID", 0)),
            _opt_str(info.get("Failure Reason")),
            _seconds(info.get("Completion Time")),
        )
    if kind == "SparkListenerExecutorAdded":
        executor = event.get("Executor Info") or {}
        urls = executor.get("Log Urls") or {}
        return ExecutorAdded(
            str(event["Executor ID"]),
            str(executor.get("Host", "")),
            int(executor.get("Total Cores", 0)),
            {str(k): str(v) for k, v in urls.items()},
            _seconds(event.get("Timestamp")),
        )
    if kind == "SparkListenerExecutorRemoved":
        return ExecutorRemoved(
            str(event["Executor ID"]),
            str(event.get("Removed Reason", "")),
            _seconds(event.get("Timestamp")),
        )
    if kind == "SparkListenerUnpersistRDD":
        return UnpersistRDD(int(event["RDD ID"]))
    if kind == "SparkListenerEnvironmentUpdate":
        sections: dict[str, list[tuple[str, str]]] = {}
        for name, shown in (
            ("JVM Information", "Runtime Information"),
            ("Spark Properties", "Spark Properties"),
            ("System Properties", "System Properties"),
            ("Classpath Entries", "Classpath Entries"),
        ):
            value = event.get(name) or {}
            pairs = value.items() if isinstance(value, dict) else value
            sections[shown] = sorted((str(k), str(v)) for k, v in pairs)
        return EnvironmentUpdate(sections)
    return None


def _replay_task_end(event: Json) -> TaskEnd:
    info = event.get("Task Info") or {}
    reason = event.get("Task End Reason") or {}
    logged = event.get("Task Metrics") or {}
    ok = reason.get("Reason") == "Success"
    task_id = int(info.get("Task ID", -1))
    run_seconds = None
    if "Executor Run Time" in logged:
        # A duration, in the same bounds as a time (a negative one moved the start on).
        run_seconds = _epoch_ms(logged["Executor Run Time"]) / 1000.0
    metrics: dict[str, Any] = {}
    if "JVM GC Time" in logged:
        metrics["gcSeconds"] = _epoch_ms(logged["JVM GC Time"]) / 1000.0
    if "Disk Bytes Spilled" in logged:
        metrics["diskBytesSpilled"] = int(logged["Disk Bytes Spilled"])
    written = logged.get("Shuffle Write Metrics") or {}
    if "Shuffle Bytes Written" in written:
        metrics["shuffleBytesWritten"] = int(written["Shuffle Bytes Written"])
    read = logged.get("Shuffle Read Metrics") or {}
    if "Remote Bytes Read" in read or "Local Bytes Read" in read:
        metrics["shuffleBytesRead"] = int(read.get("Remote Bytes Read", 0)) + int(
            read.get("Local Bytes Read", 0)
        )
    updated = [b for b in logged.get("Updated Blocks") or [] if isinstance(b, dict)]
    blocks, sizes, in_memory = [], [], []
    for block in updated:
        match = _RDD_BLOCK.match(str(block.get("Block ID", "")))
        if match is not None:
            rdd_id, split = int(match.group(1)), int(match.group(2))
            status = block.get("Status") or {}
            if block.get("Python Worker"):
                in_memory.append((rdd_id, split, int(status.get("Memory Size", 0))))
                continue
            blocks.append((rdd_id, split))
            sizes.append(int(status.get("Disk Size", 0)))
    if blocks:
        metrics["storedBlockBytes"] = sizes
    worker = info.get("Python Worker")
    if isinstance(worker, list) and len(worker) == 2:
        metrics["pythonWorker"] = (int(worker[0]), int(worker[1]))
        if in_memory:
            metrics["memoryBlocks"] = in_memory
    error = error_type = None
    fetch = None
    if reason.get("Reason") == "FetchFailed":
        holder = reason.get("Block Manager Address") or {}
        fetch = FetchFailure(
            int(reason.get("Shuffle ID", -1)),
            int(reason.get("Map Index", reason.get("Map ID", -1))),
            str(holder.get("Executor ID", "")) if isinstance(holder, dict) else "",
            str(reason.get("Message") or ""),
        )
    if not ok:
        error = str(
            reason.get("Full Stack Trace")
            or reason.get("Description")
            or reason.get("Message")
            or reason.get("Reason")
            or ""
        )
        error_type = str(reason.get("Class Name") or reason.get("Reason") or "")
    return TaskEnd(
        stage_id=int(event["Stage ID"]),
        attempt=int(event.get("Stage Attempt ID", 0)),
        ok=ok,
        task_id=task_id if task_id >= 0 else None,
        task_index=int(info.get("Index", -1)),
        task_attempt=int(info.get("Attempt", 0)),
        partition=int(info.get("Partition ID", info.get("Index", -1))),
        executor_id=str(info.get("Executor ID", "")),
        host=str(info.get("Host", "")),
        launch_time=_seconds(info.get("Launch Time")),
        locality=str(info.get("Locality", "PROCESS_LOCAL")),
        speculative=bool(info.get("Speculative", False)),
        run_seconds=run_seconds,
        metrics=metrics,
        blocks=tuple(blocks),
        error=error,
        error_type=error_type,
        fetch_failure=fetch,
        time=_seconds(info.get("Finish Time")),
    )


def _seconds(ms: Any) -> float | None:
    if ms is None or int(ms) < 0:
        return None
    return _epoch_ms(ms) / 1000.0


def _epoch_ms(value: Any) -> int:
    """A logged time in ms since the epoch, checked: a log is input, and a date past
    9999 (or infinity) could not be shown, nor turned into a date at all.

    Raises:
        ValueError: not a whole number of ms from 1970 to 9999.
        OverflowError: infinity.
    """
    ms = int(value)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"time {ms} ms is not within 1970..9999")
    return ms
