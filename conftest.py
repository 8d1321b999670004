"""Suite-wide guards: no process started by a test may outlive the suite.

At the end of the session every descendant of the pytest process is listed;
survivors get a short grace period, then are killed and reported, and the run
fails. Per-test fixtures still own stopping what they start: this is the net.
"""

from __future__ import annotations

import os

import psutil
import pytest

_IGNORED = ("resource_tracker", "forkserver")


def _descendants() -> list[psutil.Process]:
    try:
        children = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return []
    alive = []
    for child in children:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(tag in " ".join(child.cmdline()) for tag in _IGNORED):
                continue
            alive.append(child)
        except psutil.Error:
            continue
    return alive


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = _descendants()
    if not leftovers:
        return
    _, alive = psutil.wait_procs(leftovers, timeout=5)
    if not alive:
        return
    described = []
    for proc in alive:
        try:
            described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=5)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = "processes outlived the test suite (killed now):\n  " + "\n  ".join(described)
    if reporter is not None:
        reporter.write_line(message, red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
