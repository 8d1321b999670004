"""The application UI's templates and static files on `webui`, the one web layer.

The HTTP server, security headers, formatters and Prometheus text live in
`webui.server`, shared with the master and worker UIs; this module only names
the application UI's template and static folders and serves `AppPages`-style
route functions with them (the driver UI on 4040, the history server on 18080).
Nothing here reads application state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webui.server import Response, Route, Templates, WebServer

__all__ = ["STATIC", "render", "serve"]

_HERE = Path(__file__).parent
#: `live.js`, served at /static/live.js (scripts only from the page's own origin).
STATIC = _HERE / "static"
_TEMPLATES = Templates(_HERE / "templates")


def render(template: str, **context: Any) -> Response:
    """An HTML page from one of the application UI's templates."""
    return _TEMPLATES.page(template, **context)


def serve(route: Route, host: str, port: int, max_retries: int, what: str) -> WebServer:
    """A started server for `route` with the application UI's static files.

    Raises:
        OSError: no free port from `port` (`max_retries` more tried), or the host
            cannot be bound; the message says which.
    """
    server = WebServer(route, host, port, max_retries=max_retries, what=what, static=STATIC)
    server.start()
    return server
