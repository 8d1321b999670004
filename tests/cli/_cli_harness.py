"""Running `sparkctl` as real processes on 127.0.0.1, and cleaning up after it.

Daemons leave the test's process tree (they start their own session), so the
suite-wide leak check cannot see them: every fixture here kills what its pid
files and its daemons' children name, whatever happened in the test. The
generic pieces (`free_port`, `wait_until`, `kill_tree`, `alive`) are
`cluster.testing`'s; this module only drives the `sparkctl` daemons.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil

from cluster.testing import alive, free_port, kill_tree, wait_until

CLI = [sys.executable, "-m", "cli"]
_STARTED = re.compile(r"started (\w+) (\S+) \(pid (\d+)\), web UI (\S+), log (\S+)")


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without the user's SPARK_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "SPARKCTL_"))}
    env.update(extra)
    return env


def run_cli(
    *args: str, timeout: float = 90.0, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m cli ARGS` to completion (bounded by `timeout`)."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else clean_env(),
        cwd=cwd,
    )


@dataclasses.dataclass
class Daemon:
    """A daemon `start-*` reported."""

    role: str
    url: str
    pid: int
    webui_url: str
    log: Path


def parse_started(output: str) -> Daemon:
    """The daemon described by a start-* command's output."""
    match = _STARTED.search(output)
    assert match, f"unexpected start output: {output!r}"
    role, url, pid, webui, log = match.groups()
    return Daemon(role, url, int(pid), webui, Path(log))


@contextlib.contextmanager
def reaped(work_dir: Path) -> Iterator[list[int]]:
    """Yield a list to register daemon pids in; on exit kill them, their children,
    and any daemon named by a pid file under `work_dir`."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid_file in work_dir.rglob("sparkctl-*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(pid_file.read_text().strip()))
        for pid in pids:
            kill_tree(pid)


@dataclasses.dataclass
class CliCluster:
    """A master and one worker daemon sharing a work directory."""

    work_dir: Path
    master: Daemon
    worker: Daemon


@contextlib.contextmanager
def daemon_cluster(
    work: Path, cores: int = 2, memory: str = "1g", env: dict[str, str] | None = None
) -> Iterator[CliCluster]:
    """A master and a worker started with `sparkctl start-*`, stopped with `stop-*`.

    On the way out, every executor and driver the daemons started must be gone
    too; whatever is left is killed by `reaped`.
    """
    with reaped(work) as pids:
        started = run_cli(
            "start-master",
            "--port",
            str(free_port()),
            "--webui-port",
            "0",
            "--work-dir",
            str(work),
            env=env,
        )
        assert started.returncode == 0, started.stderr + started.stdout
        master = parse_started(started.stdout)
        pids.append(master.pid)
        started = run_cli(
            "start-worker",
            master.url,
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--webui-port",
            "0",
            "--work-dir",
            str(work),
            env=env,
        )
        assert started.returncode == 0, started.stderr + started.stdout
        worker = parse_started(started.stdout)
        pids.append(worker.pid)
        yield CliCluster(work, master, worker)
        children: list[psutil.Process] = []
        for pid in (worker.pid, master.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                children += psutil.Process(pid).children(recursive=True)
        assert run_cli("stop-worker", "--work-dir", str(work), env=env).returncode == 0
        assert run_cli("stop-master", "--work-dir", str(work), env=env).returncode == 0
        wait_until(
            lambda: not any(alive(c.pid) for c in children), 15, "executors and drivers to exit"
        )
