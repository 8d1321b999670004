"""The gRPC RpcEnv backend (the default, `spark.rpc.backend=grpc`)."""

from __future__ import annotations

from rpcenv._conf import Conf
from rpcenv.grpc._env import GrpcRpcEnv

__all__ = ["GrpcRpcEnv", "create_env"]


def create_env(
    name: str,
    host: str,
    port: int,
    conf: Conf,
    client_mode: bool,
    advertise_host: str | None = None,
) -> GrpcRpcEnv:
    """Backend factory for `spark.rpc.backend=grpc`."""
    return GrpcRpcEnv(name, host, port, conf, client_mode, advertise_host=advertise_host)
