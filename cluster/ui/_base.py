"""What the master and worker UIs share on top of `webui`: their templates, ServedUI.

The server, headers, formatters and Prometheus text are `webui.server`'s; this
module only names the cluster's template folder (timestamps there are protobuf
milliseconds, and addresses get a path appended, hence `time` and `safe_url`
below) and the start/stop shape of both UIs. It never touches cluster state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from webui.auth import current_viewer
from webui.server import Response, Templates, WebServer, base_url, format_time_ms

__all__ = ["ServedUI", "admin_only", "error_page", "forbidden", "render_page"]

log = logging.getLogger(__name__)

_TEMPLATES = Templates(
    Path(__file__).parent / "templates",
    {"time": format_time_ms, "safe_url": base_url},
)


def render_page(template: str, **context: Any) -> bytes:
    """Render one of the cluster's templates with `context` to UTF-8 bytes."""
    return _TEMPLATES.render(template, **context)


def error_page(status: int, title: str, message: str, home: str = "/") -> Response:
    """An HTML error page (404, 503) that says what was wrong."""
    return _TEMPLATES.page("error.html", status, title=title, message=message, home=home)


def forbidden(what: str, home: str = "/") -> Response:
    """The 403 of a viewer signed in as one application asking for something else."""
    app_id = current_viewer().app_id
    return error_page(
        403,
        "Not your application",
        f"Signed in as application {app_id}, which may not see {what}: sign in as admin.",
        home,
    )


def admin_only(what: str) -> Response | None:
    """None when the viewer is the admin (or sign-in is off), else the 403 for `what`."""
    return None if current_viewer().admin else forbidden(what)


class ServedUI:
    """What the master and worker UIs share: one WebServer, started and stopped as a unit."""

    _server: WebServer

    @property
    def port(self) -> int:
        """The port the UI listens on."""
        return self._server.port

    @property
    def url(self) -> str:
        """`http://host:port` of the UI."""
        return self._server.url

    def start(self) -> None:
        """Start serving in the background."""
        self._server.start()
        if self._server.signs_in:
            log.info(
                "%s at %s (sign-in: user admin, password from `sparkctl ui-token`)",
                self._server.what,
                self.url,
            )
        else:
            log.info("%s at %s", self._server.what, self.url)

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()
