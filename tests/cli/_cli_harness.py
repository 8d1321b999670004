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
