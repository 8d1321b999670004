"""The console progress bar of running stages, like Spark's, on stderr.

`[Stage 3:=====>          (12 + 2) / 40]`: finished tasks, running tasks and
the total of each active stage, redrawn in place every 200 ms and erased when
no stage runs. Only started when stderr is a TTY and
spark.ui.showConsoleProgress is true. It is a scheduler listener and a
`TaskCounter`: stage events and task counts (no event per task) update its
own counts (under its own lock, on the scheduler's thread) and a daemon
thread draws them; it never reads or changes the scheduler.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass, field

from scheduler.core.events import (
    End,
    ExecutorRemoved,
    Launch,
    ListenerBus,
    SchedulerEvent,
    StageCompleted,
    StageSubmitted,
)

__all__ = ["ConsoleProgressBar", "render_stage"]

_REFRESH_SECONDS = 0.2
#: Stages shorter than this never show a bar (as in Spark, to avoid flicker).
_FIRST_DELAY_SECONDS = 0.5


def render_stage(stage_id: int, done: int, running: int, total: int, width: int) -> str:
    """One stage's bar, e.g. `[Stage 3:=====>   (12 + 2) / 40]`, fitted to `width`."""
    header = f"[Stage {stage_id}:"
    tailer = f"({done} + {running}) / {total}]"
    room = width - len(header) - len(tailer)
    if room <= 0:
        return header + tailer
    filled = room * done // total if total else 0
    bar = "=" * filled
    if filled < room:
        bar += ">" + " " * (room - filled - 1)
    return header + bar + tailer


@dataclass
class _Stage:
    """An active stage attempt: its task count, finished tasks, running ones by executor."""

    total: int
    done: int = 0
    running: dict[int, str] = field(default_factory=dict)


class ConsoleProgressBar:
    """Redraws the active stages' bars on stderr from a daemon thread."""

    def __init__(self) -> None:
        self._stages: dict[tuple[int, int], _Stage] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-progress", daemon=True)
        self._shown = False
        self._active_for = 0.0

    def listen(self, bus: ListenerBus) -> None:
        """Follow `bus`'s stages and executors, and count its tasks (no event per task)."""
        bus.add(self, (StageSubmitted, ExecutorRemoved, StageCompleted), lineage=False)
        bus.add_counter(self)

    def tasks_launched(self, launches: list[Launch]) -> None:
        """`TaskCounter`: these tasks run now."""
        with self._lock:
            for stage_id, attempt, task_id, executor_id in launches:
                stage = self._stages.get((stage_id, attempt))
                if stage is not None:
                    stage.running[task_id] = executor_id

    def tasks_ended(self, ends: list[End]) -> None:
        """`TaskCounter`: these tasks ended (a failed one runs again, as a new attempt)."""
        with self._lock:
            for stage_id, attempt, task_id, ok in ends:
                stage = self._stages.get((stage_id, attempt))
                if stage is not None:
                    stage.running.pop(task_id, None)
                    stage.done += ok

    def __call__(self, event: SchedulerEvent) -> None:
        """Follow a stage attempt's life and lost executors (a listener: quick, no I/O)."""
        with self._lock:
            match event:
                case StageSubmitted(stage_id=stage_id, attempt=attempt, num_tasks=total):
                    self._stages[(stage_id, attempt)] = _Stage(total)
                case ExecutorRemoved(executor_id=executor_id):
                    for stage in self._stages.values():  # its tasks run again, as new attempts
                        for task_id in [t for t, e in stage.running.items() if e == executor_id]:
                            del stage.running[task_id]
                case StageCompleted(stage_id=stage_id, attempt=attempt):
                    self._stages.pop((stage_id, attempt), None)

    def active(self) -> list[tuple[int, int, int, int]]:
        """(stage id, finished tasks, running tasks, tasks) of each active stage attempt."""
        with self._lock:
            return sorted(
                (stage_id, s.done, len(s.running), s.total)
                for (stage_id, _), s in self._stages.items()
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._clear()

    def _run(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            stages = self.active()
            if not stages:
                self._active_for = 0.0
                self._clear()
                continue
            self._active_for += _REFRESH_SECONDS
            if self._active_for < _FIRST_DELAY_SECONDS:
                continue
            columns = shutil.get_terminal_size((80, 20)).columns
            stages.sort()
            shown = stages[:3]
            width = max(20, columns // len(shown))
            line = "".join(render_stage(s, d, r, n, width) for s, d, r, n in shown)
            sys.stderr.write("\r" + line[:columns])
            sys.stderr.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            columns = shutil.get_terminal_size((80, 20)).columns
            sys.stderr.write("\r" + " " * columns + "\r")
            sys.stderr.flush()
            self._shown = False
