"""The console progress bar of running stages, like Spark's, on stderr.

`[Stage 3:=====>          (12 + 2) / 40]`: finished tasks, running tasks and
the total of each active stage, redrawn in place every 200 ms and erased when
no stage runs. Only started when stderr is a TTY and
spark.ui.showConsoleProgress is true. It reads the task scheduler's state
under its lock and never changes it.
"""

from __future__ import annotations

import shutil
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.core.taskscheduler import TaskScheduler

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


class ConsoleProgressBar:
    """Redraws the active stages' bars on stderr from a daemon thread."""

    def __init__(self, scheduler: TaskScheduler) -> None:
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-progress", daemon=True)
        self._shown = False
        self._active_for = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self._clear()

    def _run(self) -> None:
        while not self._stop.wait(_REFRESH_SECONDS):
            with self._scheduler.lock:
                stages = [
                    (t.task_set.stage_id, t.num_done, len(t.running), t.num_tasks)
                    for t in self._scheduler.tsms.values()
                ]
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
