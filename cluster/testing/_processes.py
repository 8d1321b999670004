"""Ports, bounded waits and PIDs: the helpers every harness shares (psutil only).

`wait_until` is the one poll of every test (a timeout is a failure that names
what was awaited, never a hang); `free_port(s)` pick loopback ports; the PID
helpers find, check and SIGKILL what a test started, by PID only. This module
must never import gRPC or protobuf: the PySpark oracle suite and the
benchmarks run it in venvs without them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psutil

__all__ = [
    "alive",
    "descendant_pids",
    "free_port",
    "free_ports",
    "kill_tree",
    "stop_processes",
    "wait_until",
]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a fixed, reusable port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1, free a moment ago (all held while picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> T:
    """Poll `predicate` until it returns something truthy and return that; fail after `timeout`.

    Raises:
        AssertionError: naming `what`, when `timeout` seconds pass first (tests read it as
            a failure, never a hang).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def descendant_pids(pid: int) -> list[int]:
    """Every living descendant of `pid` (executors, Python workers), or [] if it is gone."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie, or a PID that is gone, counts as exited)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_tree(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL `pid`, its process group if it leads one, and every descendant; wait `timeout`.

    For processes that left the test's tree on purpose (daemons start their own
    session), so only their PID names them.
    """
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
    psutil.wait_procs(victims, timeout=timeout)


def stop_processes(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    """SIGTERM `procs`, SIGKILL any still running after `timeout`, then SIGKILL by PID
    every descendant they had when this was called (what a stop left behind)."""
    leftovers = [pid for proc in procs for pid in descendant_pids(proc.pid)]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
