"""Daemon plumbing for start-*/stop-*: spawn, readiness, pid files, stopping.

The parent spawns `python -m cli start-... --foreground` in a new session with
its output going to a log file, hands it the write end of a pipe, and waits
(with a deadline) for one JSON line saying "ready" or why it failed. The child
writes its pid file only once it is ready, and removes it when it exits.

This module knows nothing about masters or workers; it never imports the
cluster. It never signals a process whose command line is not a sparkctl
daemon of the expected role, so a recycled pid is left alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

__all__ = [
    "DaemonError",
    "DaemonFiles",
    "ReadySignal",
    "daemon_files",
    "hold_daemon_lock",
    "live_daemon_pid",
    "spawn_daemon",
    "stop_daemon",
]


class DaemonError(RuntimeError):
    """A daemon could not be started or stopped; the message says why.

    Attributes:
        flag: set when the child found a usage error (e.g. "MASTER" for an
            unreachable master), which the command reports with status 2.
    """

    def __init__(self, message: str, flag: str | None = None) -> None:
        self.flag = flag
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class DaemonFiles:
    """Where a daemon of one role keeps its pid and its log."""

    role: str
    pid_file: Path
    log_file: Path


def daemon_files(work_dir: Path, role: str) -> DaemonFiles:
    """The pid and log file of the `role` ("master" or "worker") daemon under `work_dir`."""
    return DaemonFiles(role, work_dir / f"sparkctl-{role}.pid", work_dir / f"sparkctl-{role}.log")


def hold_daemon_lock(files: DaemonFiles) -> None:
    """Take the role's lock in its work dir for the rest of this process's life.

    The pid file is written only once the daemon is ready, so two starts at the same
    moment both found none and both ran: the second pid file hid the first daemon
    from stop-*. The kernel drops the lock when the process exits, however it dies.

    Raises:
        DaemonError: another daemon of this role holds it.
    """
    lock_file = files.pid_file.with_name(f"sparkctl-{files.role}.lock")
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        running = _read_pid(files.pid_file)
        which = f" as process {running}" if running else ""
        raise DaemonError(
            f"a {files.role} is already starting or running{which} in {files.pid_file.parent} "
            f"(lock {lock_file}); stop it with 'sparkctl stop-{files.role}'"
        ) from None
    _held_locks.append(fd)  # never closed: held until exit


_held_locks: list[int] = []


def _read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _is_our_daemon(pid: int, role: str) -> bool:
    """True when `pid` runs `sparkctl start-<role>` (not a recycled pid)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return f"start-{role}" in cmdline


def live_daemon_pid(files: DaemonFiles) -> int | None:
    """The pid of the running daemon recorded in `files.pid_file`, else None.

    A pid file whose process is gone (or is something else now) is stale and
    is removed.
    """
    pid = _read_pid(files.pid_file)
    if pid is None:
        return None
    if _is_our_daemon(pid, files.role):
        return pid
    with contextlib.suppress(OSError):
        files.pid_file.unlink()
    return None


def spawn_daemon(argv: list[str], files: DaemonFiles, timeout: float) -> dict[str, Any]:
    """Start `python -m cli <argv> --ready-fd N` detached and wait until it is ready.

    Args:
        argv: the sparkctl arguments of the foreground command.
        files: the daemon's pid and log file.
        timeout: seconds to wait for readiness.

    Returns:
        What the child reported when ready (its `url`, `webui_url`, `pid`, ...).

    Raises:
        DaemonError: one of this role is already running, the child failed
            (with its reason), or it was not ready in time (it is then killed).
    """
    running = live_daemon_pid(files)
    if running is not None:
        raise DaemonError(
            f"a {files.role} is already running as process {running} "
            f"(pid file {files.pid_file}); stop it with 'sparkctl stop-{files.role}'"
        )
    files.log_file.parent.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    log = open(files.log_file, "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "cli", *argv, "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,  # survives the terminal that started it
            close_fds=True,
        )
    finally:
        os.close(write_fd)
        log.close()
    try:
        report = _await_report(read_fd, child, timeout)
    finally:
        os.close(read_fd)
    if report is None:
        code = child.poll()
        if code is None:
            _terminate(child.pid, grace=2.0)
            raise DaemonError(
                f"the {files.role} did not become ready within {timeout:g} s; "
                f"see {files.log_file}" + _log_tail(files.log_file)
            )
        raise DaemonError(
            f"the {files.role} exited with status {code} before it was ready; "
            f"see {files.log_file}" + _log_tail(files.log_file)
        )
    if not report.get("ok"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5.0)
        flag = report.get("flag")
        raise DaemonError(str(report.get("error") or "unknown failure"), flag if flag else None)
    return report


def _await_report(fd: int, child: subprocess.Popen[bytes], timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if not readable:
            if child.poll() is not None and not buffer:
                return None
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break  # the child closed the pipe (exited) without a full line
        buffer += chunk
    line = buffer.split(b"\n", 1)[0]
    if not line:
        return None
    try:
        report: dict[str, Any] = json.loads(line)
    except ValueError:
        return {"ok": False, "error": f"garbled readiness report: {line[:200]!r}"}
    return report


def _log_tail(log_file: Path, lines: int = 15) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return ""
    tail = [line for line in text.splitlines()[-lines:] if line.strip()]
    return ("\nlast lines of the log:\n  " + "\n  ".join(tail)) if tail else ""


def _gone(process: psutil.Process) -> bool:
    """True once the process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(process: psutil.Process, timeout: float) -> bool:
    # Our own poll: the daemon is not our child, and a zombie whose reaper is
    # slow must not look alive for the whole grace period.
    deadline = time.monotonic() + timeout
    while not _gone(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate(pid: int, grace: float) -> bool:
    """SIGTERM, then SIGKILL (its whole session) after `grace` s; True if it is gone."""
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return True
    if _wait_gone(process, grace):
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The daemon leads its own session: take its children along.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    return _wait_gone(process, 5.0)


def stop_daemon(files: DaemonFiles, grace: float) -> int | None:
    """Stop the daemon of `files`: SIGTERM, SIGKILL after `grace` s, remove the pid file.

    Returns:
        The pid that was stopped, or None when nothing was running.

    Raises:
        DaemonError: the process survived SIGKILL.
    """
    pid = live_daemon_pid(files)
    if pid is None:
        return None
    if not _terminate(pid, grace):
        raise DaemonError(f"the {files.role} (process {pid}) did not exit after SIGKILL")
    with contextlib.suppress(OSError):
        files.pid_file.unlink()
    return pid


class ReadySignal:
    """The child's side of the readiness pipe (a no-op in a plain foreground run)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def _write(self, report: dict[str, Any]) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, json.dumps(report).encode() + b"\n")
        except OSError:
            pass  # the parent gave up waiting; the log still says what happened
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def ready(self, **info: Any) -> None:
        """Tell the parent the service is up, with its addresses."""
        self._write({"ok": True, "pid": os.getpid(), **info})

    def fail(self, reason: str, flag: str | None = None) -> None:
        """Tell the parent why the service could not start (`flag`: a usage error of it)."""
        self._write({"ok": False, "error": reason, "flag": flag})


def write_pid_file(pid_file: Path) -> None:
    """Record this process as the daemon (atomically: never a half-written pid)."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(pid_file)


def remove_own_pid_file(pid_file: Path) -> None:
    """Remove `pid_file` if it still names this process."""
    if _read_pid(pid_file) == os.getpid():
        with contextlib.suppress(OSError):
            pid_file.unlink()
