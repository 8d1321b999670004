"""The application UI without processes: store bounds, redaction, views, pictures, replay."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from scheduler._version import SPARK_VERSION
from scheduler.core.events import (
    EnvironmentUpdate,
    ExecutorAdded,
    ExecutorRemoved,
    JobEnd,
    JobStart,
    LaunchedTask,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
    UnpersistRDD,
)
from scheduler.status.jsonprotocol import EventEncoder, replay_events
from scheduler.status.ui import AppPages, AppStatusStore, Limits, _pictures, _views
from scheduler.status.ui._store import REDACTED

EVIL = "<script>alert('x')</script>"


def _launched(stage: int, ids: range, local: bool = True, first: int = 0) -> TasksLaunched:
    """Tasks `first + i` of `stage` (index and partition i) launched on executor 1."""
    return TasksLaunched(
        tuple(LaunchedTask(first + i, stage, 0, i, 0, "1", i, local, False) for i in ids)
    )


RDDS_0 = [
    {"id": 0, "name": "ParallelCollectionRDD[0]", "callsite": "parallelize at app.py:5",
     "parents": [], "shuffle_parents": [], "partitions": 2, "storage": ""},
    {"id": 1, "name": "PythonRDD[1]", "callsite": "map at app.py:6", "parents": [0],
     "shuffle_parents": [], "partitions": 2, "storage": "Memory Serialized 1x Replicated"},
]  # fmt: skip
RDDS_1 = [
    {"id": 2, "name": "ShuffledRDD[2]", "callsite": "reduceByKey at app.py:7", "parents": [1],
     "shuffle_parents": [1], "partitions": 2, "storage": ""},
    {"id": 3, "name": "PythonRDD[3]", "callsite": "collect at app.py:8", "parents": [2],
     "shuffle_parents": [], "partitions": 2, "storage": ""},
]  # fmt: skip


def _two_stage_job(
    store: Callable[[SchedulerEvent], None], job_id: int = 0, base_stage: int = 0
) -> None:
    """A reduceByKey job: map stage `base_stage`, result stage `base_stage + 1`, 2 tasks each."""
    s0, s1 = base_stage, base_stage + 1
    stages = [
        {"stage_id": s0, "name": "reduceByKey at app.py:7", "num_tasks": 2, "parent_ids": [],
         "is_map": True, "rdds": RDDS_0},
        {"stage_id": s1, "name": "collect at app.py:8", "num_tasks": 2, "parent_ids": [s0],
         "is_map": False, "rdds": RDDS_1},
    ]  # fmt: skip
    store(JobStart(job_id, (s0, s1), tuple(stages), None, EVIL))
    tid = 100 * job_id
    for stage, ok_last in ((s0, True), (s1, False)):
        store(StageSubmitted(stage, 0, 2, job_id))
        store(_launched(stage, range(2), first=tid))
        for i in range(2):
            ok = ok_last or i == 0
            error = None if ok else f"Traceback (most recent call last):\nValueError: {EVIL}"
            store(
                TaskEnd(
                    stage, 0, ok, tid + i, i, 0, i, "1", launched_ago=0.0, run_seconds=0.5 + i,
                    metrics={"gcSeconds": 0.01, "shuffleBytesWritten": 1000 * (i + 1),
                             "storedBlockBytes": [300], "pythonWorker": (i, 100 + i),
                             "memoryBlocks": [(1, i, 700)]} if stage == s0 else {},
                    blocks=((1, i),) if stage == s0 else (), error=error,
                    error_type=None if ok else "builtins.ValueError",
                )
            )  # fmt: skip
        tid += 2
        store(StageCompleted(stage, 0, None if ok_last else "Task 1 failed"))
    store(JobEnd(job_id, "FAILED", EVIL))


def _store() -> AppStatusStore:
    store = AppStatusStore("app-1", EVIL, [("spark.app.name", EVIL)])
    store(ExecutorAdded("1", "10.0.0.1", 2, {"stdout": "http://w:8081/logPage/?x=1"}))
    _two_stage_job(store)
    return store


def test_tasks_stages_and_jobs_add_up() -> None:
    store = _store()
    (job,) = _views.jobs(store)
    assert job["name"] == "collect at app.py:8" and job["description"] == EVIL
    assert (job["numTasks"], job["numCompletedTasks"], job["numFailedTasks"]) == (4, 3, 1)
    assert (job["numCompletedStages"], job["numFailedStages"]) == (1, 1)
    stage = _views.stage(store, 0, 0)
    assert stage is not None and stage["name"] == "reduceByKey at app.py:7"
    assert stage["status"] == "COMPLETE" and stage["shuffleWriteBytes"] == 3000
    assert stage["_quantiles"]["duration"] == [500, 500, 1500, 1500, 1500]
    assert stage["_quantiles"]["shuffle_write"] == [1000, 1000, 2000, 2000, 2000]
    task = stage["tasks"]["0"]
    assert (task["index"], task["executorId"], task["host"], task["status"]) == (
        0,
        "1",
        "10.0.0.1",
        "SUCCESS",
    )
    assert task["taskLocality"] == "PROCESS_LOCAL" and task["taskMetrics"]["jvmGcTime"] == 10
    failed = _views.stage(store, 1, 0)
    assert failed is not None and failed["status"] == "FAILED"
    assert (
        failed["tasks"]["3"]["status"] == "FAILED" and EVIL in failed["tasks"]["3"]["errorMessage"]
    )
    (executor,) = _views.executors(store)
    assert (executor["completedTasks"], executor["failedTasks"], executor["activeTasks"]) == (
        3,
        1,
        0,
    )
    assert executor["totalDuration"] == 500 + 1500 + 500 + 1500
    assert executor["rddBlocks"] == 2 and executor["totalShuffleWrite"] == 3000
    (rdd,) = _views.storage(store)
    assert (rdd["id"], rdd["numCachedPartitions"], rdd["numPartitions"]) == (1, 2, 2)
    # Objects held by two Python workers (estimated), serialized copies on disk.
    assert (rdd["memoryUsed"], rdd["diskUsed"], rdd["_workers"]) == (1400, 600, 2)
    assert (executor["memoryUsed"], executor["diskUsed"]) == (1400, 600)
    store(UnpersistRDD(1))
    assert _views.storage(store) == []


def test_api_objects_use_sparks_field_names() -> None:
    store = _store()
    job_keys = {"jobId", "name", "description", "submissionTime", "completionTime", "stageIds",
                "jobGroup", "status", "numTasks", "numActiveTasks", "numCompletedTasks",
                "numSkippedTasks", "numFailedTasks", "numKilledTasks", "numActiveStages",
                "numCompletedStages", "numSkippedStages", "numFailedStages"}  # fmt: skip
    stage_keys = {"status", "stageId", "attemptId", "numTasks", "numActiveTasks",
                  "numCompleteTasks", "numFailedTasks", "executorRunTime", "inputBytes",
                  "shuffleReadBytes", "shuffleWriteBytes", "name", "submissionTime",
                  "completionTime", "failureReason"}  # fmt: skip
    executor_keys = {"id", "hostPort", "isActive", "rddBlocks", "totalCores", "activeTasks",
                     "failedTasks", "completedTasks", "totalTasks", "totalDuration",
                     "totalShuffleRead", "totalShuffleWrite", "executorLogs",
                     "addTime"}  # fmt: skip
    pages = AppPages(store)
    api = "/api/v1/applications/app-1"
    jobs = json.loads(pages.route(api + "/jobs", {}).body)  # type: ignore[union-attr]
    assert job_keys <= set(jobs[0]) and not any(k.startswith("_") for k in jobs[0])
    stages = json.loads(pages.route(api + "/stages", {}).body)  # type: ignore[union-attr]
    assert all(stage_keys <= set(s) for s in stages)
    (one,) = json.loads(pages.route(api + "/stages/0", {}).body)  # type: ignore[union-attr]
    assert {"taskId", "index", "attempt", "launchTime", "duration", "executorId", "host",
            "status", "taskLocality", "taskMetrics"} <= set(one["tasks"]["0"])  # fmt: skip
    executors = json.loads(pages.route(api + "/executors", {}).body)  # type: ignore[union-attr]
    assert executor_keys <= set(executors[0])
    (app,) = json.loads(pages.route("/api/v1/applications", {}).body)  # type: ignore[union-attr]
    assert app["id"] == "app-1" and {"startTime", "completed", "sparkUser"} <= set(
        app["attempts"][0]
    )
    assert pages.route("/api/v1/applications/app-2/jobs", {}).status == 404  # type: ignore[union-attr]
    missing = pages.route(api + "/stages/7", {})
    assert missing is not None and missing.status == 404 and b"unknown stage" in missing.body


def test_task_list_and_version_answer_as_sparks_rest_api() -> None:
    pages = AppPages(_store())
    api = "/api/v1/applications/app-1/stages/1/0/taskList"

    def ask(query: dict[str, str], path: str = api) -> tuple[int, Any]:
        answer = pages.route(path, query)
        assert answer is not None, (path, query)
        return answer.status, json.loads(answer.body)

    status, tasks = ask({})
    assert status == 200 and [t["taskId"] for t in tasks] == [2, 3]
    assert {"taskId", "index", "status", "taskMetrics"} <= set(tasks[0])
    assert [t["taskId"] for t in ask({"sortBy": "-runtime"})[1]] == [3, 2]
    assert [t["taskId"] for t in ask({"offset": "1", "length": "5"})[1]] == [3]
    assert [t["status"] for t in ask({"status": "failed"})[1]] == ["FAILED"]
    assert ask({"length": "0"})[1] == []
    for bad in ({"offset": "-1"}, {"sortBy": "<b>"}):
        status, body = ask(bad)
        assert status == 400 and "message" in body, (bad, body)
    assert ask({}, "/api/v1/applications/app-1/stages/9/0/taskList")[0] == 404
    assert ask({}, "/api/v1/version") == (200, {"spark": SPARK_VERSION})
    # /jobs and /stages filter by Spark's status names, in any case.
    stages = "/api/v1/applications/app-1/stages"
    assert [s["stageId"] for s in ask({"status": "complete"}, stages)[1]] == [0]
    assert [s["stageId"] for s in ask({"status": "FAILED"}, stages)[1]] == [1]
    assert ask({"status": "active"}, stages)[1] == []
    assert [
        j["jobId"] for j in ask({"status": "failed"}, "/api/v1/applications/app-1/jobs")[1]
    ] == [0]
    assert ask({"status": "succeeded"}, "/api/v1/applications/app-1/jobs")[1] == []
    assert ask({"status": "bogus"}, stages)[0] == 400


def test_pages_escape_user_text_and_reject_bad_ids() -> None:
    pages = AppPages(_store())
    for path, query in (
        ("/jobs/", {}), ("/jobs/job/", {"id": "0"}), ("/stages/", {}),
        ("/stages/stage/", {"id": "1", "attempt": "0"}), ("/executors/", {}),
        ("/environment/", {}), ("/storage/", {}),
    ):  # fmt: skip
        response = pages.route(path, query)
        assert response is not None and response.status == 200, path
        body = response.body.decode()
        assert EVIL not in body, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in body, path
    redirect = pages.route("/", {})
    assert redirect is not None and redirect.status == 302
    assert ("Location", "/jobs/") in redirect.headers
    for query in ({"id": "x"}, {}):
        bad = pages.route("/jobs/job/", query)
        assert bad is not None and bad.status == 400 and b"id" in bad.body
    unknown = pages.route("/stages/stage/", {"id": "9"})
    assert unknown is not None and unknown.status == 404 and b"no stage 9" in unknown.body
    assert pages.route("/nope", {}) is None


def test_stage_page_folds_tracebacks_and_links_logs() -> None:
    response = AppPages(_store()).route("/stages/stage/", {"id": "1", "attempt": "0"})
    assert response is not None
    body = response.body.decode()
    assert '<details class="error"><summary>builtins.ValueError' in body
    assert "Traceback (most recent call last)" in body
    page0 = AppPages(_store()).route("/stages/stage/", {"id": "0"})
    assert page0 is not None and b'class="log-link" href="http://w:8081/logPage/?x=1"' in page0.body
    assert b"Shuffle Write Size" in page0.body and b"GC Time" in page0.body


def test_secrets_are_redacted_as_spark_does() -> None:
    conf = [
        ("spark.authenticate.secret", "s3cret"), ("spark.ssl.keyPassword", "pw"),
        ("spark.hadoop.fs.s3a.access.key", "AKIA"), ("spark.my.accesskey", "AKIB"),
        ("spark.github.token", "ghp"), ("spark.url", "http://u:password=x@h"),
        ("spark.app.name", "fine"),
    ]  # fmt: skip
    store = AppStatusStore("app-1", "a", conf)
    props = dict(store.environment["Spark Properties"])
    assert props["spark.app.name"] == "fine"
    for key in ("spark.authenticate.secret", "spark.ssl.keyPassword",
                "spark.hadoop.fs.s3a.access.key", "spark.my.accesskey", "spark.github.token",
                "spark.url"):  # fmt: skip
        assert props[key] == REDACTED, key
    body = AppPages(store).route("/environment/", {}).body  # type: ignore[union-attr]
    for secret in (b"s3cret", b"AKIA", b"AKIB", b"ghp"):
        assert secret not in body


def test_the_store_is_bounded_like_sparks_ui() -> None:
    store = AppStatusStore("app-1", "a", limits=Limits(jobs=3, stages=4, tasks=5, dead_executors=2))
    for job in range(6):
        _two_stage_job(store, job, 2 * job)
    assert [j["jobId"] for j in _views.jobs(store)] == [5, 4, 3]
    assert len(_views.stages(store)) == 4
    store(StageSubmitted(99, 0, 20, 9))
    store(_launched(99, range(20), first=1000))
    for i in range(20):
        store(TaskEnd(99, 0, True, 1000 + i, i, 0, i, "1"))
    stage = _views.stage(store, 99)
    assert stage is not None and stage["numCompleteTasks"] == 20  # counts stay exact
    assert len(stage["tasks"]) == 5 and stage["_dropped_tasks"] == 15
    for n in range(5):
        store(ExecutorAdded(f"e{n}", "h", 1))
        store(ExecutorRemoved(f"e{n}", "gone"))
    assert sum(1 for e in _views.executors(store) if not e["isActive"]) <= 3
    assert Limits.from_conf(
        {"spark.ui.retainedJobs": "7", "spark.ui.retainedTasks": "x"}
    ) == Limits(jobs=7)


def test_lost_executor_fails_its_running_tasks() -> None:
    store = AppStatusStore("app-1", "a")
    store(ExecutorAdded("1", "h", 2))
    store(StageSubmitted(0, 0, 2, 0))
    store(_launched(0, range(2), local=False))
    assert _views.executors(store)[0]["activeTasks"] == 2
    store(ExecutorRemoved("1", "killed"))
    stage = _views.stage(store, 0)
    assert stage is not None and stage["numActiveTasks"] == 0 and stage["numFailedTasks"] == 2
    assert stage["tasks"]["0"]["taskLocality"] == "ANY"
    assert "ExecutorLostFailure" in stage["tasks"]["0"]["errorMessage"]


def test_dag_has_one_group_per_stage_and_shuffle_edges() -> None:
    store = _store()
    job = _views.job(store, 0)
    assert job is not None
    picture = _pictures.dag(job["_stages"])
    assert [s["id"] for s in picture["stages"]] == [0, 1]
    assert [len(s["rdds"]) for s in picture["stages"]] == [2, 2]
    shuffles = [e for e in picture["edges"] if e["shuffle"]]
    narrow = [e for e in picture["edges"] if not e["shuffle"]]
    assert len(shuffles) == 1 and len(narrow) == 2
    assert picture["stages"][1]["x"] > picture["stages"][0]["x"]  # child right of parent
    body = AppPages(store).route("/jobs/job/", {"id": "0"}).body.decode()  # type: ignore[union-attr]
    assert body.count('<g class="stage"') == 2 and body.count('class="shuffle"') == 1
    assert body.count('<g class="stage-bar"') == 2  # the job's event timeline: its stages


def test_task_stream_puts_tasks_on_executor_slots() -> None:
    spans = [("1", 0, 1, 0.0, 1.0, "SUCCESS"), ("1", 0, 2, 0.0, 2.0, "SUCCESS"),
             ("1", 1, 3, 1.0, 3.0, "FAILED"), ("2", 1, 4, 0.5, None, "RUNNING")]  # fmt: skip
    picture = _pictures.task_stream({"cores": {"1": 2, "2": 1}, "spans": spans, "now": 4.0})
    rows = {r["y"] for r in picture["rects"]}
    assert len(picture["rows"]) == 3 and len(rows) == 3  # task 3 reuses task 1's slot
    assert [r["failed"] for r in picture["rects"]].count(True) == 1
    assert picture["rects"][0]["color"] != picture["rects"][2]["color"]  # coloured by stage


def test_replayed_log_shows_what_the_live_store_showed() -> None:
    """Scheduler events -> EventEncoder (the event log) -> replay_events -> a second store."""
    live = AppStatusStore("app-1", "a")
    encoder = EventEncoder()
    lines: list[dict[str, Any]] = []

    def both(event: SchedulerEvent) -> None:
        live(event)
        lines.extend(json.loads(json.dumps(e)) for e in encoder.encode(event, time.time()))

    both(ExecutorAdded("1", "10.0.0.1", 2, {"stdout": "http://w/stdout"}))
    _two_stage_job(both)
    lines += encoder.application_end(int(time.time() * 1000))
    replayed = AppStatusStore("app-1", "a")
    for event in replay_events(lines):
        replayed(event)
    for view in (_views.jobs, _views.stages, _views.executors):
        left, right = view(live), view(replayed)  # type: ignore[operator]
        drop = ("submissionTime", "completionTime", "firstTaskLaunchedTime", "_submitted",
                "_completed", "_duration_ms", "addTime", "_added", "numActiveTasks")  # fmt: skip
        strip = [{k: v for k, v in d.items() if k not in drop} for d in left]
        assert strip == [{k: v for k, v in d.items() if k not in drop} for d in right], view
    stage = _views.stage(replayed, 1, 0)
    assert stage is not None and EVIL in stage["tasks"]["3"]["errorMessage"]
    assert stage["tasks"]["2"]["taskLocality"] == "PROCESS_LOCAL"
    assert [r["id"] for r in stage["_rdds"]] == [2, 3]


def test_stage_page_pages_its_task_table() -> None:
    store = AppStatusStore("app-1", "a")
    store(StageSubmitted(0, 0, 250, 0))
    store(_launched(0, range(250)))
    pages = AppPages(store)
    first = pages.route("/stages/stage/", {"id": "0"})
    assert first is not None and first.body.count(b'<tr class="task"') == 100
    assert b"Page 1 of 3" in first.body and b"task.page=2" in first.body
    last = pages.route("/stages/stage/", {"id": "0", "task.page": "3"})
    assert last is not None and last.body.count(b'<tr class="task"') == 50
    assert b'id="task-249"' in last.body and b'id="task-0"' not in last.body
    bad = pages.route("/stages/stage/", {"id": "0", "task.page": "-1"})
    assert bad is not None and bad.status == 400


def test_driver_ui_server_headers_ipv6_and_static_script() -> None:
    import socket
    import urllib.error
    import urllib.request

    from scheduler.status.driverui import DriverUI

    store = _store()
    ui = DriverUI(store, "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(ui.url + "/jobs/", timeout=10) as reply:
            headers = reply.headers
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["X-Frame-Options"] == "DENY"
            assert "default-src 'self'" in headers["Content-Security-Policy"]
        with urllib.request.urlopen(ui.url + "/static/live.js", timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/javascript")
            assert b"data-live" in reply.read()
        for path in ("/static/../_web.py", "/static/nope.js", "/nope"):
            try:
                urllib.request.urlopen(ui.url + path, timeout=10)
                raise AssertionError(path)
            except urllib.error.HTTPError as exc:
                assert exc.code == 404, path
    finally:
        ui.stop()
    if not socket.has_ipv6:
        return
    try:
        ui6 = DriverUI(store, "::1", 0)
    except OSError:  # no IPv6 loopback in this sandbox
        return
    try:
        assert ui6.url.startswith("http://[::1]:")
        with urllib.request.urlopen(ui6.url + "/api/v1/applications", timeout=10) as reply:
            assert json.loads(reply.read())[0]["id"] == "app-1"
    finally:
        ui6.stop()


def test_the_rest_api_lists_the_driver_among_the_executors() -> None:
    # Spark's AppStatusListener makes the driver's block manager an "executor" with the
    # id "driver": no cores, added at the start, active until the end (and in history).
    props = [("spark.driver.host", "10.0.0.9"), ("spark.driver.port", "7078")]
    live = AppStatusStore("app-1", "a", props)
    logged = AppStatusStore("app-1", "a")  # as the history server rebuilds it
    logged(EnvironmentUpdate({"Spark Properties": props}))
    for store in (live, logged):
        store(ExecutorAdded("1", "10.0.0.1", 2, {}))
        store(ExecutorAdded("2", "10.0.0.2", 2, {}))
        store(ExecutorRemoved("2", "lost"))
        store.end_time = store.start_time + 5
        pages = AppPages(store)
        api = "/api/v1/applications/app-1"
        active = json.loads(pages.route(api + "/executors", {}).body)  # type: ignore[union-attr]
        every = json.loads(pages.route(api + "/allexecutors", {}).body)  # type: ignore[union-attr]
        assert [e["id"] for e in active] == ["driver", "1"]
        assert [e["id"] for e in every] == ["driver", "1", "2"]
        driver = active[0]
        assert driver["hostPort"] == "10.0.0.9:7078" and driver["isActive"] is True
        assert (driver["totalCores"], driver["maxTasks"], driver["totalTasks"]) == (0, 0, 0)
        assert (driver["memoryUsed"], driver["diskUsed"], driver["maxMemory"]) == (0, 0, 0)
        assert driver["addTime"] == _views.api_time(store.start_time)
        assert driver["removeTime"] is None and driver["executorLogs"] == {}
        assert set(driver) == set(active[1])  # the same ExecutorSummary shape
        page = pages.route("/executors/", {})
        assert page is not None and page.status == 200
        html = page.body.decode()
        assert html.index('id="executor-driver"') < html.index('id="executor-1"')
        assert "10.0.0.9:7078" in html and "Active(2)" in html and "Dead(1)" in html
