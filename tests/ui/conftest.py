"""Fixtures: master and worker web UIs over fake state, on 127.0.0.1 and free ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _ui_fakes import cluster_state, worker_state

from cluster.ui import MasterWebUI, WorkerWebUI


@pytest.fixture
def worker_ui(tmp_path: Path) -> Iterator[WorkerWebUI]:
    work = tmp_path / "work"
    work.mkdir()
    state = worker_state(work)
    ui = WorkerWebUI(work, "127.0.0.1", 0, lambda: state)
    ui.start()
    try:
        yield ui
    finally:
        ui.stop()


@pytest.fixture
def master_ui(worker_ui: WorkerWebUI) -> Iterator[MasterWebUI]:
    state = cluster_state(worker_ui.url)
    ui = MasterWebUI(lambda: state, "127.0.0.1", 0)
    ui.start()
    try:
        yield ui
    finally:
        ui.stop()


# The live-cluster test reuses the CLI test harness (daemons on 127.0.0.1).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cli"))
