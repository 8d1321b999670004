"""The one exception tree of the RpcEnv.

    RpcError                         base of everything the RpcEnv raises
    ├── RpcTimeoutError              an ask got no answer in time (also TimeoutError)
    ├── RpcEndpointNotFoundError     no endpoint by that name at that address
    ├── RpcEndpointStoppedError      the endpoint or its env was stopped
    ├── RpcRemoteError               the receiver raised; carries its type and traceback
    ├── RpcMessageTooLargeError      a message exceeds spark.rpc.message.maxSize
    ├── RpcConnectionError           the peer is unreachable or the connection broke
    │   └── RpcAuthenticationError   the peer refused our proof of the shared secret
    ├── RpcProtocolError             a peer sent something that is not our protocol
    ├── RpcPermissionDeniedError     the sender may not send that message (sender policy)
    └── RpcConfigError               a bad configuration value or an unsafe setting
        └── ConfigValueError         a value that does not read as its key's kind and bounds

Each error maps onto one gRPC status code (`GRPC_STATUS`), so that a public
service can answer with a proper code and a client can map it back.
"""

from __future__ import annotations

__all__ = [
    "ConfigValueError",
    "RpcAuthenticationError",
    "RpcConfigError",
    "RpcConnectionError",
    "RpcEndpointNotFoundError",
    "RpcEndpointStoppedError",
    "RpcError",
    "RpcMessageTooLargeError",
    "RpcPermissionDeniedError",
    "RpcProtocolError",
    "RpcRemoteError",
    "RpcTimeoutError",
    "error_class_by_name",
]


class RpcError(Exception):
    """Base class of every error the RpcEnv raises."""

    GRPC_STATUS = "INTERNAL"


class RpcTimeoutError(RpcError, TimeoutError):
    """An ask received no reply within its timeout."""

    GRPC_STATUS = "DEADLINE_EXCEEDED"


class RpcEndpointNotFoundError(RpcError, LookupError):
    """No endpoint is registered under the name at the address."""

    GRPC_STATUS = "NOT_FOUND"


class RpcEndpointStoppedError(RpcError):
    """The endpoint, or the whole RpcEnv, has been stopped."""

    GRPC_STATUS = "UNAVAILABLE"


class RpcRemoteError(RpcError):
    """The receiving endpoint raised while handling an ask.

    Attributes:
        remote_type: qualified name of the remote exception's type.
        remote_message: str() of the remote exception.
        remote_traceback: the remote traceback, formatted.
    """

    GRPC_STATUS = "UNKNOWN"

    def __init__(self, remote_type: str, remote_message: str, remote_traceback: str) -> None:
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback
        text = f"{remote_type}: {remote_message}"
        if remote_traceback:
            text += "\n\nRemote traceback:\n" + remote_traceback.rstrip()
        super().__init__(text)


class RpcMessageTooLargeError(RpcError, ValueError):
    """A message is larger than the configured maximum."""

    GRPC_STATUS = "RESOURCE_EXHAUSTED"


class RpcConnectionError(RpcError, ConnectionError):
    """The peer cannot be reached, or the connection to it broke."""

    GRPC_STATUS = "UNAVAILABLE"


class RpcAuthenticationError(RpcConnectionError):
    """The peer refused the connection's proof of the shared secret."""

    GRPC_STATUS = "UNAUTHENTICATED"


class RpcProtocolError(RpcError):
    """A peer sent bytes that do not follow the RpcEnv protocol."""

    GRPC_STATUS = "INVALID_ARGUMENT"


class RpcPermissionDeniedError(RpcError, PermissionError):
    """The receiving endpoint's sender policy does not let this peer send that message."""

    GRPC_STATUS = "PERMISSION_DENIED"


class RpcConfigError(RpcError, ValueError):
    """A configuration value is malformed, or the setting is unsafe."""

    GRPC_STATUS = "INVALID_ARGUMENT"


class ConfigValueError(RpcConfigError):
    """The value of a configuration key does not read as the key's declared entry.

    The one error of every typed read (`Conf.get(ENTRY)`), whichever layer owns the
    key; the CLI adds where the value came from (a flag, a file, a variable).

    Attributes:
        key: the configuration key, e.g. "spark.worker.timeout".
        value: the text that was given.
        expected: what the entry accepts, e.g. "a duration longer than 0s".
    """

    def __init__(self, key: str, value: str, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"{key}: expected {expected}, not {value!r}")

    def __reduce__(self) -> tuple[type[ConfigValueError], tuple[str, str, str]]:
        return (type(self), (self.key, self.value, self.expected))


_BY_NAME: dict[str, type[RpcError]] = {
    cls.__name__: cls
    for cls in (
        RpcError,
        RpcTimeoutError,
        RpcEndpointNotFoundError,
        RpcEndpointStoppedError,
        RpcMessageTooLargeError,
        RpcConnectionError,
        RpcAuthenticationError,
        RpcProtocolError,
        RpcPermissionDeniedError,
        RpcConfigError,
    )
}


def error_class_by_name(name: str) -> type[RpcError] | None:
    """Return the RpcEnv error class called `name`, if there is one."""
    return _BY_NAME.get(name)
