"""A Python worker keeps freed heap memory for its next task instead of faulting it in
again (issue 13: a 2M x 2M join's page faults grew faster than its input).

Each case runs in a child process: malloc settings are process-wide.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's mallopt only",
)

_CHURN = """
import resource, sys
from scheduler.shuffle.aggregation import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None

def task():  # a task's large blocks, freed at its end
    blocks = [bytearray(1 << 20) for _ in range(48)]
    del blocks

task()
task()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
task()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(mode: str, **env: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _CHURN, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=True,
    )
    kept, faults = done.stdout.split()
    return kept, int(faults)


def test_the_next_task_reuses_the_pages_a_task_freed() -> None:
    kept, faults = _run("keep")
    assert kept == "True"
    # 48 MiB freed and allocated again: 12k pages, almost none faulted in afresh.
    assert faults < 1500
    # Without it glibc hands the heap's top back and the same task faults it in again.
    _, default_faults = _run("default")
    assert default_faults > 6000


def test_a_users_own_malloc_setting_is_left_alone() -> None:
    kept, _ = _run("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert kept == "False"
