"""Fixtures of the cluster tests, and the leak check at the end of the suite."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable, Iterator

import psutil
import pytest
from zk_server import ZooKeeperServer

from cluster.testing import LocalCluster, alive, descendant_pids, kill_tree

#: Processes that outlive a module on purpose (the session's ZooKeeper server).
SESSION_PIDS: set[int] = set()


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One real ZooKeeper server on 127.0.0.1 for the whole test session."""
    server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
    SESSION_PIDS.add(server.pid)
    try:
        yield server
    finally:
        server.stop()
        SESSION_PIDS.discard(server.pid)


@pytest.fixture
def local_cluster(tmp_path: pathlib.Path) -> Iterator[Callable[..., LocalCluster]]:
    made: list[LocalCluster] = []

    def make(conf: dict[str, str] | None = None) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"c{len(made)}", conf)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


def stray_children() -> list[int]:
    """Living child processes of this test process (but the session's ZooKeeper)."""
    return [p for p in descendant_pids(os.getpid()) if p not in SESSION_PIDS and alive(p)]


@pytest.fixture(autouse=True, scope="module")
def no_stray_processes() -> Iterator[None]:
    """The leak check: no child process may outlive a cluster test module."""
    yield
    deadline = time.monotonic() + 10
    while stray_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = {pid: _command(pid) for pid in stray_children()}
    for pid in leftover:
        kill_tree(pid)
    assert not leftover, f"stray processes after the cluster tests: {leftover}"


def _command(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())[:200]
    except psutil.Error:
        return "?"
