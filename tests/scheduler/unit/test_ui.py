"""The application UI's store and pages, without a SparkContext."""

from __future__ import annotations

import json
import urllib.request

from scheduler.core.events import (
    ExecutorAdded,
    JobEnd,
    JobStart,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
)
from scheduler.status.driverui import AppStatusStore, DriverUI
from scheduler.status.ui import _views


def _fill(store: AppStatusStore) -> None:
    store(ExecutorAdded("0", "127.0.0.1", 2))
    store(JobStart(0, (0,), group="<g>", description="<b>x</b>"))
    store(StageSubmitted(0, 0, 2, 0))
    store(TaskEnd(0, 0, True))
    store(TaskEnd(0, 0, False))
    store(TaskEnd(0, 0, True))
    store(StageCompleted(0, 0))
    store(JobEnd(0, "SUCCEEDED"))


def test_the_store_follows_jobs_stages_and_executors() -> None:
    store = AppStatusStore("app-1", "name")
    _fill(store)
    (job,) = _views.jobs(store)
    assert job["status"] == "SUCCEEDED"
    (stage,) = _views.stages(store)
    assert (stage["numCompleteTasks"], stage["numFailedTasks"], stage["status"]) == (
        2,
        1,
        "COMPLETE",
    )
    assert _views.executors(store)[0]["totalCores"] == 2


def test_pages_json_and_metrics_are_served_and_escaped() -> None:
    store = AppStatusStore("app-1", "<script>")
    _fill(store)
    ui = DriverUI(store, "127.0.0.1", 0)
    try:
        page = urllib.request.urlopen(ui.url + "/", timeout=10).read().decode()
        assert "<script>" not in page.replace('<script src="/static/live.js">', "")
        assert "&lt;script&gt;" in page
        assert "&lt;b&gt;x&lt;/b&gt;" in page
        data = json.loads(urllib.request.urlopen(ui.url + "/json", timeout=10).read())
        assert data["id"] == "app-1" and data["jobs"][0]["jobId"] == 0
        metrics = urllib.request.urlopen(ui.url + "/metrics", timeout=10).read().decode()
        assert 'sparkctl_driver_jobs{status="SUCCEEDED"} 1' in metrics
        assert 'sparkctl_driver_tasks_total{outcome="failure"} 1' in metrics
    finally:
        ui.stop()
