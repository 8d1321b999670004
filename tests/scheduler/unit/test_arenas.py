"""Pinned small-object arenas (scheduler/shuffle/arenas.py): what is kept, and the faults saved."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scheduler.shuffle import arenas

ROOT = Path(__file__).resolve().parents[3]


def test_pin_keeps_only_small_builtin_objects_and_replaces_what_it_held() -> None:
    class Resource:
        pass

    try:
        arenas.pin([Resource() for _ in range(10 * arenas.STEP)], [b"x" * 10_000] * 1000)
        assert arenas.pinned() == 0  # no finalizers or resources kept, nothing large
        ints = list(range(10**6, 10**6 + 100 * arenas.STEP))
        arenas.pin(ints)
        assert 1 <= arenas.pinned() <= arenas.MAX_ARENAS
        assert all(type(o) is int for o in arenas._pins.values())
        arenas.pin([])
        assert arenas.pinned() == 0
    finally:
        arenas.pin()


def test_pin_holds_at_most_max_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arenas, "MAX_ARENAS", 2)
    monkeypatch.setattr(arenas, "STEP", 1)
    try:
        # 8 MiB of floats span at least 8 regions of 1 MiB.
        arenas.pin([float(i) for i in range(300_000)], [float(i) for i in range(10)])
        assert arenas.pinned() == 2
    finally:
        arenas.pin()


_TASKS = """
import pickle, resource, sys
from scheduler.shuffle import arenas
from scheduler.shuffle.aggregation import keep_freed_memory
keep_freed_memory()  # freed lists stay in glibc's heap: count the arenas' pages only
data = pickle.dumps(list(range(10**6, 10**6 + 300_000)))
def task():
    xs = pickle.loads(data)
    if sys.argv[1] == "pin":
        arenas.pin(xs)
    del xs
task()  # the first task maps its arenas either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
task()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_of_second_task(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_TASKS), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page faults of Linux")
def test_a_task_after_a_pinned_one_faults_no_fresh_pages_in() -> None:
    unpinned = _faults_of_second_task("none")
    pinned = _faults_of_second_task("pin")
    # 300k ints are ~9 MiB of arenas: ~2,300 pages faulted again unless they stay mapped.
    assert unpinned > 1000
    assert pinned < unpinned // 10
