"""The application UI: status store, pages, REST API and pictures (driver and history server).

| module        | job                                                              |
|---------------|------------------------------------------------------------------|
| `_store`      | `AppStatusStore`: scheduler listener, bounded records            |
| `_views`      | records -> Spark's REST API objects (`/api/v1/...`)              |
| `_pictures`   | geometry of the DAG, event timeline and task stream (SVG)        |
| `_pages`      | `AppPages`: Spark's paths -> templates / JSON / Prometheus       |
| `_web`        | templates and static files on `webui.server` (the one web layer); sign-in |

The layers point down the table's reverse order: `_pages` uses `_views`,
`_pictures` and `_web`; `_views` reads `_store`; nothing here imports the
scheduler's internals or `cluster`. The HTTP server, security headers and
Prometheus text are `webui`'s, shared with the master and worker UIs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scheduler.status.ui._pages import AppPages
    from scheduler.status.ui._store import AppStatusStore, Limits
    from scheduler.status.ui._web import ui_auth
    from webui.server import Response, WebServer

__all__ = ["AppPages", "AppStatusStore", "Limits", "Response", "WebServer", "ui_auth"]

#: Where each name lives: imported on first use, so that importing the store (the
#: history provider's) does not load the web server.
_HOMES = {
    "AppPages": "scheduler.status.ui._pages",
    "AppStatusStore": "scheduler.status.ui._store",
    "Limits": "scheduler.status.ui._store",
    "Response": "webui.server",
    "WebServer": "webui.server",
    "ui_auth": "scheduler.status.ui._web",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'scheduler.status.ui' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
