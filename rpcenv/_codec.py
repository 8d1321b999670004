"""Envelope encoding: protobuf messages in `Any`, exceptions as RemoteError.

Shared by every backend so that a message behaves the same in-process and on
the wire. Never unpickles anything: opaque Python payloads stay `bytes`.
"""

from __future__ import annotations

import traceback

from google.protobuf import any_pb2, descriptor_pool, empty_pb2, message_factory
from google.protobuf.message import DecodeError, Message

from rpcenv._errors import (
    RpcError,
    RpcMessageTooLargeError,
    RpcProtocolError,
    RpcRemoteError,
    error_class_by_name,
)
from sparkctl.v1 import rpc_pb2

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "decode_error",
    "encode_error",
    "message_class",
    "pack",
    "unpack",
]

DEFAULT_MAX_MESSAGE_BYTES = 128 << 20
_TYPE_PREFIX = "type.googleapis.com/"
_classes: dict[str, type[Message]] = {}
_pool = descriptor_pool.Default()


def pack(message: Message, max_bytes: int, into: any_pb2.Any) -> None:
    """Pack `message` into `into`, refusing one larger than `max_bytes`.

    Raises:
        TypeError: `message` is not a protobuf message.
        RpcMessageTooLargeError: naming the type, its size and the limit.
    """
    if not isinstance(message, Message):
        raise TypeError(
            f"RpcEnv messages must be protobuf messages, not {type(message).__name__}; "
            "wrap Python objects as cloudpickle bytes inside one"
        )
    into.Pack(message)
    size = len(into.value)
    if size > max_bytes:
        raise RpcMessageTooLargeError(
            f"{message.DESCRIPTOR.full_name} of {size} bytes exceeds the maximum message size "
            f"of {max_bytes} bytes (spark.rpc.message.maxSize, in MiB)"
        )


def _import_known_modules() -> None:
    """Load the well-known types and all of sparkctl.v1, so their messages always decode."""
    import importlib
    import pkgutil

    import sparkctl.v1

    for module in _WELL_KNOWN:
        importlib.import_module(f"google.protobuf.{module}")
    for info in pkgutil.iter_modules(sparkctl.v1.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"sparkctl.v1.{info.name}")


_WELL_KNOWN = (
    "any_pb2",
    "duration_pb2",
    "empty_pb2",
    "field_mask_pb2",
    "struct_pb2",
    "timestamp_pb2",
    "wrappers_pb2",
)


def message_class(type_url: str) -> type[Message]:
    """The registered message class of an `Any`'s type URL.

    Raises:
        RpcProtocolError: no such type in this process.
    """
    cls = _classes.get(type_url)
    if cls is None:
        full_name = type_url[len(_TYPE_PREFIX) :] if type_url.startswith(_TYPE_PREFIX) else type_url
        full_name = full_name.rsplit("/", 1)[-1]
        try:
            try:
                descriptor = _pool.FindMessageTypeByName(full_name)
            except KeyError:
                _import_known_modules()
                descriptor = _pool.FindMessageTypeByName(full_name)
        except KeyError:
            raise RpcProtocolError(
                f"unknown message type {full_name!r}: "
                "import its _pb2 module in the receiving process"
            ) from None
        cls = message_factory.GetMessageClass(descriptor)
        _classes[type_url] = cls
    return cls


def unpack(payload: any_pb2.Any) -> Message:
    """Decode an `Any` into an instance of its registered message class.

    Raises:
        RpcProtocolError: unknown type or bytes that are not that type.
    """
    if not payload.type_url:
        return empty_pb2.Empty()
    cls = message_class(payload.type_url)
    message = cls()
    try:
        message.ParseFromString(payload.value)
    except DecodeError as exc:
        raise RpcProtocolError(f"malformed {cls.DESCRIPTOR.full_name}: {exc}") from None
    return message


def encode_error(error: BaseException, into: rpc_pb2.RemoteError) -> None:
    """Describe `error` (type, text, traceback) for the asking side."""
    cls = type(error)
    into.type = (
        cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    into.message = str(error)
    if isinstance(error, RpcRemoteError):
        into.type = error.remote_type
        into.message = error.remote_message
        into.traceback = error.remote_traceback
        return
    into.traceback = "".join(traceback.format_exception(error))
    if isinstance(error, RpcError) and error_class_by_name(cls.__name__) is cls:
        into.rpc_error = cls.__name__


def decode_error(remote: rpc_pb2.RemoteError) -> RpcError:
    """Rebuild the caller-side exception for a FAILURE envelope."""
    if remote.rpc_error:
        cls = error_class_by_name(remote.rpc_error)
        if cls is not None and cls is not RpcRemoteError:
            return cls(remote.message)
    return RpcRemoteError(remote.type, remote.message, remote.traceback)
