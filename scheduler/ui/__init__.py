"""The application UI: status store, pages, REST API and pictures (driver and history server).

| module        | job                                                              |
|---------------|------------------------------------------------------------------|
| `_store`      | `AppStatusStore`: scheduler listener, bounded records            |
| `_lineage`    | a stage's RDDs as plain dicts (for the DAG), taken at job start  |
| `_views`      | records -> Spark's REST API objects (`/api/v1/...`)              |
| `_pictures`   | geometry of the DAG, event timeline and task stream (SVG)        |
| `_pages`      | `AppPages`: Spark's paths -> templates / JSON / Prometheus       |
| `_web`        | `WebServer`, jinja2 rendering, security headers, Prometheus text |

The layers point down the table's reverse order: `_pages` uses `_views`,
`_pictures` and `_web`; `_views` reads `_store`; nothing here imports the
scheduler's internals or `cluster`.
"""

from __future__ import annotations

from scheduler.ui._lineage import stage_rdds
from scheduler.ui._pages import AppPages
from scheduler.ui._store import AppStatusStore, Limits
from scheduler.ui._web import Response, WebServer

__all__ = ["AppPages", "AppStatusStore", "Limits", "Response", "WebServer", "stage_rdds"]
