"""Running `sparkctl` as real processes on 127.0.0.1, and cleaning up after it.

Daemons leave the test's process tree (they start their own session), so the
suite-wide leak check cannot see them: every fixture here kills what its pid
files and its daemons' children name, whatever happened in the test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

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


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` every 50 ms until true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


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


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its session and every descendant (best effort, bounded)."""
    try:
        process = psutil.Process(pid)
        victims = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=5)


def gone(pid: int) -> bool:
    """True when `pid` has exited (zombies count as exited)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
        wait_for(lambda: all(gone(c.pid) for c in children), 15, "executors and drivers to exit")
