"""Helpers of the driver's fault tests: bounded waits, contexts, separate-process nodes.

A Master or a Worker runs in a process of its own (`_node.py`) so that a test
can SIGKILL one; every process started here is killed by PID, descendants
included. Named uniquely (not `conftest`) so test modules can import it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll `predicate` until true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    proc: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list)

    def descendants(self) -> list[int]:
        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def kill(self) -> None:
        leftovers = self.descendants()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_node(args: list[str], work_dir: Path) -> Node:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_node.py"), *args, str(work_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=str(REPO),
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for raw in stdout:
            lines.append(raw.decode(errors="replace").strip())

    threading.Thread(target=read, daemon=True).start()
    node = Node(proc, "", lines)
    try:
        wait_until(
            lambda: (
                any(line.startswith(("READY", "FAILED")) for line in lines)
                or proc.poll() is not None
            ),
            60.0,
            f"{args[0]} to start",
        )
    except AssertionError:
        node.kill()
        raise
    ready = [line for line in lines if line.startswith("READY ")]
    if not ready:
        node.kill()
        raise RuntimeError(f"{args[0]} failed to start: {lines!r}")
    node.url = ready[0].split(" ", 1)[1]
    return node


@dataclass
class NodeCluster:
    master: Node
    workers: list[Node]


def new_context(master: str, name: str, conf: dict[str, str] | None = None) -> Any:
    from scheduler import SparkConf, SparkContext

    spark_conf = SparkConf(loadDefaults=False).setMaster(master).setAppName(name)
    spark_conf.set("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        spark_conf.set(key, value)
    return SparkContext(conf=spark_conf)
