"""Backends by name (built-in and entry points) and the curated public surface."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import rpcenv
from rpcenv import RpcConfigError, RpcEnv, available_backends
from rpcenv._registry import _registered


@pytest.fixture
def plugin_on_path(tmp_path: Path) -> Iterator[None]:
    """A third-party distribution that declares a backend only through metadata."""
    package = tmp_path / "thirdparty_rpc"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from rpcenv.local import LocalRpcEnv\n"
        "class DummyEnv(LocalRpcEnv):\n"
        "    pass\n"
        "def create_env(name, host, port, conf, client_mode):\n"
        "    return DummyEnv(name, host, port, conf, client_mode)\n"
    )
    dist = tmp_path / "thirdparty_rpc-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-rpc\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[sparkctl.rpc_backends]\ndummy = thirdparty_rpc:create_env\n"
    )
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        _registered.pop("dummy", None)
        sys.modules.pop("thirdparty_rpc", None)


def test_entry_point_backend_is_found_by_name(plugin_on_path: None) -> None:
    assert "dummy" in available_backends()
    env = RpcEnv.create("plugged", "127.0.0.1", 0, {"spark.rpc.backend": "dummy"})
    try:
        assert type(env).__name__ == "DummyEnv"
    finally:
        env.shutdown()


def test_unknown_backend_names_the_key_and_the_choices() -> None:
    with pytest.raises(RpcConfigError, match=r"spark.rpc.backend.*grpc.*local|grpc.*local"):
        RpcEnv.create("x", "127.0.0.1", 0, {"spark.rpc.backend": "carrier-pigeon"})


def test_register_backend_in_process() -> None:
    made: list[Mapping[str, str]] = []

    def factory(name: str, host: str, port: int, conf: rpcenv.Conf, client_mode: bool) -> RpcEnv:
        made.append(conf)
        return rpcenv.get_backend("local")(name, host, port, conf, client_mode)

    rpcenv.register_backend("recorded", factory)
    try:
        RpcEnv.create("x", "127.0.0.1", 0, {"spark.rpc.backend": "recorded"}).shutdown()
        assert made and made[0]["spark.rpc.backend"] == "recorded"
    finally:
        _registered.pop("recorded", None)


@pytest.mark.parametrize(
    "module_name", ["rpcenv.grpc", "rpcenv.grpc.testing", "rpcenv.local", "rpcenv.testing"]
)
def test_all_lists_what_a_module_defines(module_name: str) -> None:
    module = importlib.import_module(module_name)
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module_name
    }
    assert set(module.__all__) <= set(vars(module))
    assert defined <= set(module.__all__), (
        f"{module_name}.__all__ misses {sorted(defined - set(module.__all__))}"
    )


def test_package_reexports_every_interface() -> None:
    interface = set()
    for private in ("_address", "_conf", "_core", "_errors", "_registry"):
        interface |= set(importlib.import_module(f"rpcenv.{private}").__all__)
    interface -= {"KNOWN_PREFIXES", "BackendFactory", "error_class_by_name"}
    assert interface <= set(rpcenv.__all__), sorted(interface - set(rpcenv.__all__))
    assert set(rpcenv.__all__) <= set(vars(rpcenv))
