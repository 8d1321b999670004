"""Fakes of the daemons' seams to time and to the OS: `FakeClock`, `FakeLauncher`.

The Master and the Worker take a `Clock` and the Worker a `Launcher`
(`cluster._timers`, `cluster.launcher`); these stand-ins let a test move
time by `advance` and end a "process" by `exit(code)`, with no sleep and no
child process. They never start threads, processes or timers of their own.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster._timers import Clock
    from cluster.launcher import Launcher

__all__ = ["FakeClock", "FakeLauncher", "FakeProcess", "FakeTimer"]


@dataclass
class FakeTimer:
    """A one-shot timer set on a `FakeClock`: what it is, when it fires, whether it did."""

    name: str
    delay: float
    due: float
    action: Callable[[], None]
    fired: bool = False


class FakeClock:
    """Monotonic seconds and timers that move only when a test says so: a `Clock`.

    The Master and the Worker take one (`clock=`), so their timeouts, back-offs,
    recovery wait and startup graces are tested by `advance`, never by sleeping:
    a timer set with `later` runs (on the test's thread) once `advance` reaches
    its due time, in due order; `timers` lists every timer ever set.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.timers: list[FakeTimer] = []

    def __call__(self) -> float:
        return self.now

    def later(self, delay: float, action: Callable[[], None], name: str) -> None:
        """Set a timer: `action` runs when `advance` passes `delay` seconds from now."""
        self.timers.append(FakeTimer(name, delay, self.now + max(0.0, delay), action))

    def pending(self, name: str | None = None) -> list[FakeTimer]:
        """Timers not fired yet (those called `name`), soonest first."""
        waiting = [t for t in self.timers if not t.fired and name in (None, t.name)]
        return sorted(waiting, key=lambda t: t.due)

    def advance(self, seconds: float) -> float:
        """Move time forward by `seconds`, firing the timers due by then; return the new now."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds}s)")
        end = self.now + seconds
        while True:
            due = [t for t in self.pending() if t.due <= end]
            if not due:
                break
            timer = due[0]  # an action may set new timers: look again after each
            self.now = max(self.now, timer.due)
            timer.fired = True
            timer.action()
        self.now = end
        return self.now

    if TYPE_CHECKING:

        def _is_a_clock(fake: FakeClock) -> Clock:  # mypy checks the protocol here
            return fake


class FakeProcess:
    """A Worker's child that never runs: the test ends it with `exit(code)`.

    It records every `stop(grace)` asked of it and exits only when told (a real
    process may ignore SIGTERM for a while, or die on its own at any time).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
        pid: int,
        start_error: OSError | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self._on_exit = on_exit
        self._pid = pid
        self._start_error = start_error
        self.started = False
        self.exit_code: int | None = None
        #: The grace of every `stop` asked, in order.
        self.stops: list[float] = []

    @property
    def pid(self) -> int:
        """A made-up pid once started (never a real process's: nothing signals it)."""
        return self._pid if self.started else 0

    @property
    def stderr_path(self) -> pathlib.Path:
        return self.cwd / "stderr"

    @property
    def running(self) -> bool:
        return self.started and self.exit_code is None

    def start(self) -> None:
        if self._start_error is not None:
            raise self._start_error
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.started = True

    def stop(self, grace: float = 5.0) -> None:
        if self.running:
            self.stops.append(grace)

    def wait(self, timeout: float | None = None) -> bool:
        return not self.running

    def exit(self, code: int, stderr: str = "") -> None:
        """End it with return `code` (negative: the signal), having written `stderr`."""
        if not self.running:
            raise AssertionError(f"{self.name} is not running")
        if stderr:
            self.stderr_path.write_text(stderr)
        self.exit_code = code
        self._on_exit(code)


class FakeLauncher:
    """A `cluster.launcher.Launcher` of `FakeProcess`es with memory figures set by the test.

    Args:
        start_error: what every `start` raises (a missing program, say); None to start.
    """

    def __init__(self, start_error: OSError | None = None) -> None:
        self.start_error = start_error
        self.processes: list[FakeProcess] = []
        #: Resident bytes of each pid's tree, as `rss_bytes` reports them (0 if unset).
        self.rss: dict[int, int] = {}

    def process(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
    ) -> FakeProcess:
        if not argv:
            raise ValueError(f"{name}: empty command")
        pid = (1 << 22) + 1 + len(self.processes)  # above Linux's largest pid_max: nobody's
        child = FakeProcess(name, argv, cwd, env, on_exit, pid, self.start_error)
        self.processes.append(child)
        return child

    def rss_bytes(self, pid: int) -> int:
        return self.rss.get(pid, 0)

    def named(self, name: str) -> FakeProcess:
        """The latest process made under `name` (e.g. "executor-app-1-0")."""
        for child in reversed(self.processes):
            if child.name == name:
                return child
        raise AssertionError(f"no process {name!r}; made: {[p.name for p in self.processes]}")


if TYPE_CHECKING:

    def _is_a_launcher(fake: FakeLauncher) -> Launcher:  # mypy checks the protocol here
        return fake
