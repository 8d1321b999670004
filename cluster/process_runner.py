"""One child OS process of a Worker: start it, watch it, stop it and its children.

Each process gets its own session (so its whole process group can be
signalled), `stdout` and `stderr` files in its work directory, and on Linux a
parent-death signal so that it cannot outlive a Worker that is SIGKILLed. A
watcher thread waits for the exit and reports it through a callback; nothing
here blocks the caller. This module knows nothing of executors, drivers or
the Master.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

__all__ = ["ManagedProcess", "describe_exit", "tail"]

log = logging.getLogger(__name__)

# The child must die with the Worker even when the Worker is SIGKILLed. A
# preexec_fn could set PR_SET_PDEATHSIG, but it forces fork() in a process
# full of gRPC threads, whose fork handlers can abort the child; exec'ing
# through util-linux's setpriv keeps the fast vfork/posix_spawn path.
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    if _SETPRIV is None:
        return argv
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]


def describe_exit(code: int) -> str:
    """`exited with code 3` or `killed by SIGKILL` for a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def tail(path: pathlib.Path, max_bytes: int = 2000, max_lines: int = 8) -> str:
    """The last lines of a log file (empty if unreadable), for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.strip().splitlines()[-max_lines:])


class ManagedProcess:
    """A child process in its own process group, watched by a thread.

    Args:
        name: for logs and thread names (e.g. "executor app-1/0").
        argv: the command.
        cwd: its work directory (created if missing); stdout and stderr go there.
        env: its complete environment.
        on_exit: called once, on the watcher thread, with the return code
            (negative = the signal that killed it).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cwd: pathlib.Path,
        env: Mapping[str, str],
        on_exit: Callable[[int], None],
    ) -> None:
        if not argv:
            raise ValueError(f"{name}: empty command")
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self._on_exit = on_exit
        self._popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.exit_code: int | None = None
        self._exited = threading.Event()

    @property
    def stdout_path(self) -> pathlib.Path:
        """Its stdout file."""
        return self.cwd / "stdout"

    @property
    def stderr_path(self) -> pathlib.Path:
        """Its stderr file."""
        return self.cwd / "stderr"

    @property
    def pid(self) -> int:
        """Its pid (0 before start)."""
        return self._popen.pid if self._popen is not None else 0

    def start(self) -> None:
        """Start it and its watcher.

        Raises:
            OSError: the command cannot be started (missing program, bad cwd).
        """
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self._popen = subprocess.Popen(
                _with_parent_death_signal(self.argv),
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        self.started_at = time.monotonic()
        threading.Thread(target=self._watch, name=f"watch-{self.name}", daemon=True).start()

    def _watch(self) -> None:
        assert self._popen is not None
        code = self._popen.wait()
        self.exit_code = code
        # Whatever it left behind in its group goes with it: no orphans.
        self._signal_group(signal.SIGKILL)
        self._exited.set()
        try:
            self._on_exit(code)
        except Exception:
            log.exception("exit callback of %s failed", self.name)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    @property
    def running(self) -> bool:
        """Started and not yet exited."""
        return self._popen is not None and not self._exited.is_set()

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM its process group now, SIGKILL after `grace` seconds; returns at once."""
        if not self.running:
            return
        if grace <= 0:
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGTERM)

        def escalate() -> None:
            if not self._exited.wait(grace):
                log.warning("%s ignored SIGTERM for %.1fs; sending SIGKILL", self.name, grace)
                self._signal_group(signal.SIGKILL)

        threading.Thread(target=escalate, name=f"stop-{self.name}", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the exit (and the exit callback's start); False on timeout."""
        if self._popen is None:
            return True
        return self._exited.wait(timeout)
