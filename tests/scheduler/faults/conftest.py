"""Fixtures of the driver's fault tests: functions shipped by value, a cluster of processes.

Each test module's functions travel to executors by value (executors cannot
import test modules). `node_cluster` starts a Master and two one-core Workers
as three processes on 127.0.0.1 so that one Worker can be SIGKILLed; every
process started here is killed by PID at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster.testing import ProcCluster


@pytest.fixture(autouse=True, scope="module")
def _ship_by_value(request: pytest.FixtureRequest) -> None:
    cloudpickle.register_pickle_by_value(request.module)


@pytest.fixture
def node_cluster(tmp_path: Path) -> Iterator[ProcCluster]:
    """A Master and two one-core Workers, each its own process (`cluster.testing`)."""
    conf = {"spark.worker.timeout": "5"}
    with ProcCluster(tmp_path, conf, workers=2, cores=1, memory="1024m", ready_timeout=60) as c:
        yield c
