"""Backends by name: built-ins first, then the `sparkctl.rpc_backends` entry points.

A third party ships a backend by declaring, in its own package metadata,

    [project.entry-points."sparkctl.rpc_backends"]
    mybackend = "mypkg.rpc:create_env"

and users select it with `spark.rpc.backend=mybackend`. Nothing in rpcenv/
changes.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rpcenv._errors import RpcConfigError
from rpcenv._fdlimit import raise_open_file_limit

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

#: `factory(name, host, port, conf, client_mode) -> RpcEnv`. A factory that can
#: advertise a host other than the one it binds also takes a keyword argument
#: `advertise_host: str | None` (see `RpcEnv.create`); one without it still works
#: for every env that advertises the host it binds.
BackendFactory = Callable[[str, str, int, "Conf", bool], "RpcEnv"]

ENTRY_POINT_GROUP = "sparkctl.rpc_backends"

_BUILTIN: dict[str, str] = {
    "grpc": "rpcenv.grpc:create_env",
    "local": "rpcenv.local:create_env",
    "tcp": "rpcenv.tcp:create_env",
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


def accepts_advertise_host(factory: BackendFactory) -> bool:
    """True when `factory` takes the `advertise_host` keyword (or any keyword)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: assume the old one
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "advertise_host" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )


def create_with_backend(
    backend: str,
    name: str,
    host: str,
    port: int,
    conf: Conf,
    client_mode: bool,
    advertise_host: str | None = None,
) -> RpcEnv:
    """Make an env with backend `backend`, passing `advertise_host` only when it matters.

    A factory of the old five-argument signature gets exactly those five arguments
    whenever the env advertises the host it binds, so third-party backends keep
    working unchanged.

    Raises:
        RpcConfigError: an unknown backend, or one that cannot advertise another host.
    """
    factory = get_backend(backend)
    raise_open_file_limit()  # every peer holds a descriptor; see rpcenv/_fdlimit.py
    if advertise_host is None or advertise_host == host:
        return factory(name, host, port, conf, client_mode)
    if not accepts_advertise_host(factory):
        raise RpcConfigError(
            f"the {backend!r} RpcEnv backend (spark.rpc.backend) cannot advertise "
            f"{advertise_host!r} while binding {host!r}: its factory takes no advertise_host "
            "argument; bind the advertised host itself, or use the grpc backend"
        )
    extended: Any = factory
    env: RpcEnv = extended(name, host, port, conf, client_mode, advertise_host=advertise_host)
    return env
