"""The master and worker web UIs: HTML for people, `/json` for scripts, `/metrics`.

Served through `webui.server` (the web layer shared with the driver UI and the
history server: threaded standard-library HTTP server, security headers, Jinja2
templates autoescaped, prometheus-client), to keep an idle daemon small. The UIs
only read state through a callable; they never change the cluster. With the
cluster's secret they ask for a UI credential (`ui_auth`, `webui.auth`), and a
viewer signed in as one application sees only that application.
"""

from __future__ import annotations

from cluster.ui._auth import UI_AUTHENTICATE_KEY, ui_auth
from cluster.ui._json import (
    app_json,
    app_state_name,
    driver_json,
    driver_state_name,
    executor_state_name,
    master_state_json,
    worker_state_json,
    worker_state_name,
)
from cluster.ui._master_ui import MasterWebUI
from cluster.ui._worker_ui import WorkerWebUI

__all__ = [
    "UI_AUTHENTICATE_KEY",
    "MasterWebUI",
    "WorkerWebUI",
    "app_json",
    "app_state_name",
    "driver_json",
    "driver_state_name",
    "executor_state_name",
    "master_state_json",
    "ui_auth",
    "worker_state_json",
    "worker_state_name",
]
