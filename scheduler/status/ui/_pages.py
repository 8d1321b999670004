"""The application UI's pages and REST API for one status store, at Spark's paths.

`AppPages.route(path, query)` answers a path below the app's base: the
driver UI mounts it at `/`, the history server at `/history/<app id>`.
HTML pages (`/jobs/`, `/jobs/job/?id=N`, `/stages/`,
`/stages/stage/?id=N&attempt=M`, `/storage/`, `/environment/`,
`/executors/`), `/json` (a compact snapshot for scripts), `/metrics`
(Prometheus) and Spark's `/api/v1/applications/...`. A bad query (an id
that is not a number, an unknown stage) is a 404 or 400 that says what was
wrong. Pages read the store only through `_views`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from scheduler._version import SPARK_VERSION
from scheduler.status.ui import _pictures, _views
from scheduler.status.ui._store import AppStatusStore
from scheduler.status.ui._web import render
from webui.server import Query, Response, prometheus

__all__ = ["AppPages", "api_json"]

TABS = (("jobs", "Jobs"), ("stages", "Stages"), ("storage", "Storage"),
        ("environment", "Environment"), ("executors", "Executors"))  # fmt: skip
#: Task rows per page of the stage page (Spark's task.pageSize default).
TASK_PAGE = 100
_API = re.compile(r"^/api/v1/applications(?:/([^/]+)(/.*)?)?$")


def api_json(doc: Any, status: int = 200) -> Response:
    """A REST API answer (the `_` extras of the views left out)."""
    return Response(json.dumps(_views.public(doc)).encode(), "application/json", status)


def _int(query: Query, key: str) -> int | None:
    try:
        return int(query[key])
    except (KeyError, ValueError):
        return None


class AppPages:
    """The pages of one application.

    Args:
        store: what to show.
        base: the path prefix the pages are served under ("" for the driver UI).
        live: whether the app may still change (pages then refresh themselves).
        home: (label, URL) of a link back (the history server's listing), or None.
    """

    def __init__(
        self,
        store: AppStatusStore,
        base: str = "",
        live: bool = True,
        home: tuple[str, str] | None = None,
        end_time: float | None = None,
    ) -> None:
        self.store = store
        self.base = base
        self.live = live
        self.home = home
        self.end_time = end_time

    def route(self, path: str, query: Query) -> Response | None:
        """The answer for `path` (below the base), or None for an unknown path."""
        trimmed = path.rstrip("/") or "/"
        if trimmed == "/":
            return Response.redirect(f"{self.base}/jobs/")
        if trimmed.startswith("/api/v1/"):
            return self.api(trimmed, query)
        page = {
            "/jobs": self._jobs,
            "/jobs/job": self._job,
            "/stages": self._stages,
            "/stages/stage": self._stage,
            "/storage": self._storage,
            "/environment": self._environment,
            "/executors": self._executors,
            "/json": self._json,
            "/metrics": self._metrics,
        }.get(trimmed)
        return page(query) if page is not None else None

    # -- pages ---------------------------------------------------------------------------

    def _page(self, template: str, tab: str, title: str, **context: Any) -> Response:
        with self.store.lock:
            app_id, app_name = self.store.app_id, self.store.app_name
        return render(
            template,
            base=self.base,
            tab=tab,
            tabs=TABS,
            title=title,
            app_id=app_id,
            app_name=app_name,
            live=self.live,
            home=self.home,
            completed=self.end_time is not None or self.store.end_time is not None,
            poll=f"/api/v1/applications/{app_id}/jobs",
            **context,
        )

    def _now(self) -> float | None:
        return self.end_time

    def _jobs(self, query: Query) -> Response:
        now = self._now()
        jobs = _views.jobs(self.store, now)
        app = _views.application_info(self.store, now)
        executors = _views.executors(self.store, now)
        attempt = app["attempts"][0]
        start = self.store.start_time
        end = (attempt["lastUpdatedEpoch"] or 0) / 1000.0
        picture = _pictures.timeline(start, end, executors, _pictures.job_bars(jobs, self.base))
        stream = _pictures.task_stream(_views.task_stream(self.store, now))
        groups = {
            "Active Jobs": [j for j in jobs if j["status"] == "RUNNING"],
            "Completed Jobs": [j for j in jobs if j["status"] == "SUCCEEDED"],
            "Failed Jobs": [j for j in jobs if j["status"] not in ("RUNNING", "SUCCEEDED")],
        }
        return self._page(
            "jobs.html", "jobs", "Spark Jobs", groups=groups, app=attempt, timeline=picture,
            stream=stream, start=start,
        )  # fmt: skip

    def _job(self, query: Query) -> Response:
        job_id = _int(query, "id")
        if job_id is None:
            return Response.text(400, "missing or bad parameter id: a job id is a number")
        data = _views.job(self.store, job_id, self._now())
        if data is None:
            return Response.text(
                404, f"no job {job_id} (unknown, or dropped by spark.ui.retainedJobs)"
            )
        stages = data["_stages"]
        picture = _pictures.dag(stages, self.base)
        groups = _stage_groups(stages)
        executors = _views.executors(self.store, self._now())
        finish = data["_completed"] or data["_submitted"] + data["_duration_ms"] / 1000
        events = _pictures.timeline(
            data["_submitted"], finish, executors, _pictures.stage_bars(stages, self.base)
        )
        return self._page(
            "job.html", "jobs", f"Details for Job {job_id}", job=data, dag=picture, groups=groups,
            timeline=events,
        )  # fmt: skip

    def _stages(self, query: Query) -> Response:
        stages = _views.stages(self.store, self._now())
        return self._page(
            "stages.html", "stages", "Stages for All Jobs", groups=_stage_groups(stages)
        )

    def _stage(self, query: Query) -> Response:
        stage_id = _int(query, "id")
        if stage_id is None:
            return Response.text(400, "missing or bad parameter id: a stage id is a number")
        attempt = _int(query, "attempt") if "attempt" in query else None
        if "attempt" in query and attempt is None:
            return Response.text(400, "bad parameter attempt: a stage attempt is a number")
        page = _int(query, "task.page") or 1
        size = min(max(_int(query, "task.pageSize") or TASK_PAGE, 1), 10_000)
        if page < 1:
            return Response.text(400, "bad parameter task.page: pages count from 1")
        window = ((page - 1) * size, size)
        data = _views.stage(self.store, stage_id, attempt, self._now(), window)
        if data is None:
            return Response.text(
                404, f"no stage {stage_id} attempt {attempt if attempt is not None else 'any'}"
            )
        picture = _pictures.dag([data], self.base)
        tasks = list(data["tasks"].values())
        pages = max(1, -(-data["_task_count"] // size))
        link = (
            f"{self.base}/stages/stage/?id={data['stageId']}&attempt={data['attemptId']}"
            f"&task.pageSize={size}&task.page="
        )
        paging = {"page": page, "size": size, "pages": pages, "link": link}
        recent = _views.task_stream(self.store, self._now())
        stream = _pictures.task_stream(
            {
                "cores": recent["cores"],
                "spans": [
                    (t["executorId"], data["stageId"], t["taskId"], t["_ran_from"],
                     None if t["status"] == "RUNNING" else t["_finish"], t["status"])
                    for t in tasks
                ],
                "now": recent["now"],
            }
        )  # fmt: skip
        return self._page(
            "stage.html", "stages",
            f"Details for Stage {data['stageId']} (Attempt {data['attemptId']})",
            stage=data, tasks=tasks, dag=picture, stream=stream, paging=paging,
        )  # fmt: skip

    def _storage(self, query: Query) -> Response:
        return self._page("storage.html", "storage", "Storage", rdds=_views.storage(self.store))

    def _environment(self, query: Query) -> Response:
        env = _views.environment(self.store)
        return self._page(
            "environment.html", "environment", "Environment", sections=env["_sections"]
        )

    def _executors(self, query: Query) -> Response:
        # The driver first, as on Spark's page (and in its REST API).
        executors = [_views.driver(self.store), *_views.executors(self.store, self._now())]
        return self._page("executors.html", "executors", "Executors", executors=executors)

    # -- for scripts -----------------------------------------------------------------------

    def _json(self, query: Query) -> Response:
        """A compact snapshot (oldest first), as sparkctl's driver UI always served it."""
        now = self._now()
        jobs = [
            {**j, "group": j["jobGroup"], "duration": (j["_duration_ms"] or 0) / 1000}
            for j in reversed(_views.jobs(self.store, now))
        ]
        stages = [
            {**s, "jobId": s["_job_id"], "duration": (s["_duration_ms"] or 0) / 1000}
            for s in reversed(_views.stages(self.store, now))
        ]
        with self.store.lock:
            head = {
                "id": self.store.app_id,
                "name": self.store.app_name,
                "startTime": self.store.start_time,
                "tasksCompleted": self.store.tasks_completed,
                "tasksFailed": self.store.tasks_failed,
                "completed": self.store.end_time is not None,
                "endTime": self.store.end_time,
            }
        doc = {
            **head,
            "jobs": jobs,
            "stages": stages,
            "executors": _views.executors(self.store, now),
        }
        return api_json(doc)

    def _metrics(self, query: Query) -> Response:
        now = self._now()
        jobs = _views.jobs(self.store, now)
        stages = _views.stages(self.store, now)
        executors = _views.executors(self.store, now)
        with self.store.lock:
            done, failed = self.store.tasks_completed, self.store.tasks_failed
        by_status = [
            ({"status": s}, sum(1 for j in jobs if j["status"] == s))
            for s in ("RUNNING", "SUCCEEDED", "FAILED")
        ]
        return prometheus(
            [
                ("sparkctl_driver_jobs", "Jobs of this application by status.", "gauge", by_status),
                ("sparkctl_driver_active_stages", "Stages running now.", "gauge",
                 [({}, sum(1 for s in stages if s["status"] == "ACTIVE"))]),
                ("sparkctl_driver_executors", "Executors registered now.", "gauge",
                 [({}, sum(1 for e in executors if e["isActive"]))]),
                ("sparkctl_driver_active_tasks", "Tasks running now.", "gauge",
                 [({}, sum(e["activeTasks"] for e in executors))]),
                ("sparkctl_driver_tasks_total", "Finished tasks by outcome.", "counter",
                 [({"outcome": "success"}, done), ({"outcome": "failure"}, failed)]),
            ]
        )  # fmt: skip

    def api(self, path: str, query: Query | None = None) -> Response | None:
        """Spark's REST API for this application (`path` from /api/v1/)."""
        if path == "/api/v1/version":
            return api_json({"spark": SPARK_VERSION})
        match = _API.match(path)
        if match is None:
            return None
        app_id, rest = match.group(1), (match.group(2) or "").rstrip("/")
        now = self._now()
        if app_id is None:
            return api_json([_views.application_info(self.store, now)])
        if app_id != self.store.app_id:
            return api_json({"message": f"unknown app: {app_id}"}, 404)
        parts = [p for p in rest.split("/") if p]
        if not parts:
            return api_json(_views.application_info(self.store, now))
        head, args = parts[0], parts[1:]
        if head == "jobs" and not args:
            return _by_status(_views.jobs(self.store, now), query, _JOB_STATUSES)
        if head == "jobs" and len(args) == 1 and args[0].isdigit():
            job = _views.job(self.store, int(args[0]), now)
            return (
                api_json(job)
                if job is not None
                else api_json({"message": f"unknown job: {args[0]}"}, 404)
            )
        if head == "stages" and not args:
            return _by_status(_views.stages(self.store, now), query, _STAGE_STATUSES)
        if head == "stages" and 1 <= len(args) <= 2 and all(a.isdigit() for a in args):
            stage_id = int(args[0])
            if len(args) == 2:
                one = _views.stage(self.store, stage_id, int(args[1]), now)
                if one is None:
                    return api_json({"message": f"unknown stage: {stage_id}.{args[1]}"}, 404)
                return api_json(one)
            attempts = [
                _views.stage(self.store, stage_id, s["attemptId"], now)
                for s in _views.stages(self.store, now)
                if s["stageId"] == stage_id
            ]
            if not attempts:
                return api_json({"message": f"unknown stage: {stage_id}"}, 404)
            return api_json(attempts)
        if (
            head == "stages"
            and len(args) == 3
            and args[0].isdigit()
            and args[1].isdigit()
            and args[2] == "taskList"
        ):
            return self._task_list(int(args[0]), int(args[1]), query or {}, now)
        if head in ("executors", "allexecutors") and not args:
            executors = [_views.driver(self.store), *_views.executors(self.store, now)]
            if head == "executors":
                executors = [e for e in executors if e["isActive"]]
            return api_json(executors)
        if head == "environment" and not args:
            return api_json(_views.environment(self.store))
        if head == "storage" and args == ["rdd"]:
            return api_json(_views.storage(self.store))
        return api_json({"message": f"unknown API path: /api/v1/applications/{app_id}{rest}"}, 404)

    def _task_list(self, stage_id: int, attempt: int, query: Query, now: float | None) -> Response:
        """Spark's taskList: `length` (20) tasks from `offset` (0) in `sortBy` order,
        optionally of one `status` (RUNNING, SUCCESS, FAILED, KILLED)."""
        offset, length = _int(query, "offset"), _int(query, "length")
        offset = 0 if offset is None else offset
        length = 20 if length is None else length
        if offset < 0 or length < 0:
            return api_json({"message": "offset and length must not be negative"}, 400)
        sort_by = query.get("sortBy", "ID")
        sorting = _TASK_SORTS.get(sort_by)
        if sorting is None:
            message = f"unknown sortBy {sort_by[:40]!r}: expected ID, runtime or -runtime"
            return api_json({"message": message}, 400)
        one = _views.stage(self.store, stage_id, attempt, now)
        if one is None:
            return api_json({"message": f"unknown stage: {stage_id}.{attempt}"}, 404)
        tasks = list(one["tasks"].values())
        status = query.get("status")
        if status:
            tasks = [t for t in tasks if t["status"] == status.upper()]
        key, descending = sorting
        tasks.sort(key=key, reverse=descending)
        return api_json(tasks[offset : offset + length])


#: Spark's JobExecutionStatus and StageStatus: the `?status=` filters of /jobs and /stages.
_JOB_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "UNKNOWN")
_STAGE_STATUSES = ("ACTIVE", "COMPLETE", "PENDING", "SKIPPED", "FAILED")


