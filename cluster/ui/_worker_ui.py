"""The worker's web UI: its executors and drivers, their logs, `/json`, `/metrics`.

Logs are named by ids, never paths, and must lie in the worker's work
directory (see `_logs`). Log text is shown HTML-escaped in a page, or raw as
`text/plain` with `nosniff`, so a log can never act as HTML. This module never
changes the worker's state.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.ui._base import ServedUI, admin_only, error_page, render_page
from cluster.ui._json import driver_state_name, executor_state_name, worker_state_json
from cluster.ui._logs import DEFAULT_CHUNK, LogRequestError, log_path, read_log
from sparkctl.v1 import deploy_pb2
from webui.auth import UIAuth, current_viewer
from webui.server import Query, Response, WebServer, prometheus_text, route_table

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["WorkerWebUI"]

log = logging.getLogger(__name__)

StateSource = Callable[[], deploy_pb2.GetWorkerStateResponse]


def _int_param(query: Query, name: str) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise LogRequestError(f"bad {name} {text[:20]!r}: expected a whole number") from None


class WorkerWebUI(ServedUI):
    """Serves a worker's pages over HTTP.

    The state source may be attached after the server is bound (`attach`),
    because the worker must know the UI's address before it registers.

    Args:
        work_dir: the worker's work directory, the only place logs are read from.
        host: address to bind.
        port: port to bind (8081 by default in the CLI; 0 = any free port).
        state: returns the worker's state (raises when the worker does not answer).
        max_retries: following ports to try when `port` is taken.
        auth: sign-in (None: open). A viewer signed in as an application sees only
            that application's executors and their logs: no drivers, no metrics.
    """

    def __init__(
        self,
        work_dir: Path,
        host: str,
        port: int,
        state: StateSource | None = None,
        max_retries: int = 16,
        auth: UIAuth | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._state_source = state
        self._registry: CollectorRegistry | None = None  # built on the first scrape
        routes = {
            "/": self._index,
            "/logPage": self._log_page,
            "/log": self._log_raw,
            "/json": self._json,
            "/metrics": self._metrics,
        }
        self._server = WebServer(
            route_table(routes),
            host,
            port,
            max_retries=max_retries,
            what="worker web UI",
            not_found=lambda path: error_page(404, "Not Found", f"No page at {path}"),
            auth=auth,
        )

    def attach(self, state: StateSource) -> None:
        """Set where the worker's state comes from."""
        self._state_source = state

    def _state(self) -> deploy_pb2.GetWorkerStateResponse:
        if self._state_source is None:
            raise RuntimeError("the worker is still starting")
        return self._state_source()

    def _read(self) -> deploy_pb2.GetWorkerStateResponse | Response:
        """The worker as the viewer may see it (all, or one application's executors)."""
        try:
            state = self._state()
        except Exception as exc:  # the page says so instead of a 500
            log.warning("web UI: cannot read the worker's state: %s", exc)
            return error_page(503, "Worker unavailable", f"The worker did not answer: {exc}")
        viewer = current_viewer()
        return state if viewer.admin else scoped_worker_state(state, viewer.app_id)

    def _index(self, _query: Query) -> Response:
        state = self._read()
        if isinstance(state, Response):
            return state

        def executor(e: deploy_pb2.ExecutorRunnerSummary) -> dict[str, Any]:
            return {
                "app_id": e.app_id,
                "executor_id": e.executor_id,
                "cores": e.cores,
                "memory_mb": e.memory_mb,
                "state": executor_state_name(e.state),
            }

        def driver(d: deploy_pb2.DriverRunnerSummary) -> dict[str, Any]:
            return {
                "driver_id": d.driver_id,
                "cores": d.cores,
                "memory_mb": d.memory_mb,
                "state": driver_state_name(d.state),
            }

        body = render_page(
            "worker.html",
            state=state,
            running=[executor(e) for e in state.executors],
            finished=[executor(e) for e in state.finished_executors],
            drivers=[driver(d) for d in state.drivers],
            finished_drivers=[driver(d) for d in state.finished_drivers],
        )
        return Response(body)

    def _known_dirs(self) -> dict[tuple[str, str], str]:
        try:
            state = self._state()
        except Exception:  # logs of finished runs stay readable by the default layout
            return {}
        dirs: dict[tuple[str, str], str] = {}
        for e in [*state.executors, *state.finished_executors]:
            if e.work_dir:
                dirs[(e.app_id, str(e.executor_id))] = e.work_dir
        for d in [*state.drivers, *state.finished_drivers]:
            if d.work_dir:
                dirs[(d.driver_id, "")] = d.work_dir
        return dirs

    def _locate(self, query: Query) -> tuple[Path, str, str]:
        log_type = query.get("logType", "stdout")
        app_id, executor_id, driver_id = (
            query.get("appId"),
            query.get("executorId"),
            query.get("driverId"),
        )
        viewer = current_viewer()
        if not viewer.admin and (driver_id is not None or app_id != viewer.app_id):
            # A driver's log is the admin's: the worker cannot tell whose app it ran.
            shown = f"driver {driver_id}" if driver_id is not None else f"application {app_id}"
            raise LogRequestError(
                f"signed in as application {viewer.app_id}, which may not read the logs of "
                f"{shown}: sign in as admin",
                403,
            )
        path = log_path(
            self._work_dir, log_type, app_id, executor_id, driver_id, self._known_dirs()
        )
        if driver_id is not None:
            return (
                path,
                f"{log_type} log of driver {driver_id}",
                urllib.parse.urlencode({"driverId": driver_id, "logType": log_type}),
            )
        title = f"{log_type} log of executor {executor_id} of {app_id}"
        return (
            path,
            title,
            urllib.parse.urlencode(
                {"appId": app_id, "executorId": executor_id, "logType": log_type}
            ),
        )

    def _log_page(self, query: Query) -> Response:
        try:
            path, title, params = self._locate(query)
            length = _int_param(query, "byteLength") or DEFAULT_CHUNK
            chunk = read_log(path, _int_param(query, "offset"), length)
        except LogRequestError as exc:
            return error_page(exc.status, "Log not available", str(exc), "../")
        prev_url = next_url = ""
        if chunk.start > 0:
            prev_url = f"?{params}&offset={max(0, chunk.start - length)}&byteLength={length}"
        if chunk.end < chunk.total:
            next_url = f"?{params}&offset={chunk.end}&byteLength={length}"
        body = render_page(
            "log.html",
            title=title,
            chunk=chunk,
            raw_url=f"../log/?{params}",
            prev_url=prev_url,
            next_url=next_url,
        )
        return Response(body)

    def _log_raw(self, query: Query) -> Response:
        try:
            path, _title, _params = self._locate(query)
            length = _int_param(query, "byteLength") or DEFAULT_CHUNK
            chunk = read_log(path, _int_param(query, "offset"), length)
        except LogRequestError as exc:
            return Response(f"{exc}\n".encode(), "text/plain; charset=utf-8", exc.status)
        return Response(chunk.text.encode("utf-8"), "text/plain; charset=utf-8")

    def _json(self, _query: Query) -> Response:
        state = self._read()
        if isinstance(state, Response):
            return Response(b'{"error": "the worker did not answer"}', "application/json", 503)
        return Response(json.dumps(worker_state_json(state), indent=2).encode(), "application/json")

    def _metrics(self, _query: Query) -> Response:
        from cluster.ui._metrics import worker_registry

        refused = admin_only("the worker's metrics")
        if refused is not None:
            return refused

        if self._registry is None:
            self._registry = worker_registry(self._state)
        return prometheus_text(self._registry)


def scoped_worker_state(
    state: deploy_pb2.GetWorkerStateResponse, app_id: str
) -> deploy_pb2.GetWorkerStateResponse:
    """What a viewer signed in as `app_id` sees of a worker: its executors, no drivers.

    The worker's own address and size stay (the viewer's executors run there);
    what other applications use does not.
    """
    scoped = deploy_pb2.GetWorkerStateResponse(
        worker_id=state.worker_id,
        host=state.host,
        port=state.port,
        cores=state.cores,
        memory_mb=state.memory_mb,
        master_url=state.master_url,
        master_webui_url=state.master_webui_url,
    )
    scoped.executors.extend(e for e in state.executors if e.app_id == app_id)
    scoped.finished_executors.extend(e for e in state.finished_executors if e.app_id == app_id)
    return scoped
