"""The cluster tests' process clusters: `cluster.testing`, with a 3 s worker timeout.

The harness itself lives in `cluster/testing.py` (issue 11, step 5); this module
only keeps the tests' default of `spark.worker.timeout=3`, so that a test of a
lost worker waits seconds, not the production minute.
"""

from __future__ import annotations

import pathlib
from typing import Any

from cluster.testing import ROOT, ClusterProcess, free_port, wait_until
from cluster.testing import ProcCluster as _ProcCluster

__all__ = ["ROOT", "Proc", "ProcCluster", "free_port", "wait_until"]

#: One `python -m cluster.run` process (the name the cluster tests use).
Proc = ClusterProcess


class ProcCluster(_ProcCluster):
    """`cluster.testing.ProcCluster` whose workers are declared lost after 3 s of silence."""

    def __init__(self, tmp: pathlib.Path, conf: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(tmp, {"spark.worker.timeout": "3", **(conf or {})}, **kw)
