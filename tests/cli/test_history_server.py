"""`sparkctl start-history-server`: listing and replaying event logs, as real processes.

Applications run as child Pythons on local[2] (127.0.0.1); the history server
is a daemon bound to 127.0.0.1 on a free port. Every wait is bounded, and
every process is stopped by PID (`reaped` kills whatever a pid file still
names, the applications are killed in a finally).
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli_harness import CLI, clean_env, reaped, run_cli

from cluster.testing import alive, kill_tree, wait_until

APP = """
import pathlib, sys, time
from scheduler import SparkConf, SparkContext

log_dir, name, gate = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
conf = (
    SparkConf().setMaster("local[2]").setAppName(name)
    .set("spark.ui.enabled", "false")
    .set("spark.eventLog.enabled", "true").set("spark.eventLog.dir", log_dir)
)
sc = SparkContext(conf=conf)
sc.setJobGroup("g1", "<b>the sum</b>")
assert sc.parallelize(range(100), 4).map(lambda x: (x % 2, x)).reduceByKey(
    lambda a, b: a + b).count() == 2
try:
    sc.parallelize(range(2), 2).map(lambda x: x // 0).collect()
except Exception:
    pass
# Written whole, then renamed: the test polls for the file and reads it at once.
(gate.parent / (gate.name + ".tmp")).write_text(sc.applicationId)
(gate.parent / (gate.name + ".tmp")).rename(gate.parent / (gate.name + ".ready"))
deadline = time.monotonic() + 60
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.05)
sc.stop()
"""


def _get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"] or "", exc.read().decode()


def _json(url: str) -> Any:
    status, kind, body = _get(url)
    assert status == 200 and kind == "application/json", (status, body)
    return json.loads(body)


class _App:
    """An application process that waits at its end until released."""

    def __init__(self, tmp: Path, log_dir: Path, name: str) -> None:
        script = tmp / "app.py"
        script.write_text(APP)
        self.gate = tmp / "app.gate"
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(log_dir), name, str(self.gate)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ready = tmp / "app.gate.ready"
        wait_until(lambda: ready.exists() or self.process.poll() is not None, 90, f"{name} to run")
        assert ready.exists(), self.process.communicate(timeout=10)[0]
        self.app_id = ready.read_text()

    def finish(self) -> None:
        self.gate.write_text("go")
        self.process.wait(60)
        assert self.process.returncode == 0, self.process.communicate(timeout=10)[0]


@contextlib.contextmanager
def _history_server(log_dir: Path, work: Path) -> Iterator[str]:
    with reaped(work) as pids:
        started = run_cli(
            "start-history-server", "--dir", str(log_dir), "--port", "0", "--work-dir", str(work)
        )
        assert started.returncode == 0, started.stderr + started.stdout
        assert "started history-server http://127.0.0.1:" in started.stdout
        url = started.stdout.split("started history-server ", 1)[1].split()[0]
        pid = int((work / "sparkctl-history-server.pid").read_text())
        pids.append(pid)
        yield url
        stopped = run_cli("stop-history-server", "--work-dir", str(work))
        assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout, stopped.stderr
        wait_until(lambda: not alive(pid), 15, "the history server to exit")
        assert not (work / "sparkctl-history-server.pid").exists()


def test_lists_and_renders_running_then_finished_apps(tmp_path: Path) -> None:
    log_dir = tmp_path / "events"
    log_dir.mkdir()
    app = _App(tmp_path, log_dir, "<script>evil</script>")
    try:
        with _history_server(log_dir, tmp_path / "work") as url:
            (listed,) = _json(url + "/json")
            assert listed["id"] == app.app_id and listed["completed"] is False
            assert listed["name"] == "<script>evil</script>" and listed["endTime"] is None
            status, _, page = _get(url + "/")
            assert status == 200 and "In progress (1)" in page and app.app_id in page
            assert "<script>evil" not in page and "&lt;script&gt;evil" in page
            # The writer flushes whenever its queue runs dry: soon, not at once.
            wait_until(
                lambda: len(_json(f"{url}/history/{app.app_id}/json")["jobs"]) == 2,
                15,
                "the running app's jobs in its log",
            )
            running = _json(f"{url}/history/{app.app_id}/json")
            assert [j["status"] for j in running["jobs"]] == ["SUCCEEDED", "FAILED"]
            assert running["jobs"][0]["group"] == "g1"
            assert running["completed"] is False

            app.finish()
            (listed,) = _json(url + "/json")
            assert listed["completed"] is True and listed["endTime"] >= listed["startTime"]
            assert listed["duration"] == listed["endTime"] - listed["startTime"]
            status, kind, page = _get(f"{url}/history/{app.app_id}/")
            assert status == 200 and kind.startswith("text/html")
            assert "&lt;b&gt;the sum&lt;/b&gt;" in page and "<b>the sum" not in page
            assert f"/history/{app.app_id}/json" in page and "completed</p>" in page
            snapshot = _json(f"{url}/history/{app.app_id}/json")
            stages = {s["stageId"]: s for s in snapshot["stages"]}
            for stage_id in (0, 1):
                stage = stages[stage_id]
                assert (stage["numTasks"], stage["numCompleteTasks"]) == (4, 4)
                assert stage["status"] == "COMPLETE"
            assert stages[2]["status"] == "FAILED" and stages[2]["numFailedTasks"] >= 1
            assert snapshot["tasksCompleted"] == 8
            assert [e["isActive"] for e in snapshot["executors"]] == [False]
            (api,) = _json(url + "/api/v1/applications")
            assert api["id"] == app.app_id and api["attempts"][0]["completed"] is True
            status, _, metrics = _get(f"{url}/history/{app.app_id}/metrics")
            assert 'sparkctl_driver_jobs{status="FAILED"} 1' in metrics
    finally:
        kill_tree(app.process.pid)


def test_hostile_logs_and_requests_are_handled(tmp_path: Path) -> None:
    log_dir = tmp_path / "events"
    log_dir.mkdir()
    start = {"Event": "SparkListenerApplicationStart", "App Name": "a", "App ID": "app-1",
             "Timestamp": 1000, "User": "u"}  # fmt: skip
    job = {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": 1000,
           "Stage IDs": [0], "Properties": {}}  # fmt: skip
    lines = [
        json.dumps(start),
        "garbage",
        json.dumps({"Event": "SparkListenerJobStart", "Job ID": "not a number"}),
        json.dumps(job),
        json.dumps([1, 2, 3]),
        json.dumps({"Event": "SparkListenerApplicationEnd", "Timestamp": 5000}),
    ]
    (log_dir / "app-1").write_text("\n".join(lines) + "\n")
    # An in-progress log whose writer is mid-line, a binary file, an unsupported codec.
    (log_dir / "app-2.inprogress").write_bytes(
        (json.dumps({**start, "App ID": "app-2"}) + "\n").encode() + b'{"Event": "SparkListe'
    )
    (log_dir / "app-3").write_bytes(b"\x00\xff\xfe binary \x00\n")
    (log_dir / "app-4.zstd").write_bytes(b"\x28\xb5\x2f\xfd")
    (log_dir / "notes.txt").write_text("not a log")
    with _history_server(log_dir, tmp_path / "work") as url:
        apps = {a["id"]: a for a in _json(url + "/json")}
        assert sorted(apps) == ["app-1", "app-2", "app-3"]
        assert (apps["app-1"]["completed"], apps["app-1"]["duration"]) == (True, 4000)
        assert apps["app-2"]["completed"] is False and apps["app-2"]["name"] == "a"
        assert apps["app-3"]["startTime"] is None
        assert [j["jobId"] for j in _json(url + "/history/app-1/json")["jobs"]] == [0]
        assert _json(url + "/history/app-2/json")["jobs"] == []
        assert _get(url + "/history/app-3/")[0] == 200
        for path in (
            "/history/..%2F..%2Fetc%2Fpasswd/",
            "/history/../../etc/passwd",
            "/history/app-4/",
            "/history/notes.txt/",
            "/history/%00/json",
            "/history//",
            "/history/app-1/nope",
            "/nope",
        ):
            status, _, body = _get(url + path)
            assert status == 404, (path, status)
            assert "Traceback" not in body and "root:" not in body
        status, _, body = _get(url + "/history/no-such-app/")
        assert status == 404 and "no application 'no-such-app'" in body
        assert _get(url + "/history/app-1")[0] == 200  # redirected to the trailing slash


def test_usage_errors_name_the_flag(tmp_path: Path) -> None:
    with reaped(tmp_path):
        missing = run_cli("start-history-server", "--dir", str(tmp_path / "nope"),
                          "--work-dir", str(tmp_path))  # fmt: skip
        assert missing.returncode == 2 and "'--dir'" in missing.stderr
        assert "does not exist" in missing.stderr
        remote = run_cli("start-history-server", "--dir", str(tmp_path), "--host", "0.0.0.0",
                         "--work-dir", str(tmp_path))  # fmt: skip
        assert remote.returncode == 2 and "--allow-insecure" in remote.stderr
        scheme = run_cli("start-history-server", "--dir", "hdfs://nn/logs",
                         "--work-dir", str(tmp_path))  # fmt: skip
        assert scheme.returncode == 2 and "local" in scheme.stderr
    assert not list(tmp_path.glob("sparkctl-*.pid"))
    assert "Traceback" not in missing.stderr + remote.stderr + scheme.stderr


@pytest.mark.parametrize("via", ["--conf", "properties"])
def test_log_dir_from_spark_history_fs_log_directory(tmp_path: Path, via: str) -> None:
    log_dir = tmp_path / "events"
    log_dir.mkdir()
    key = "spark.history.fs.logDirectory"
    if via == "--conf":
        args = ["--conf", f"{key}=file://{log_dir}"]
    else:
        props = tmp_path / "spark-defaults.conf"
        props.write_text(f"{key} file:{log_dir}\n")
        args = ["--properties-file", str(props)]
    work = tmp_path / "work"
    with reaped(work):
        started = run_cli("start-history-server", "--port", "0", "--work-dir", str(work), *args)
        assert started.returncode == 0, started.stderr
        url = started.stdout.split("started history-server ", 1)[1].split()[0]
        status, _, page = _get(url + "/")
        assert status == 200 and str(log_dir) in page
        assert run_cli("stop-history-server", "--work-dir", str(work)).returncode == 0


def test_foreground_serves_until_sigterm(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    process = subprocess.Popen(
        [*CLI, "start-history-server", "--foreground", "--port", "0",
         "--dir", str(tmp_path / "events"), "--work-dir", str(tmp_path / "work")],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
        reader.start()
        wait_until(lambda: any("history server at" in line for line in lines), 60, "the server")
        (line,) = [x for x in lines if "history server at" in x]
        url = line.split("history server at ", 1)[1].split(",")[0]
        assert url.startswith("http://127.0.0.1:")
        assert _json(url + "/json") == []
        assert not (tmp_path / "work" / "sparkctl-history-server.pid").exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        kill_tree(process.pid)
