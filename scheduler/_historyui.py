"""The history server's HTTP side (Spark's port 18080): past and running applications.

`/` lists the applications of the event log directory (HTML), `/json` the
same for scripts, `/api/v1/applications` in the shape of Spark's REST API;
`/history/<app id>/` shows one application by replaying its log into the
driver UI's store and rendering it with the driver UI's pages (`.../json`,
`.../metrics` too). An unknown application or page is a 404 that says so;
a failure is a 500 with one line, never a traceback. Everything from a log
is escaped. The server is read-only and, like Spark's, unauthenticated.
"""

from __future__ import annotations

import html
import json
import logging
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

from scheduler._history import AppEntry, HistoryProvider
from scheduler._ui import ServedHTTP, render

__all__ = ["HistoryServer"]

log = logging.getLogger(__name__)

_STYLE = (
    "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px}</style>"
)


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + " GMT"


def _duration(ms: int | None) -> str:
    if ms is None:
        return ""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rows(apps: list[AppEntry]) -> str:
    rows = []
    for app in apps:
        link = "/history/" + urllib.parse.quote(app.app_id, safe="") + "/"
        cells = [
            f"<a href='{html.escape(link)}'>{html.escape(app.app_id)}</a>",
            html.escape(app.name),
            html.escape(_when(app.start_ms)),
            html.escape(_when(app.end_ms) if app.completed else ""),
            html.escape(_duration(app.duration_ms)),
            html.escape(app.user),
            "completed" if app.completed else "in progress",
            html.escape(_when(app.last_updated_ms)),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return "".join(rows)


def _listing_page(apps: list[AppEntry], log_dir: str) -> str:
    head = "".join(
        f"<th>{c}</th>"
        for c in (
            "App ID", "App Name", "Started", "Completed", "Duration", "Spark User", "State",
            "Last Updated",
        )
    )  # fmt: skip
    finished = [a for a in apps if a.completed]
    running = [a for a in apps if not a.completed]
    sections = []
    for title, group in (("Completed applications", finished), ("In progress", running)):
        body = _rows(group) if group else "<tr><td colspan='8'>none</td></tr>"
        sections.append(
            f"<h2>{title} ({len(group)})</h2><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>History Server</title>"
        f"{_STYLE}</head><body><h1>History Server</h1>"
        f"<p>Event log directory: {html.escape(log_dir)}</p>{''.join(sections)}"
        "<p><a href='/json'>json</a></p></body></html>"
    )


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


class HistoryServer(ServedHTTP):
    """The HTTP server of the history UI.

    Args:
        provider: the applications of the log directory.
        host: address to bind (127.0.0.1 unless told otherwise).
        port: the port (0 = any free one); a taken one moves to the next, `max_retries` times.
    """

    def __init__(
        self, provider: HistoryProvider, host: str, port: int, max_retries: int = 16
    ) -> None:
        self.provider = provider
        super().__init__(self._handler(), host, port, max_retries + 1, "history server")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self.provider

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    self._get()
                except Exception as exc:  # one line for the client, the details in the log
                    log.exception("history server: %s failed", self.path)
                    message = f"internal error: {type(exc).__name__}\n"
                    self._send(500, message.encode(), "text/plain")

            def _get(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                trimmed = path.rstrip("/") or "/"
                if trimmed == "/":
                    page = _listing_page(provider.applications(), str(provider.log_dir))
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif trimmed in ("/json", "/api/v1/applications"):
                    apps = provider.applications()
                    doc: Any = (
                        [a.to_json() for a in apps] if trimmed == "/json" else _spark_api(apps)
                    )
                    self._send(200, json.dumps(doc).encode(), "application/json")
                elif path.startswith("/history/"):
                    self._app_page(path[len("/history/") :])
                else:
                    self._send(404, b"no such page\n", "text/plain")

            def _app_page(self, rest: str) -> None:
                raw_id, slash, sub = rest.partition("/")
                app_id = urllib.parse.unquote(raw_id)
                app = provider.find(app_id) if app_id else None
                if app is None:
                    message = (
                        f"no application {app_id!r} in the event log directory {provider.log_dir}\n"
                    )
                    self._send(404, message.encode(), "text/plain; charset=utf-8")
                    return
                base = "/history/" + urllib.parse.quote(app.app_id, safe="")
                if not slash:  # relative links need the trailing slash
                    self.send_response(302)
                    self.send_header("Location", base + "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                page = render(provider.snapshot(app), "/" + sub.rstrip("/"), base)
                if page is None:
                    self._send(404, b"no such page\n", "text/plain")
                    return
                body, kind = page
                if kind.startswith("text/html"):
                    state = "completed" if app.completed else "in progress"
                    nav = f"<body><p><a href='/'>History Server</a> &middot; {state}</p>"
                    body = body.replace(b"<body>", nav.encode(), 1)
                self._send(200, body, kind)

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("history: " + format, *args)

        return Handler