def _by_status(
    items: list[dict[str, Any]], query: Query | None, known: tuple[str, ...]
) -> Response:
    """`items` of the `status` the query names (any case), or all; an unknown one is a 400."""
    wanted = (query or {}).get("status")
    if not wanted:
        return api_json(items)
    if wanted.upper() not in known:
        message = f"unknown status {wanted[:40]!r}: expected one of {', '.join(known)}"
        return api_json({"message": message}, 400)
    return api_json([i for i in items if i["status"] == wanted.upper()])


def _by_id(task: dict[str, Any]) -> Any:
    return task["taskId"]


def _by_runtime(task: dict[str, Any]) -> Any:
    return (task["taskMetrics"]["executorRunTime"], task["taskId"])  # Spark's EXEC_RUN_TIME


#: Spark's taskList `sortBy` values: (key, descending).
_TASK_SORTS: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = {
    "ID": (_by_id, False),
    "runtime": (_by_runtime, False),
    "-runtime": (_by_runtime, True),
}


def _stage_groups(stages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Spark's sections of the stages pages."""
    return {
        "Active Stages": [s for s in stages if s["status"] == "ACTIVE"],
        "Pending Stages": [s for s in stages if s["status"] == "PENDING"],
        "Completed Stages": [s for s in stages if s["status"] == "COMPLETE"],
        "Skipped Stages": [s for s in stages if s["status"] == "SKIPPED"],
        "Failed Stages": [s for s in stages if s["status"] == "FAILED"],
    }
