"""The event log: what a local[2] application writes, in Spark's JsonProtocol, and its failures.

Every SparkContext here runs on local[2] (an executor process on 127.0.0.1)
and is stopped in a finally; nothing else is started.
"""

from __future__ import annotations

import errno
import gzip
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rpcenv import Conf
from scheduler import SparkConf, SparkContext
from scheduler.core.events import ExecutorAdded, ExecutorRemoved, JobEnd
from scheduler.status.eventlog import (
    EventLogSettings,
    EventLogWriter,
    log_dir_path,
    parse_log_name,
    read_log,
)


def _conf(log_dir: Path, **extra: str) -> SparkConf:
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("eventlog-test")
        .set("spark.ui.enabled", "false")
        .set("spark.eventLog.enabled", "true")
        .set("spark.eventLog.dir", f"file:{log_dir}")
    )
    for key, value in extra.items():
        conf.set(key.replace("_", "."), value)
    return conf


def _events(path: Path) -> list[dict[str, Any]]:
    opener: Any = gzip.open if path.name.endswith(".gzip") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["Event"].removeprefix("SparkListener") for e in events]


@pytest.fixture
def log_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "events"
    path.mkdir()
    yield path


def test_a_local_job_writes_sparks_events_in_order(log_dir: Path) -> None:
    conf = _conf(log_dir).set("spark.sparkctl.test.password", "hunter2")
    sc = SparkContext(conf=conf)
    try:
        app_id = sc.applicationId
        pairs = sc.parallelize(range(40), 4).map(lambda x: (x % 3, x))
        expected = [(k, sum(x for x in range(40) if x % 3 == k)) for k in range(3)]
        assert sorted(pairs.reduceByKey(lambda a, b: a + b, 2).collect()) == expected
        with pytest.raises(Exception, match="ZeroDivisionError"):
            sc.parallelize(range(2), 2).map(lambda x: x // 0).collect()
        # While the application runs, the log is <app id>.inprogress.
        assert [p.name for p in log_dir.iterdir()] == [f"{app_id}.inprogress"]
    finally:
        sc.stop()
    assert [p.name for p in log_dir.iterdir()] == [app_id]
    text = (log_dir / app_id).read_text()
    assert "hunter2" not in text  # Spark's redaction of secret-looking keys
    events = _events(log_dir / app_id)
    kinds = _kinds(events)
    assert kinds[:3] == ["LogStart", "EnvironmentUpdate", "ApplicationStart"]
    assert kinds[-1] == "ApplicationEnd"
    assert events[0]["Spark Version"] == "3.5.0"
    start = events[2]
    assert (start["App ID"], start["App Name"]) == (app_id, "eventlog-test")
    assert events[-1]["Timestamp"] >= start["Timestamp"]
    assert kinds.index("ExecutorAdded") < kinds.index("JobStart")
    assert kinds.count("JobStart") == kinds.count("JobEnd") == 2
    assert kinds.count("StageSubmitted") == kinds.count("StageCompleted") == 3

    jobs = {e["Job ID"]: e for e in events if e["Event"] == "SparkListenerJobEnd"}
    assert jobs[0]["Job Result"] == {"Result": "JobSucceeded"}
    assert jobs[1]["Job Result"]["Result"] == "JobFailed"
    assert "ZeroDivisionError" in jobs[1]["Job Result"]["Exception"]["Message"]

    tasks = [e for e in events if e["Event"] == "SparkListenerTaskEnd"]
    ok = [t for t in tasks if t["Task End Reason"]["Reason"] == "Success"]
    failed = [t for t in tasks if t["Task End Reason"]["Reason"] == "ExceptionFailure"]
    assert len(ok) == 6  # 4 map tasks, 2 result tasks
    assert 1 <= len(failed) <= 2  # the other task of the failed stage may be killed instead
    assert "ZeroDivisionError" in failed[0]["Task End Reason"]["Class Name"]
    assert all(t["Task Info"]["Failed"] for t in failed)
    assert len({t["Task Info"]["Task ID"] for t in tasks}) == len(tasks)
    by_stage: dict[int, list[dict[str, Any]]] = {}
    for task in ok:
        by_stage.setdefault(task["Stage ID"], []).append(task)
    map_stage, result_stage = sorted(by_stage)
    assert {t["Task Type"] for t in by_stage[map_stage]} == {"ShuffleMapTask"}
    assert {t["Task Type"] for t in by_stage[result_stage]} == {"ResultTask"}
    assert sorted(t["Task Info"]["Index"] for t in by_stage[map_stage]) == [0, 1, 2, 3]
    for task in ok:
        info = task["Task Info"]
        assert info["Executor ID"] == "0" and info["Host"] == "127.0.0.1"
        assert info["Launch Time"] <= info["Finish Time"]
        assert task["Task Metrics"]["Executor Run Time"] >= 0

    # Each job: JobStart, then its stages' submissions, their tasks, their completions.
    def position(kind: str, **fields: Any) -> int:
        for i, e in enumerate(events):
            info = e.get("Stage Info", e)
            if e["Event"] == f"SparkListener{kind}" and all(
                info.get(k.replace("_", " ")) == v for k, v in fields.items()
            ):
                return i
        raise AssertionError(f"no {kind} {fields}")

    job0 = position("JobStart", Job_ID=0)
    assert events[job0]["Stage IDs"] == [map_stage, result_stage]
    assert [s["Number of Tasks"] for s in events[job0]["Stage Infos"]] == [4, 2]
    assert job0 < position("StageSubmitted", Stage_ID=map_stage)
    first_task = min(i for i, e in enumerate(events) if e in by_stage[map_stage])
    assert position("StageSubmitted", Stage_ID=map_stage) < first_task
    # Spark's order: a stage completes before the stage that reads its output starts.
    assert position("StageCompleted", Stage_ID=map_stage) < position(
        "StageSubmitted", Stage_ID=result_stage
    )
    last_task = max(i for i, e in enumerate(events) if e in by_stage[result_stage])
    assert last_task < position("StageCompleted", Stage_ID=result_stage)
    assert position("StageCompleted", Stage_ID=result_stage) < position("JobEnd", Job_ID=0)
    assert position("JobEnd", Job_ID=0) < position("JobStart", Job_ID=1)
    failed_stage = events[position("JobStart", Job_ID=1)]["Stage IDs"][0]
    completed = events[position("StageCompleted", Stage_ID=failed_stage)]["Stage Info"]
    assert "ZeroDivisionError" in completed["Failure Reason"]
    assert position("StageCompleted", Stage_ID=failed_stage) < position("JobEnd", Job_ID=1)


def test_a_missing_directory_or_unknown_codec_fails_at_start_naming_the_key(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError, match=r"spark.eventLog.dir.*does not exist"):
        SparkContext(conf=_conf(tmp_path / "missing"))
    bad_codec = _conf(tmp_path).set("spark.eventLog.compression.codec", "zstd")
    with pytest.raises(ValueError, match=r"spark.eventLog.compression.codec.*'zstd'"):
        SparkContext(conf=bad_codec.set("spark.eventLog.compress", "true"))
    # Nothing was left active: a good context starts afterwards.
    sc = SparkContext(conf=_conf(tmp_path).set("spark.eventLog.enabled", "false"))
    try:
        assert sc.parallelize([1, 2, 3]).count() == 3
    finally:
        sc.stop()
    assert list(tmp_path.iterdir()) == []  # disabled: no log


def test_a_compressed_log_is_gzip_and_reads_back(log_dir: Path) -> None:
    sc = SparkContext(conf=_conf(log_dir).set("spark.eventLog.compress", "true"))
    try:
        assert sc.parallelize(range(10), 2).sum() == 45
        app_id = sc.applicationId
    finally:
        sc.stop()
    path = log_dir / f"{app_id}.gzip"
    assert [p.name for p in log_dir.iterdir()] == [path.name]
    kinds = _kinds(_events(path))
    assert kinds[0] == "LogStart" and kinds[-1] == "ApplicationEnd"
    assert _kinds(list(read_log(path))) == kinds
    assert kinds.count("TaskEnd") == 2


def test_a_removed_directory_does_not_fail_the_job(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.status.eventlog")
    sc = SparkContext(conf=_conf(log_dir))
    try:
        shutil.rmtree(log_dir)
        assert sc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
    finally:
        sc.stop()  # the rename fails: one warning, no exception
    warnings = [r for r in caplog.records if r.name == "scheduler.status.eventlog"]
    assert len(warnings) == 1 and "event log disabled" in warnings[0].getMessage()


class _FullDisk:
    """A log file on a disk that fills up after `room` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.closed = False

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_full_disk_turns_the_log_off_and_the_jobs_go_on(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    disk = _FullDisk(room=3000)  # room for the header and a few events
    monkeypatch.setattr(EventLogWriter, "_open", lambda self, path: disk)
    caplog.set_level(logging.WARNING, logger="scheduler.status.eventlog")
    sc = SparkContext(conf=_conf(log_dir))
    try:
        for _ in range(5):
            assert sc.parallelize(range(1000), 8).map(lambda x: x + 1).sum() == 500500
    finally:
        sc.stop()
    assert sc._event_log is not None and not sc._event_log.enabled
    assert disk.closed
    warnings = [r.getMessage() for r in caplog.records if r.name == "scheduler.status.eventlog"]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]


def test_an_existing_log_is_kept_unless_overwrite(log_dir: Path) -> None:
    (log_dir / "app-1").write_text("old\n")
    settings = EventLogSettings.from_conf(Conf(dict(_conf(log_dir).getAll())))
    assert settings is not None
    with pytest.raises(FileExistsError, match=r"spark.eventLog.overwrite"):
        EventLogWriter(settings).start("app-1", "n", 0, "u", [])
    again = EventLogSettings.from_conf(
        Conf(dict(_conf(log_dir).set("spark.eventLog.overwrite", "true").getAll()))
    )
    assert again is not None
    writer = EventLogWriter(again)
    writer.start("app-1", "n", 0, "u", [])
    writer.stop()
    assert _kinds(_events(log_dir / "app-1"))[-1] == "ApplicationEnd"


def test_log_dirs_names_and_hostile_lines(tmp_path: Path) -> None:
    assert log_dir_path("file:/tmp/x", "k") == Path("/tmp/x")
    assert log_dir_path("file:///tmp/x", "k") == Path("/tmp/x")
    assert log_dir_path("/tmp/x", "k") == Path("/tmp/x")
    with pytest.raises(ValueError, match=r"spark.eventLog.dir.*local"):
        log_dir_path("hdfs://nn:8020/spark-logs", "spark.eventLog.dir")
    assert parse_log_name("app-20261122-0000.inprogress") is not None
    assert parse_log_name("local-1.gzip").codec == "gzip"  # type: ignore[union-attr]
    assert parse_log_name(".hidden") is None and parse_log_name("notes.txt") is None
    path = tmp_path / "local-1.inprogress"
    good = json.dumps({"Event": "SparkListenerLogStart", "Spark Version": "3.5.0"})
    path.write_bytes(
        f'{good}\nnot json\n[1, 2]\n{{"no": "event"}}\n\xff\xfe\n{good}\n'.encode("latin-1")
        + b'{"Event": "SparkListenerJobSt'  # the writer is mid-line
    )
    assert len(list(read_log(path, in_progress=True))) == 2


def test_an_event_that_cannot_be_encoded_is_skipped(
    log_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="scheduler.status.eventlog")
    writer = EventLogWriter(EventLogSettings(log_dir, None, False))
    writer(ExecutorAdded("1", "h", 1))  # before start
    writer.start("app-7", "n", 1000, "u", [("spark.app.name", "n")])
    writer(ExecutorAdded(object(), "h", 1))  # type: ignore[arg-type]  # not JSON
    writer(JobEnd(object(), "FAILED"))  # type: ignore[arg-type]  # not JSON either
    writer(ExecutorRemoved("1", "gone"))
    writer.stop()
    writer(ExecutorAdded("2", "h", 1))  # after stop: ignored
    kinds = _kinds(_events(log_dir / "app-7"))
    assert kinds == ["LogStart", "EnvironmentUpdate", "ApplicationStart", "ExecutorAdded",
                     "ExecutorRemoved", "ApplicationEnd"]  # fmt: skip
    assert writer.enabled
    warnings = [r.getMessage() for r in caplog.records if r.name == "scheduler.status.eventlog"]
    assert len(warnings) == 2 and all("cannot encode" in w for w in warnings)
