"""Clusters for tests and benchmarks: as processes or in process, bounded waits, leak checks.

The one harness behind `tests/cluster`, the compatibility suite's `cluster` master,
the dynamic-allocation tests and `bench/` (issue 11, step 5), shipped as code as
`rpcenv/testing.py` is, so that a fix to how a cluster is started or stopped lands
once. Import from here; the private modules hold one job each:

- `_processes.py`: `wait_until`, `free_port(s)`, and PIDs (`alive`,
  `descendant_pids`, `kill_tree`, `stop_processes`);
- `_proc_cluster.py`: `ProcCluster` and its `ClusterProcess`es, a master + N
  workers as `cluster.run` processes, with resource and PID leak checks;
- `_fakes.py`: `FakeClock` (time and timers that move only on `advance`),
  `FakeLauncher` and its `FakeProcess`es;
- `_tls.py`: `tls_files`, a throw-away CA and a loopback certificate;
- `_local.py`: `LocalCluster`, a real Master on the local backend with
  `FakeWorker`s and `FakeDriver`s, and the `FakeRef` / `FakeContext` stand-ins.

Every process is `python -m cluster.run` on 127.0.0.1, started with
`--stop-on-stdin-eof`, so a harness that dies leaves no orphan; every wait is
bounded; `ProcCluster.close` stops workers before the master, then SIGKILLs by PID
whatever they left, and `assert_no_leaks` proves every PID it ever saw is gone.

The in-process harness of `_local.py` loads on first use: the rest needs only
psutil, so the PySpark oracle suite and benchmark (venvs without gRPC) share
`wait_until`, `free_port`, `kill_tree` and `stop_processes` with everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cluster.testing._fakes import FakeClock, FakeLauncher, FakeProcess, FakeTimer
from cluster.testing._proc_cluster import ROOT, ClusterProcess, ProcCluster
from cluster.testing._processes import (
    alive,
    descendant_pids,
    free_port,
    free_ports,
    kill_tree,
    stop_processes,
    wait_until,
)
from cluster.testing._tls import tls_files

if TYPE_CHECKING:
    from cluster.testing._local import (
        LOCAL_CONF,
        FakeContext,
        FakeDriver,
        FakeRef,
        FakeWorker,
        LocalCluster,
        Recorder,
    )

__all__ = [
    "LOCAL_CONF",
    "ROOT",
    "ClusterProcess",
    "FakeClock",
    "FakeContext",
    "FakeDriver",
    "FakeLauncher",
    "FakeProcess",
    "FakeRef",
    "FakeTimer",
    "FakeWorker",
    "LocalCluster",
    "ProcCluster",
    "Recorder",
    "alive",
    "descendant_pids",
    "free_port",
    "free_ports",
    "kill_tree",
    "stop_processes",
    "tls_files",
    "wait_until",
]

#: The in-process harness, imported on first use (it needs gRPC and protobuf; the
#: process helpers here need only psutil, so PySpark's oracle venv can use them).
_LOCAL = frozenset(
    {"LOCAL_CONF", "FakeContext", "FakeDriver", "FakeRef", "FakeWorker", "LocalCluster", "Recorder"}
)


def __getattr__(name: str) -> Any:
    if name in _LOCAL:
        from cluster.testing import _local

        return getattr(_local, name)
    raise AttributeError(f"module 'cluster.testing' has no attribute {name!r}")
