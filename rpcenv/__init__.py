"""rpcenv: the messaging layer every sparkctl process speaks through.

Interfaces (`RpcEnv`, `RpcEndpoint`, `RpcEndpointRef`, `RpcCallContext`,
`RpcAddress`) live apart from the transports (`rpcenv.grpc`, `rpcenv.local`),
which are chosen by name with `spark.rpc.backend`. Cluster and scheduler code
imports only from here, never from a backend or from grpc.
"""

from __future__ import annotations

from rpcenv._address import RpcAddress, is_loopback_host, parse_endpoint_uri
from rpcenv._conf import KNOWN_KEYS, Conf, parse_duration, parse_size
from rpcenv._core import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv._dispatcher import current_origin
from rpcenv._errors import (
    RpcAuthenticationError,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpointNotFoundError,
    RpcEndpointStoppedError,
    RpcError,
    RpcMessageTooLargeError,
    RpcPermissionDeniedError,
    RpcProtocolError,
    RpcRemoteError,
    RpcTimeoutError,
)
from rpcenv._registry import ENTRY_POINT_GROUP, available_backends, get_backend, register_backend
from rpcenv._routes import LocalAddresses, local_addresses, route_address
from rpcenv._security import (
    APP_CREDENTIAL_ENV_VAR,
    APP_ID_ENV_VAR,
    DRIVER_ID_ENV_VAR,
    SECRET_ENV_VAR,
    derive_app_credential,
    resolve_secret,
)
from rpcenv._senders import ANYONE, LOCAL_ONLY, MessageOrigin, SenderPolicy, SenderRule

__all__ = [
    "ANYONE",
    "APP_CREDENTIAL_ENV_VAR",
    "APP_ID_ENV_VAR",
    "DRIVER_ID_ENV_VAR",
    "ENTRY_POINT_GROUP",
    "KNOWN_KEYS",
    "LOCAL_ONLY",
    "SECRET_ENV_VAR",
    "Conf",
    "LocalAddresses",
    "MessageOrigin",
    "RpcAddress",
    "RpcAuthenticationError",
    "RpcCallContext",
    "RpcConfigError",
    "RpcConnectionError",
    "RpcEndpoint",
    "RpcEndpointNotFoundError",
    "RpcEndpointRef",
    "RpcEndpointStoppedError",
    "RpcEnv",
    "RpcError",
    "RpcMessageTooLargeError",
    "RpcPermissionDeniedError",
    "RpcProtocolError",
    "RpcRemoteError",
    "RpcTimeoutError",
    "SenderPolicy",
    "SenderRule",
    "available_backends",
    "current_origin",
    "derive_app_credential",
    "get_backend",
    "is_loopback_host",
    "local_addresses",
    "parse_duration",
    "parse_endpoint_uri",
    "parse_size",
    "register_backend",
    "resolve_secret",
    "route_address",
]
