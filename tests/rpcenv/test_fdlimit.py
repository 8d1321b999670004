"""A process that creates an RpcEnv may hold as many connections as its hard limit allows."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from rpcenv import _fdlimit

REPO = Path(__file__).resolve().parents[2]

_CHILD = """
import resource
from rpcenv import RpcEnv
env = RpcEnv.create("fdlimit-probe", "127.0.0.1", 0, {})
try:
    print(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
finally:
    env.shutdown()
"""


def _lower_soft_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_creating_an_env_lifts_the_soft_open_file_limit_to_the_hard_one() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"hard open-file limit {hard} leaves nothing to raise")
    expected = _fdlimit.UNLIMITED_CEILING if hard == resource.RLIM_INFINITY else hard
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=_lower_soft_limit,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(out.stdout.strip().splitlines()[-1]) == expected


def test_a_refused_raise_keeps_the_old_limit_and_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def refuse(which: int, limits: tuple[int, int]) -> None:
        calls.append(limits)
        raise ValueError("not allowed")

    monkeypatch.setattr(_fdlimit, "_raised", False)
    monkeypatch.setattr(_fdlimit.resource, "getrlimit", lambda which: (256, 4096))
    monkeypatch.setattr(_fdlimit.resource, "setrlimit", refuse)
    assert _fdlimit.raise_open_file_limit() == 256
    assert calls == [(4096, 4096)]
    assert _fdlimit.raise_open_file_limit() is None  # once per process
    assert len(calls) == 1
