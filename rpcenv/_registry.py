"""Backends by name: built-ins first, then the `sparkctl.rpc_backends` entry points.

A third party ships a backend by declaring, in its own package metadata,

    [project.entry-points."sparkctl.rpc_backends"]
    mybackend = "mypkg.rpc:create_env"

and users select it with `spark.rpc.backend=mybackend`. Nothing in rpcenv/
changes.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpcenv._errors import RpcConfigError

if TYPE_CHECKING:
    import importlib.metadata

    from rpcenv._conf import Conf
    from rpcenv._core import RpcEnv

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendFactory",
    "available_backends",
    "get_backend",
    "register_backend",
]

#: `factory(name, host, port, conf, client_mode) -> RpcEnv`
BackendFactory = Callable[[str, str, int, "Conf", bool], "RpcEnv"]

ENTRY_POINT_GROUP = "sparkctl.rpc_backends"

_BUILTIN: dict[str, str] = {
    "grpc": "rpcenv.grpc:create_env",
    "local": "rpcenv.local:create_env",
}
_registered: dict[str, BackendFactory] = {}
_lock = threading.Lock()


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `factory` available as `spark.rpc.backend=name` in this process."""
    with _lock:
        _registered[name] = factory


def _load(target: str) -> BackendFactory:
    module_name, _, attr = target.partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory


def _entry_points(name: str | None = None) -> list[importlib.metadata.EntryPoint]:
    import importlib.metadata  # slow to import: only a third-party backend needs it

    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [point for point in points if name is None or point.name == name]


def available_backends() -> list[str]:
    """Names of every backend: registered, built in, or found as an entry point."""
    names = set(_registered) | set(_BUILTIN)
    names |= {ep.name for ep in _entry_points()}
    return sorted(names)


def get_backend(name: str) -> BackendFactory:
    """The factory of backend `name`.

    Raises:
        RpcConfigError: no backend has that name (the error lists those that exist).
    """
    with _lock:
        factory = _registered.get(name)
    if factory is not None:
        return factory
    if name in _BUILTIN:
        factory = _load(_BUILTIN[name])
    else:
        points = _entry_points(name)
        point = points[0] if points else None
        if point is None:
            raise RpcConfigError(
                f"unknown RpcEnv backend {name!r} (spark.rpc.backend); "
                f"available: {', '.join(available_backends())}"
            )
        factory = point.load()
    register_backend(name, factory)
    return factory
