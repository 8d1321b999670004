"""cluster: the standalone cluster manager (Master, Worker, their processes).

The Master (`cluster.master`) tracks workers, applications, executors and
cluster-mode drivers and decides placement (`cluster.placement`, no I/O); the
Worker (`cluster.worker`) runs executors and drivers as OS processes. Both
are RpcEnv endpoints and import nothing of gRPC. `cluster.launch` is the API
that the CLI and tests use to start them; `python -m cluster.run` runs one in
the foreground. The web UIs live in `cluster.ui`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker

__all__ = ["MasterHandle", "WorkerHandle", "start_master", "start_worker"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import cluster.ui` (the CLI's status command) does not pay
    # for the Master and Worker modules.
    if name in __all__:
        import cluster.launch

        return getattr(cluster.launch, name)
    raise AttributeError(f"module 'cluster' has no attribute {name!r}")
