"""Fixtures: a master and a worker started as daemons by the sparkctl CLI."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from _cli_harness import Daemon, free_port, gone, parse_started, reaped, run_cli, wait_for


@dataclasses.dataclass
class CliCluster:
    """A master and one worker daemon sharing a work directory."""

    work_dir: Path
    master: Daemon
    worker: Daemon


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    work = tmp_path_factory.mktemp("cluster")
    with reaped(work) as pids:
        started = run_cli(
            "start-master", "--port", str(free_port()), "--webui-port", "0", "--work-dir", str(work)
        )
        assert started.returncode == 0, started.stderr + started.stdout
        master = parse_started(started.stdout)
        pids.append(master.pid)
        started = run_cli(
            "start-worker",
            master.url,
            "--cores",
            "2",
            "--memory",
            "1g",
            "--webui-port",
            "0",
            "--work-dir",
            str(work),
        )
        assert started.returncode == 0, started.stderr + started.stdout
        worker = parse_started(started.stdout)
        pids.append(worker.pid)
        cluster = CliCluster(work, master, worker)
        yield cluster
        children = []
        for pid in (worker.pid, master.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                children += psutil.Process(pid).children(recursive=True)
        assert run_cli("stop-worker", "--work-dir", str(work)).returncode == 0
        assert run_cli("stop-master", "--work-dir", str(work)).returncode == 0
        wait_for(lambda: all(gone(c.pid) for c in children), 15, "executors and drivers to exit")
