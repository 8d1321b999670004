"""Pid files and stopping: stale files, recycled pids, SIGTERM then SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli._daemon import DaemonError, daemon_files, live_daemon_pid, spawn_daemon, stop_daemon
from cluster.testing import alive, kill_tree, wait_until

STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


def _fake_daemon(code: str, role: str) -> subprocess.Popen[str]:
    # argv carries "start-<role>" as the real daemons' command lines do.
    process = subprocess.Popen(
        [sys.executable, "-c", code, f"start-{role}"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_sigkill_after_grace(tmp_path: Path) -> None:
    files = daemon_files(tmp_path, "master")
    process = _fake_daemon(STUBBORN, "master")
    try:
        files.pid_file.write_text(f"{process.pid}\n")
        assert live_daemon_pid(files) == process.pid
        started = time.monotonic()
        assert stop_daemon(files, grace=0.5) == process.pid
        assert time.monotonic() - started < 10
        process.wait(10)
        assert process.returncode == -9
        assert not files.pid_file.exists()
    finally:
        kill_tree(process.pid)
        process.wait(10)


def test_sigterm_is_enough_for_a_polite_daemon(tmp_path: Path) -> None:
    files = daemon_files(tmp_path, "worker")
    process = _fake_daemon("import time\nprint('ready', flush=True)\ntime.sleep(120)\n", "worker")
    try:
        files.pid_file.write_text(f"{process.pid}\n")
        assert stop_daemon(files, grace=10) == process.pid
        process.wait(10)
        assert process.returncode == -15
    finally:
        kill_tree(process.pid)
        process.wait(10)


def test_pid_of_another_role_or_program_is_left_alone(tmp_path: Path) -> None:
    process = _fake_daemon(STUBBORN, "worker")
    try:
        files = daemon_files(tmp_path, "master")
        files.pid_file.write_text(f"{process.pid}\n")
        assert stop_daemon(files, grace=0.5) is None  # a worker is not a master
        assert not files.pid_file.exists()  # the stale file is cleaned up
        assert alive(process.pid)
    finally:
        kill_tree(process.pid)
        process.wait(10)
    wait_until(lambda: not alive(process.pid), 10, "the fake daemon to exit")


def test_garbage_pid_file(tmp_path: Path) -> None:
    files = daemon_files(tmp_path, "master")
    files.pid_file.write_text("not a pid\n")
    assert live_daemon_pid(files) is None


def test_a_child_that_never_gets_ready_is_killed_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    # The master "starts" forever: the parent must give up at its deadline and kill it.
    (hook / "sitecustomize.py").write_text(
        "import time\n"
        "import cluster.launch\n"
        "def hang(*args, **kwargs):\n"
        "    time.sleep(600)\n"
        "cluster.launch.start_master = hang\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hook))
    work = tmp_path / "work"
    files = daemon_files(work, "master")
    argv = [
        "start-master",
        "--foreground",
        "--port",
        "0",
        "--webui-port",
        "0",
        "--work-dir",
        str(work),
    ]
    started = time.monotonic()
    with pytest.raises(DaemonError, match="did not become ready within 3 s") as info:
        spawn_daemon(argv, files, timeout=3.0)
    assert time.monotonic() - started < 20
    assert str(files.log_file) in str(info.value)
    assert live_daemon_pid(files) is None
    # Nothing of that child is left running.
    import psutil

    leftovers = [
        p for p in psutil.process_iter(["cmdline"])
        if str(work) in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE
    ]  # fmt: skip
    assert not leftovers
