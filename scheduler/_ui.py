"""The driver's application UI (port 4040 or the next free one): jobs, stages, executors.

`AppStatusStore` listens to the task scheduler's events and keeps a bounded
history; `DriverUI` serves it on a small threaded HTTP server: an HTML page
for people (everything user-supplied escaped), `/json` for scripts and
`/metrics` in Prometheus text format. It binds the driver's bind address
(spark.driver.bindAddress, else the address the driver advertises) and never changes
scheduler state.
"""

from __future__ import annotations

import html
import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["AppStatusStore", "DriverUI", "ServedHTTP", "render"]

log = logging.getLogger(__name__)

_RETAINED = 1000
_PORT_RETRIES = 16


class AppStatusStore:
    """What the UI shows, updated from scheduler events (thread-safe)."""

    def __init__(self, app_id: str, app_name: str) -> None:
        self.app_id = app_id
        self.app_name = app_name
        self.start_time = time.time()
        self._lock = threading.Lock()
        self.jobs: dict[int, dict[str, Any]] = {}
        self.stages: dict[str, dict[str, Any]] = {}
        self.executors: dict[str, dict[str, Any]] = {}
        self.tasks_completed = 0
        self.tasks_failed = 0

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "task_end":  # the hot one: once per task
            with self._lock:
                stage = self.stages.get(f"{data['stage_id']}.{data.get('attempt', 0)}")
                ok = data["ok"]
                if ok:
                    self.tasks_completed += 1
                else:
                    self.tasks_failed += 1
                if stage is not None:
                    stage["numCompleteTasks" if ok else "numFailedTasks"] += 1
            return
        now = data.get("time") or time.time()  # a replayed event brings its own time
        with self._lock:
            if event == "job_start":
                self.jobs[data["job_id"]] = {
                    "jobId": data["job_id"],
                    "group": data.get("group"),
                    "description": data.get("description"),
                    "stageIds": data.get("stage_ids", []),
                    "status": "RUNNING",
                    "submissionTime": now,
                    "completionTime": None,
                }
            elif event == "job_end" and data["job_id"] in self.jobs:
                self.jobs[data["job_id"]].update(status=data["status"], completionTime=now)
            elif event == "stage_submitted":
                key = f"{data['stage_id']}.{data['attempt']}"
                self.stages[key] = {
                    "stageId": data["stage_id"],
                    "attemptId": data["attempt"],
                    "jobId": data["job_id"],
                    "numTasks": data["num_tasks"],
                    "numCompleteTasks": 0,
                    "numFailedTasks": 0,
                    "status": "ACTIVE",
                    "submissionTime": now,
                    "completionTime": None,
                }
            elif event == "stage_completed":
                stage = self.stages.get(f"{data['stage_id']}.{data['attempt']}")
                if stage is not None:
                    done = stage["numCompleteTasks"] >= stage["numTasks"]
                    stage.update(status="COMPLETE" if done else "FAILED", completionTime=now)
            elif event == "executor_added":
                self.executors[data["executor_id"]] = {
                    "id": data["executor_id"],
                    "hostPort": data.get("host", ""),
                    "totalCores": data.get("cores", 0),
                    "isActive": True,
                    "addTime": now,
                    "removeReason": None,
                }
            elif event == "executor_removed" and data["executor_id"] in self.executors:
                self.executors[data["executor_id"]].update(
                    isActive=False, removeReason=data.get("reason")
                )
            self._trim()

    def _trim(self) -> None:
        for table in (self.jobs, self.stages):
            while len(table) > _RETAINED:
                del table[next(iter(table))]  # type: ignore[arg-type]

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Everything shown, with durations up to `now` (default: the current time)."""
        now = time.time() if now is None else now
        with self._lock:
            return {
                "id": self.app_id,
                "name": self.app_name,
                "startTime": self.start_time,
                "jobs": [_with_duration(j, now) for j in self.jobs.values()],
                "stages": [_with_duration(s, now) for s in self.stages.values()],
                "executors": [dict(e) for e in self.executors.values()],
                "tasksCompleted": self.tasks_completed,
                "tasksFailed": self.tasks_failed,
            }


def _with_duration(record: dict[str, Any], now: float) -> dict[str, Any]:
    """A copy with `duration` in seconds (so far, while running)."""
    end = record.get("completionTime") or now
    return {**record, "duration": round(end - record["submissionTime"], 3)}


def _metrics(snapshot: dict[str, Any]) -> str:
    jobs = snapshot["jobs"]
    lines = [
        "# HELP sparkctl_driver_jobs Jobs of this application by status.",
        "# TYPE sparkctl_driver_jobs gauge",
    ]
    for status in ("RUNNING", "SUCCEEDED", "FAILED"):
        count = sum(1 for j in jobs if j["status"] == status)
        lines.append(f'sparkctl_driver_jobs{{status="{status}"}} {count}')
    active_stages = sum(1 for s in snapshot["stages"] if s["status"] == "ACTIVE")
    active_executors = sum(1 for e in snapshot["executors"] if e["isActive"])
    lines += [
        "# HELP sparkctl_driver_active_stages Stages running now.",
        "# TYPE sparkctl_driver_active_stages gauge",
        f"sparkctl_driver_active_stages {active_stages}",
        "# HELP sparkctl_driver_executors Executors registered now.",
        "# TYPE sparkctl_driver_executors gauge",
        f"sparkctl_driver_executors {active_executors}",
        "# HELP sparkctl_driver_tasks_total Finished tasks by outcome.",
        "# TYPE sparkctl_driver_tasks_total counter",
        f'sparkctl_driver_tasks_total{{outcome="success"}} {snapshot["tasksCompleted"]}',
        f'sparkctl_driver_tasks_total{{outcome="failure"}} {snapshot["tasksFailed"]}',
    ]
    return "\n".join(lines) + "\n"


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(snapshot: dict[str, Any], base: str = "") -> str:
    title = html.escape(f"{snapshot['name']} - {snapshot['id']}")
    jobs = _table(
        list(reversed(snapshot["jobs"])),
        ["jobId", "description", "group", "status", "stageIds", "duration"],
    )
    stages = _table(
        list(reversed(snapshot["stages"])),
        ["stageId", "attemptId", "jobId", "status", "numTasks", "numCompleteTasks",
         "numFailedTasks", "duration"],
    )  # fmt: skip
    executors = _table(snapshot["executors"], ["id", "hostPort", "totalCores", "isActive"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head>"
        f"<body><h1>{title}</h1><h2>Jobs</h2>{jobs}<h2>Stages</h2>{stages}"
        f"<h2>Executors</h2>{executors}<p><a href='{html.escape(base)}/json'>json</a> "
        f"<a href='{html.escape(base)}/metrics'>metrics</a></p></body></html>"
    )


def render(snapshot: dict[str, Any], path: str, base: str = "") -> tuple[bytes, str] | None:
    """The body and content type of an application page (`path` below `base`), else None.

    Shared by the driver's UI and the history server, which serves replayed
    applications under /history/<app id>.
    """
    if path == "/json":
        return json.dumps(snapshot).encode(), "application/json"
    if path == "/metrics":
        return _metrics(snapshot).encode(), "text/plain; version=0.0.4"
    if path in ("/", "/jobs", "/stages", "/executors"):
        return _page(snapshot, base).encode(), "text/html; charset=utf-8"
    return None


class _IPv6HTTPServer(ThreadingHTTPServer):
    """For a driver on an IPv6 address (a master reached over IPv6)."""

    address_family = socket.AF_INET6


class ServedHTTP:
    """A threaded HTTP server on the first free port from `port` (0: any), in a daemon thread.

    Raises:
        OSError: none of `candidates` ports from `port` was free.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        host: str,
        port: int,
        candidates: int,
        what: str,
    ) -> None:
        server: ThreadingHTTPServer | None = None
        last_error: OSError | None = None
        server_class = _IPv6HTTPServer if ":" in host else ThreadingHTTPServer
        for candidate in range(port, port + candidates) if port else [0]:
            try:
                server = server_class((host, candidate), handler)
                break
            except OSError as exc:
                last_error = exc
        if server is None:
            raise OSError(f"no free port for the {what} from {port}: {last_error}")
        server.daemon_threads = True
        self._server = server
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{server.server_address[1]}"
        # stop() waits for the serving loop to notice: a short poll keeps that wait
        # (and so every application's exit) under 50 ms instead of the default 0.5 s.
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=what.replace(" ", "-"),
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class DriverUI(ServedHTTP):
    """The HTTP server of the application UI."""

    def __init__(
        self, store: AppStatusStore, host: str, port: int, advertise: str | None = None
    ) -> None:
        self.store = store
        super().__init__(self._handler(), host, port, _PORT_RETRIES, "application UI")
        if advertise and advertise != host:
            # Bound to spark.driver.bindAddress: people reach it at the advertised host.
            shown = f"[{advertise}]" if ":" in advertise else advertise
            self.url = f"http://{shown}:{self._server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        store = self.store

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                page = render(store.snapshot(), path)
                if page is None:
                    self.send_error(404, "no such page")
                    return
                body, kind = page
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("ui: " + format, *args)

        return Handler
