"""The master and worker web UIs: HTML for people, `/json` for scripts, `/metrics`.

Served through `webui.server` (the web layer shared with the driver UI and the
history server: threaded standard-library HTTP server, security headers, Jinja2
templates autoescaped, prometheus-client), to keep an idle daemon small. The UIs
only read state through a callable; they never change the cluster.
"""

from __future__ import annotations

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
    "MasterWebUI",
    "WorkerWebUI",
    "app_json",
    "app_state_name",
    "driver_json",
    "driver_state_name",
    "executor_state_name",
    "master_state_json",
    "worker_state_json",
    "worker_state_name",
]
