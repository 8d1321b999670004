"""The history server reads event logs that any application could have written.

A shared `spark.eventLog.dir` is writable by every user's applications, so one
log with absurd values (an infinite or far-future timestamp, a line nested past
Python's recursion limit, a reason that is a number, an executor claiming a
billion cores) must cost only its own malformed events: the listing and every
other application stay readable, and no page builds something the size of a
logged number.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.history.provider import HistoryProvider
from scheduler.history.server import HistoryServer
from scheduler.status.ui._pictures import MAX_STREAM_SLOTS, task_stream

GOOD = "app-20261207000000-0000"
START_MS = 1_796_600_000_000


def _events(app_id: str, **start: object) -> list[dict[str, object]]:
    """A small finished application: one job, one stage, one task, one executor."""
    stage = {
        "Stage ID": 0,
        "Stage Attempt ID": 0,
        "Stage Name": "count at app.py:3",
        "Number of Tasks": 1,
        "RDD Info": [],
        "Parent IDs": [],
    }
    return [
        {"Event": "SparkListenerLogStart", "Spark Version": "3.5.0"},
        {
            "Event": "SparkListenerApplicationStart",
            "App Name": app_id,
            "App ID": app_id,
            "Timestamp": START_MS,
            "User": "u",
            **start,
        },
        {
            "Event": "SparkListenerExecutorAdded",
            "Timestamp": START_MS + 1,
            "Executor ID": "0",
            "Executor Info": {"Host": "127.0.0.1", "Total Cores": 2, "Log Urls": {}},
        },
        {
            "Event": "SparkListenerJobStart",
            "Job ID": 0,
            "Submission Time": START_MS + 2,
            "Stage Infos": [stage],
            "Stage IDs": [0],
            "Properties": {},
        },
        {
            "Event": "SparkListenerStageSubmitted",
            "Stage Info": {**stage, "Submission Time": START_MS + 3},
            "Properties": {},
        },
        {
            "Event": "SparkListenerTaskEnd",
            "Stage ID": 0,
            "Stage Attempt ID": 0,
            "Task Type": "ResultTask",
            "Task End Reason": {"Reason": "Success"},
            "Task Info": {
                "Task ID": 0,
                "Index": 0,
                "Attempt": 0,
                "Launch Time": START_MS + 4,
                "Executor ID": "0",
                "Host": "127.0.0.1",
                "Locality": "PROCESS_LOCAL",
                "Finish Time": START_MS + 9,
                "Failed": False,
                "Killed": False,
            },
            "Task Metrics": {"Executor Run Time": 5},
        },
        {
            "Event": "SparkListenerStageCompleted",
            "Stage Info": {
                **stage,
                "Submission Time": START_MS + 3,
                "Completion Time": START_MS + 10,
            },
        },
        {
            "Event": "SparkListenerJobEnd",
            "Job ID": 0,
            "Completion Time": START_MS + 11,
            "Job Result": {"Result": "JobSucceeded"},
        },
        {"Event": "SparkListenerApplicationEnd", "Timestamp": START_MS + 12},
    ]


def _write(path: Path, events: list[dict[str, object]], raw: str = "") -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + raw)


def _hostile_logs(log_dir: Path) -> list[str]:
    """Logs that each break one thing; their ids."""
    # 1e400 is a JSON number that Python reads as infinity.
    text = json.dumps(_events("app-inf-start")[1]).replace(str(START_MS), "1e400")
    (log_dir / "app-inf-start").write_text(text + "\n")
    _write(log_dir / "app-far-future", _events("app-far-future", Timestamp=10**30))
    _write(log_dir / "app-nested", _events("app-nested"), "[" * 200_000 + "\n")
    future = _events("app-future-task")
    future[5]["Task Info"]["Finish Time"] = 10**30  # type: ignore[index]
    future[2]["Timestamp"] = float("inf")  # json.dumps writes Infinity, json.loads reads it
    future[6]["Stage Info"]["Failure Reason"] = 12345  # type: ignore[index]
    _write(log_dir / "app-future-task", future)
    many = _events("app-many-cores")
    many[2]["Executor Info"]["Total Cores"] = 10**9  # type: ignore[index]
    _write(log_dir / "app-many-cores", many)
    negative = _events("app-negative-run")
    negative[5]["Task Metrics"]["Executor Run Time"] = -(10**30)  # type: ignore[index]
    _write(log_dir / "app-negative-run", negative)
    return [
        "app-inf-start",
        "app-far-future",
        "app-nested",
        "app-future-task",
        "app-many-cores",
        "app-negative-run",
    ]


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    _write(tmp_path / GOOD, _events(GOOD))
    hostile = _hostile_logs(tmp_path)
    server = HistoryServer(HistoryProvider(tmp_path), "127.0.0.1", 0)
    try:
        yield server.url, hostile
    finally:
        server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_hostile_log_leaves_the_listing_and_other_apps_readable(
    history: tuple[str, list[str]],
) -> None:
    url, hostile = history
    for path in ("/", "/json", "/api/v1/applications"):
        status, body = _get(url + path)
        assert status == 200 and GOOD in body, (path, status, body[:300])
        assert all(app in body for app in hostile), (path, body[:600])
    listed = json.loads(_get(url + "/api/v1/applications")[1])
    starts = {a["id"]: a["attempts"][0]["startTimeEpoch"] for a in listed}
    assert starts[GOOD] == START_MS
    # A start that is no date is shown as unknown, not as year 10**19.
    assert starts["app-inf-start"] == starts["app-far-future"] == -1
    for app in [GOOD, *hostile]:
        for page in (
            "jobs/",
            "jobs/job/?id=0",
            "stages/",
            "stages/stage/?id=0&attempt=0",
            "executors/",
            "environment/",
            "storage/",
        ):
            status, body = _get(f"{url}/history/{app}/{page}")
            assert status in (200, 404), (app, page, status, body[:300])
        for api in ("", "/jobs", "/stages", "/executors", "/allexecutors"):
            status, body = _get(f"{url}/api/v1/applications/{app}{api}")
            assert status == 200, (app, api, status, body[:300])
    status, body = _get(f"{url}/history/app-future-task/stages/")
    assert status == 200 and "12345" in body  # the numeric reason, shown as text


def test_the_task_stream_draws_at_most_max_slots_rows_per_executor() -> None:
    stream = {
        "cores": {"0": 100_000, "1": 2},
        "spans": [("0", 0, 0, 1.0, 2.0, "SUCCESS"), ("1", 0, 1, 1.0, 2.0, "SUCCESS")],
        "now": 3.0,
    }
    picture = task_stream(stream)
    assert len(picture["rows"]) == MAX_STREAM_SLOTS + 2
    assert picture["height"] < 10 + (MAX_STREAM_SLOTS + 2) * 14 + 31
