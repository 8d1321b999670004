"""The driver's application UI (port 4040 or the next free one).

`DriverUI` serves one application's `AppPages` (Spark's /jobs/, /stages/,
/storage/, /environment/, /executors/, /api/v1/...) from the driver's
`AppStatusStore`, which listens to the task scheduler (see `scheduler.status.ui`).
It binds the driver's bind address (spark.driver.bindAddress, else the
address the driver advertises), shows the advertised one in its URL, and
never changes scheduler state.
"""

from __future__ import annotations

import logging

from scheduler.status.ui import AppPages, AppStatusStore
from scheduler.status.ui._web import serve
from webui.auth import UIAuth, current_viewer
from webui.server import Query, Response, http_url

__all__ = ["AppStatusStore", "DriverUI"]

log = logging.getLogger(__name__)

#: Ports tried after spark.ui.port when it is taken (Spark's spark.port.maxRetries).
_PORT_RETRIES = 16


class DriverUI:
    """The HTTP server of the application UI.

    Args:
        store: what the pages show.
        host: address to bind.
        port: port to bind (0 = any).
        advertise: the host people reach it at, when `host` is a bind address.
        auth: sign-in (None: open). The admin, or this application's own UI
            credential, sees the pages; another application's is refused (403).

    Raises:
        OSError: no free port from `port`, or the host cannot be bound.
    """

    def __init__(
        self,
        store: AppStatusStore,
        host: str,
        port: int,
        advertise: str | None = None,
        auth: UIAuth | None = None,
    ) -> None:
        self.store = store
        self.pages = AppPages(store)
        self._server = serve(self._route, host, port, _PORT_RETRIES, "application UI", auth)
        self.port = self._server.port
        self.url = self._server.url
        if advertise and advertise != host:
            # Bound to spark.driver.bindAddress: people reach it at the advertised host.
            self.url = http_url(advertise, self.port)

    def _route(self, path: str, query: Query) -> Response | None:
        viewer = current_viewer()
        app_id = self.store.app_id  # read per request: set once the Master registered it
        if not viewer.may_see(app_id):
            return Response.text(
                403,
                f"signed in as application {viewer.app_id}, which may not see application "
                f"{app_id}: sign in as admin or as {app_id}",
            )
        return self.pages.route(path, query)

    def stop(self) -> None:
        """Stop serving (the store keeps what it has)."""
        self._server.stop()
