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

from rpcenv import Conf, derive_app_credential, resolve_secret, settings
from webui.auth import UIAuth, sign_in
from webui.server import Response, Route, Templates, WebServer

__all__ = ["STATIC", "render", "serve", "ui_auth"]

_HERE = Path(__file__).parent
#: `live.js`, served at /static/live.js (scripts only from the page's own origin).
STATIC = _HERE / "static"
_TEMPLATES = Templates(_HERE / "templates")


def render(template: str, **context: Any) -> Response:
    """An HTML page from one of the application UI's templates."""
    return _TEMPLATES.page(template, **context)


def ui_auth(conf: Conf, what: str) -> UIAuth | None:
    """The sign-in of the UI `what`: on when this process has the cluster secret, unless
    spark.sparkctl.ui.authenticate is false (as the master's and workers' UIs).

    Raises:
        ValueError: the setting is not a boolean, or is true without a secret.
    """
    enabled = conf.get(settings.UI_AUTHENTICATE)
    return sign_in(resolve_secret(conf), enabled, derive_app_credential, f"sparkctl {what}")


def serve(
    route: Route, host: str, port: int, max_retries: int, what: str, auth: UIAuth | None = None
) -> WebServer:
    """A started server for `route` with the application UI's static files.

    Args:
        route: the pages.
        host: address to bind.
        port: port to bind (0 = any).
        max_retries: following ports to try when `port` is taken.
        what: names the server.
        auth: sign-in (None: open); routes read the viewer with `current_viewer()`.

    Raises:
        OSError: no free port from `port` (`max_retries` more tried), or the host
            cannot be bound; the message says which.
    """
    server = WebServer(
        route, host, port, max_retries=max_retries, what=what, static=STATIC, auth=auth
    )
    server.start()
    return server
