"""The one conformance suite, run unchanged against every built-in backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest

from rpcenv import RpcEnv
from rpcenv.testing import CHECKS, EnvFactory


def factory(backend: str) -> EnvFactory:
    def make_env(
        name: str, client_mode: bool = False, conf: Mapping[str, str] | None = None
    ) -> RpcEnv:
        settings = {"spark.rpc.backend": backend, **(conf or {})}
        return RpcEnv.create(name, "127.0.0.1", 0, settings, client_mode=client_mode)

    return make_env


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("backend", ["local", "grpc"])
def test_conformance(
    backend: str, check: Callable[[EnvFactory], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    check(factory(backend))
