"""cluster: the standalone cluster manager (Master, Worker, their processes).

The Master (`cluster.master`) tracks workers, applications, executors and
cluster-mode drivers and decides placement (`cluster.placement`, no I/O); the
Worker (`cluster.worker`) runs executors and drivers as OS processes. Both
are RpcEnv endpoints and import nothing of gRPC. `cluster.launch` is the API
that the CLI and tests use to start them; `python -m cluster.run` runs one in
the foreground. The web UIs live in `cluster.ui`.
"""

from __future__ import annotations

from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker

__all__ = ["MasterHandle", "WorkerHandle", "start_master", "start_worker"]
