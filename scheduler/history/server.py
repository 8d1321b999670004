"""The history server's HTTP side (Spark's port 18080): past and running applications.

`/` lists the applications of the event log directory (HTML), `/json` the
same for scripts, `/api/v1/applications` in the shape of Spark's REST API
(and `/api/v1/applications/<id>/...` for one application, as Spark's
history server answers it). `/history/<app id>/...` shows one application
with the driver UI's own pages (`AppPages`), from its log replayed into the
driver UI's store, so a finished application looks as it did running. An
unknown application or page is a 404 that says so; a failure is a 500 with
one line, never a traceback. Everything from a log is escaped. The server is
read-only. Unlike Spark's, it asks for a UI credential when it has the cluster
secret (`webui.auth`): the admin sees every application, an application's own
credential only that application (in the lists too); anything else is a 403.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from typing import Any

from scheduler._version import SPARK_VERSION
from scheduler.history.provider import AppEntry, HistoryProvider
from scheduler.status.ui import AppPages
from scheduler.status.ui._web import render, serve
from webui.auth import UIAuth, current_viewer
from webui.server import Query, Response

__all__ = ["HistoryServer"]

log = logging.getLogger(__name__)

_APP_API = re.compile(r"^/api/v1/applications/([^/]+)(/.*)?$")


def _api_time(ms: int | None) -> str:
    """Spark's REST API date format, e.g. 2026-11-22T22:49:38.901GMT."""
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}GMT"


def _spark_api(apps: list[AppEntry]) -> list[dict[str, Any]]:
    """The applications in the shape of Spark's /api/v1/applications."""
    out = []
    for app in apps:
        attempt = {
            "startTime": _api_time(app.start_ms),
            "endTime": _api_time(app.end_ms) if app.completed else "",
            "lastUpdated": _api_time(app.last_updated_ms),
            "duration": app.duration_ms or 0,
            "sparkUser": app.user,
            "completed": app.completed,
            "appSparkVersion": app.spark_version,
            "startTimeEpoch": app.start_ms if app.start_ms is not None else -1,
            "endTimeEpoch": app.end_ms if app.completed and app.end_ms is not None else -1,
            "lastUpdatedEpoch": app.last_updated_ms,
        }
        out.append({"id": app.app_id, "name": app.name, "attempts": [attempt]})
    return out


def _refusal(app_id: str) -> str:
    viewer = current_viewer().app_id
    return (
        f"signed in as application {viewer}, which may not see application {app_id}: "
        "sign in as admin"
    )


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc).encode(), "application/json", status)


class HistoryServer:
    """The HTTP server of the history UI.

    Args:
        provider: the applications of the log directory.
        host: address to bind (127.0.0.1 unless told otherwise).
        port: the port (0 = any free one); a taken one moves to the next, `max_retries` times.
        auth: sign-in (None: open, as Spark's).

    Raises:
        OSError: no free port, or the host cannot be bound.
    """

    def __init__(
        self,
        provider: HistoryProvider,
        host: str,
        port: int,
        max_retries: int = 16,
        auth: UIAuth | None = None,
    ) -> None:
        self.provider = provider
        self._server = serve(self.route, host, port, max_retries, "history server", auth)
        self.url = self._server.url
        self.port = self._server.port

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def _applications(self) -> list[AppEntry]:
        """The applications the viewer may see (all of them for the admin)."""
        viewer = current_viewer()
        return [a for a in self.provider.applications() if viewer.may_see(a.app_id)]

    def route(self, path: str, query: Query) -> Response | None:
        """The answer for `path`, or None (404)."""
        trimmed = path.rstrip("/") or "/"
        if trimmed == "/":
            apps = self._applications()
            return render(
                "history.html",
                completed=[a for a in apps if a.completed],
                running=[a for a in apps if not a.completed],
                log_dir=str(self.provider.log_dir),
            )
        if trimmed == "/json":
            return _json([a.to_json() for a in self._applications()])
        if trimmed == "/api/v1/version":
            return _json({"spark": SPARK_VERSION})
        if trimmed == "/api/v1/applications":
            return _json(_spark_api(self._applications()))
        match = _APP_API.match(trimmed)
        if match is not None:
            app_id = urllib.parse.unquote(match.group(1))
            if not current_viewer().may_see(app_id):
                return _json({"message": _refusal(app_id)}, 403)
            app = self.provider.find(app_id)
            if app is None:
                return _json({"message": f"unknown app: {match.group(1)}"}, 404)
            pages = self._pages(app)
            if not (match.group(2) or "").strip("/"):
                return _json(_spark_api([app])[0])
            return pages.api(trimmed, query)
        if path.startswith("/history/"):
            return self._app_page(path[len("/history/") :], query)
        return None

    def _pages(self, app: AppEntry) -> AppPages:
        base = "/history/" + urllib.parse.quote(app.app_id, safe="")
        end = app.end_ms / 1000.0 if app.completed and app.end_ms else None
        return AppPages(
            self.provider.store(app),
            base,
            live=not app.completed,
            home=("History Server", "/"),
            end_time=end,
        )

    def _app_page(self, rest: str, query: Query) -> Response | None:
        raw_id, slash, sub = rest.partition("/")
        app_id = urllib.parse.unquote(raw_id)
        if app_id and not current_viewer().may_see(app_id):
            return Response.text(403, _refusal(app_id))
        app = self.provider.find(app_id) if app_id else None
        if app is None:
            return Response.text(
                404, f"no application {app_id!r} in the event log directory {self.provider.log_dir}"
            )
        pages = self._pages(app)
        if not slash:  # relative links need the trailing slash
            return Response.redirect(pages.base + "/")
        if sub.strip("/").startswith("api/"):
            return None  # the REST API lives at /api/v1/applications/<id>/ (Spark's path)
        return pages.route("/" + sub, query)
