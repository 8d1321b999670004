"""The application UI in headless Chromium: a running app's pages, then the same app in the
history server, links followed job -> stage -> task -> executor log, user text escaped.

One local[2] SparkContext in this process runs a two-stage job over a cached RDD
and a job whose task raises with `<script>` in its message; its UI and event log
are read by the tests. Set SPARKCTL_UI_DOCS=1 to refresh docs/ui-stage.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _chromium import dump_dom, links_of, require_chromium, screenshot
from _ui_fakes import worker_state

from cluster.ui import WorkerWebUI
from scheduler import SparkConf, SparkContext
from scheduler.history.provider import HistoryProvider
from scheduler.history.server import HistoryServer

EVIL = "<script>alert('x')</script>"
DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("/jobs/", "/stages/", "/storage/", "/environment/", "/executors/")


def _slowly(items: Iterator[str]) -> Iterator[str]:
    time.sleep(0.1)  # tasks long enough to draw in the task stream
    return items


def _fail(x: int) -> int:
    raise ValueError(f"bad record {EVIL}")


class App:
    """The running application: its context, UI URL and event log directory."""

    def __init__(self, sc: SparkContext, log_dir: Path) -> None:
        self.sc = sc
        self.log_dir = log_dir
        assert sc.uiWebUrl is not None
        self.url: str = sc.uiWebUrl
        self.app_id = sc.applicationId

    def api(self, path: str) -> Any:
        url = f"{self.url}/api/v1/applications/{self.app_id}{path}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    require_chromium()
    log_dir = tmp_path_factory.mktemp("events")
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName(f"ui test {EVIL}")
        .set("spark.eventLog.enabled", "true")
        .set("spark.eventLog.dir", str(log_dir))
        .set("spark.hadoop.fs.s3a.access.key", "hunter2-not-shown")
    )
    sc = SparkContext(conf=conf)
    try:
        sc.setJobDescription(f"word count {EVIL}")
        lines = sc.parallelize(["a b", "b c", "c d"] * 50, 8).mapPartitions(_slowly)
        words = lines.flatMap(str.split)
        pairs = words.map(lambda w: (w, 1)).cache()
        assert sorted(pairs.reduceByKey(lambda a, b: a + b).collect()) == [
            ("a", 50), ("b", 100), ("c", 100), ("d", 50)
        ]  # fmt: skip
        sc.setJobDescription(None)  # type: ignore[arg-type]
        with pytest.raises(Exception, match="bad record"):
            sc.parallelize(range(4), 2).map(_fail).collect()
        yield App(sc, log_dir)
    finally:
        sc.stop()


def _assert_escaped(dom: str) -> None:
    assert EVIL not in dom  # shown as text, never a live element
    assert "<script>alert" not in dom


def _job_ids(app: App) -> dict[str, int]:
    """The word count job ("ok") and the failing one ("failed")."""
    jobs = app.api("/jobs")
    ok = min(j["jobId"] for j in jobs if j["status"] == "SUCCEEDED")
    return {"ok": ok, "failed": next(j["jobId"] for j in jobs if j["status"] == "FAILED")}


def _sections(dom: str) -> list[str]:
    """The "Completed Jobs (2)"-style headings of a page."""
    return re.findall(r"(?:Active|Completed|Failed) Jobs \(\d+\)", dom)


def test_every_page_of_a_running_app_renders(app: App, tmp_path: Path) -> None:
    for path in PAGES:
        dom = dump_dom(app.url + path)
        _assert_escaped(dom)
        assert 'data-live="1"' in dom, path
        assert "ui test &lt;script&gt;" in dom, path
    jobs = dump_dom(app.url + "/jobs/")
    assert "Completed Jobs (1)" in jobs and "Failed Jobs (1)" in jobs
    assert "word count &lt;script&gt;alert('x')&lt;/script&gt;" in jobs
    assert 'class="timeline"' in jobs and 'class="task-stream"' in jobs
    stages = dump_dom(app.url + "/stages/")
    assert "Completed Stages (2)" in stages and "Failed Stages (1)" in stages
    assert re.search(r"reduceByKey at \S*test_app_ui_browser\.py:\d+", stages)
    storage = dump_dom(app.url + "/storage/")
    assert "RDD[1]" in storage and "Memory" in storage
    assert "not reported" not in storage  # executors report the cached blocks' sizes
    env = dump_dom(app.url + "/environment/")
    assert "spark.hadoop.fs.s3a.access.key" in env and "hunter2-not-shown" not in env
    executors = dump_dom(app.url + "/executors/")
    assert 'id="executor-0"' in executors
    screenshot(app.url + "/jobs/", str(tmp_path / "jobs.png"))
    assert (tmp_path / "jobs.png").stat().st_size > 10_000


def test_links_lead_from_job_to_stage_to_task_to_executor(app: App, tmp_path: Path) -> None:
    jobs = dump_dom(app.url + "/jobs/")
    ok = _job_ids(app)["ok"]
    job_links = [h for h, cls, _ in links_of(jobs) if cls == "job-link" and h.endswith(f"id={ok}")]
    assert job_links
    job_url = urllib.parse.urljoin(app.url + "/jobs/", job_links[0])
    job = dump_dom(job_url)
    assert f"Details for Job {ok}" in job
    # The DAG: one <g class="stage"> per stage of the job, RDD boxes inside, a shuffle edge.
    assert job.count('<g class="stage"') == 2
    assert job.count('class="rdd"') >= 4 and 'class="shuffle"' in job
    stage_links = [h for h, cls, _ in links_of(job) if cls == "stage-link"]
    assert len(stage_links) == 2
    stage_url = urllib.parse.urljoin(job_url, stage_links[0].replace("&amp;", "&"))
    stage = dump_dom(stage_url)
    assert "Details for Stage" in stage and "Summary Metrics for 8 Completed Tasks" in stage
    assert stage.count('<g class="stage"') == 1
    assert stage.count('<tr class="task"') == 8 and "PROCESS_LOCAL" in stage
    task_links = [h for h, cls, _ in links_of(stage) if cls == "task-link"]
    executor_links = [h for h, cls, _ in links_of(stage) if cls == "executor-link"]
    assert len(task_links) == 8 and executor_links
    executor = dump_dom(urllib.parse.urljoin(stage_url, executor_links[0]))
    assert 'id="executor-0"' in executor and 'id="executor-driver"' in executor
    assert "Active(2)" in executor  # the driver and the executor, as on Spark's page
    screenshot(stage_url, str(tmp_path / "stage.png"))
    if os.environ.get("SPARKCTL_UI_DOCS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "stage.png", DOCS / "ui-stage.png")


def test_failed_task_traceback_is_folded_and_escaped(app: App) -> None:
    failed = _job_ids(app)["failed"]
    (stage_id,) = app.api(f"/jobs/{failed}")["stageIds"]
    dom = dump_dom(f"{app.url}/stages/stage/?id={stage_id}&attempt=0")
    _assert_escaped(dom)
    assert '<details class="error">' in dom and "ValueError" in dom
    assert "bad record &lt;script&gt;alert('x')&lt;/script&gt;" in dom


def test_pages_work_without_javascript(app: App) -> None:
    dom = dump_dom(app.url + "/jobs/", flags=("--disable-javascript",))
    assert "Completed Jobs (1)" in dom and '<g class="job-bar">' in dom


def test_live_page_refreshes_when_a_job_runs(app: App) -> None:
    """The page polls the REST API and swaps its content: a job run after load shows up."""
    before = len(app.api("/jobs"))
    server = app.sc._ui._server._server  # the UI's HTTP server: see when the page first polls
    route = server.route
    polled = threading.Event()

    def watching(path: str, query: Any) -> Any:
        if path.startswith("/api/v1/") and "/jobs/" not in path:
            polled.set()
        return route(path, query)

    def later() -> None:
        if polled.wait(60):  # the page is loaded and polling: now run a job
            app.sc.setJobDescription("the late job")
            app.sc.parallelize(range(4), 2).count()

    server.route = watching
    thread = threading.Thread(target=later)
    thread.start()
    try:
        # Chromium's virtual time runs the page's 2 s poll timers quickly.
        dom = dump_dom(app.url + "/jobs/", flags=("--virtual-time-budget=20000",))
    finally:
        polled.set()
        thread.join(60)
        server.route = route
    assert len(app.api("/jobs")) == before + 1, "the page never polled the REST API"
    assert "the late job" in dom  # not in the page as first served: swapped in by live.js


def test_history_server_shows_the_finished_app_the_same_way(app: App, tmp_path: Path) -> None:
    live_jobs = dump_dom(app.url + "/jobs/")
    ok = _job_ids(app)["ok"]
    live_job = dump_dom(f"{app.url}/jobs/job/?id={ok}")
    live_api = app.api("/jobs")
    app.sc.stop()
    (log,) = [p for p in app.log_dir.iterdir() if not p.name.endswith(".inprogress")]
    work = tmp_path / "work"
    work.mkdir()
    state = worker_state(work)
    worker = WorkerWebUI(work, "127.0.0.1", 0, lambda: state)
    worker.start()
    # In standalone mode Spark logs each executor's log URLs through the worker UI; a
    # local app has none, so point executor 0 at the (fake) worker's executor 0 logs.
    urls = {
        kind: f"{worker.url}/logPage/?appId=app-20261122-0000&executorId=0&logType={kind}"
        for kind in ("stdout", "stderr")
    }
    lines = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("Event") == "SparkListenerExecutorAdded":
            event["Executor Info"]["Log Urls"] = urls
        lines.append(json.dumps(event))
    log.write_text("\n".join(lines) + "\n")
    history = HistoryServer(HistoryProvider(app.log_dir), "127.0.0.1", 0)
    try:
        listing = dump_dom(history.url + "/")
        _assert_escaped(listing)
        app_links = [h for h, cls, _ in links_of(listing) if cls == "app-link"]
        assert len(app_links) == 1
        base = urllib.parse.urljoin(history.url + "/", app_links[0])
        for path in PAGES:
            dom = dump_dom(base.rstrip("/") + path)
            _assert_escaped(dom)
            assert 'data-live="0"' in dom and "completed</p>" in dom, path
        jobs = dump_dom(base)  # redirected to jobs/
        assert _sections(jobs) == _sections(live_jobs) and "Failed Jobs (1)" in jobs
        assert "word count &lt;script&gt;" in jobs
        job_links = [
            h for h, cls, _ in links_of(jobs) if cls == "job-link" and h.endswith(f"={ok}")
        ]
        job_url = urllib.parse.urljoin(base, job_links[0])
        job = dump_dom(job_url)
        assert job.count('<g class="stage"') == live_job.count('<g class="stage"') == 2
        stage_links = [h for h, cls, _ in links_of(job) if cls == "stage-link"]
        stage_url = urllib.parse.urljoin(job_url, stage_links[-1].replace("&amp;", "&"))
        stage = dump_dom(stage_url)
        assert stage.count('<tr class="task"') == 8
        log_links = [
            h for h, cls, text in links_of(stage) if cls == "log-link" and text == "stdout"
        ]
        assert log_links and log_links[0].startswith(worker.url)
        log_page = dump_dom(log_links[0].replace("&amp;", "&"))
        assert "stdout log of executor 0 of app-20261122-0000" in log_page
        assert "hello from executor 0" in log_page
        screenshot(stage_url, str(tmp_path / "history-stage.png"))
        api = json.loads(
            urllib.request.urlopen(
                f"{history.url}/api/v1/applications/{app.app_id}/jobs", timeout=10
            ).read()
        )
        assert sorted(j["status"] for j in api) == sorted(j["status"] for j in live_api)
    finally:
        history.stop()
        worker.stop()
