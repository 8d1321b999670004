"""The cluster tests' in-process harness: now shipped as `cluster.testing`.

Kept so the cluster tests' imports (`from cluster_harness import ...`) read as
before; `wait_for` is `cluster.testing.wait_until`.
"""

from __future__ import annotations

from cluster.testing import (
    LOCAL_CONF,
    FakeDriver,
    FakeWorker,
    LocalCluster,
    Recorder,
    wait_until,
)

__all__ = ["LOCAL_CONF", "FakeDriver", "FakeWorker", "LocalCluster", "Recorder", "wait_for"]

#: The bounded poll of every cluster test.
wait_for = wait_until
