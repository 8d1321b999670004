"""Fixtures: a master and a worker started as daemons by the sparkctl CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _cli_harness import CliCluster, daemon_cluster


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    with daemon_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster
