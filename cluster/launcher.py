"""How a Worker starts and measures its child processes: a seam, so tests can fake it.

The Worker decides (cores and memory held, executor and driver states, what to
tell the Master); a `Launcher` does the OS side: make a `ChildProcess` for a
command and sample a process tree's resident memory. `OsLauncher`, the default,
gives real `ManagedProcess`es and psutil's numbers; a test passes its own to
unit-test the Worker's accounting and state transitions without child processes
(`tests/cluster/test_worker_accounting.py`).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from cluster.memory_monitor import tree_rss_bytes
from cluster.process_runner import ManagedProcess

__all__ = ["ChildProcess", "Launcher", "OsLauncher"]


class ChildProcess(Protocol):
    """One child as the Worker uses it (`ManagedProcess` is the real one)."""

    @property
    def pid(self) -> int:
        """Its pid (0 before start)."""
        ...

    @property
    def cwd(self) -> pathlib.Path:
        """Its work directory."""
        ...

    @property
    def stderr_path(self) -> pathlib.Path:
        """Where its stderr goes (the Worker quotes its tail when it fails)."""
        ...

    @property
    def running(self) -> bool:
        """Started and not yet exited."""
        ...

    def start(self) -> None:
        """Start it; its exit is reported once through the launcher's `on_exit`.

        Raises:
            OSError: the command cannot be started.
        """
        ...

    def stop(self, grace: float = 5.0) -> None:
        """Ask it to stop now, force it after `grace` seconds; returns at once."""
        ...

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for its exit; whether it exited within `timeout`."""
        ...


class Launcher(Protocol):
    """Makes the Worker's child processes and measures them."""

    def process(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
    ) -> ChildProcess:
        """A child (not started yet) that calls `on_exit(return code)` once when it ends.

        Raises:
            ValueError: `argv` is empty.
        """
        ...

    def rss_bytes(self, pid: int) -> int:
        """Resident memory of `pid` and all its descendants (0 if it is gone)."""
        ...


class OsLauncher:
    """Real processes (`ManagedProcess`) and psutil's memory figures: the default."""

    def process(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
    ) -> ChildProcess:
        return ManagedProcess(name, argv, cwd, env, on_exit)

    def rss_bytes(self, pid: int) -> int:
        return tree_rss_bytes(pid)
