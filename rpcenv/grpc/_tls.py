"""TLS credentials for the gRPC backend from `spark.ssl.rpc.*` PEM files."""

from __future__ import annotations

import grpc

from rpcenv import settings
from rpcenv._conf import Conf, OptionalConfigEntry
from rpcenv._errors import RpcConfigError

__all__ = ["channel_credentials", "server_credentials", "tls_enabled"]


def tls_enabled(conf: Conf) -> bool:
    """True when `spark.ssl.rpc.enabled` is set."""
    return conf.get(settings.SSL_ENABLED)


def _read(conf: Conf, entry: OptionalConfigEntry[str], required: bool) -> bytes | None:
    key = entry.key
    path = conf.get(entry)
    if not path:
        if required:
            raise RpcConfigError(f"TLS is enabled (spark.ssl.rpc.enabled) but {key} is not set")
        return None
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise RpcConfigError(f"cannot read {key} file {path}: {exc.strerror}") from None
    # gRPC would only find out at bind or handshake time, and say little.
    if b"-----BEGIN " not in data:
        raise RpcConfigError(f"{key} file {path} is not PEM (no '-----BEGIN' line)")
    return data


def server_credentials(conf: Conf) -> grpc.ServerCredentials:
    """Server certificate and key; with needClientAuth, clients must present a trusted cert.

    Raises:
        RpcConfigError: a file is missing, unreadable or not PEM.
    """
    key = _read(conf, settings.SSL_PRIVATE_KEY, True)
    chain = _read(conf, settings.SSL_CERT_CHAIN, True)
    need_client = conf.get(settings.SSL_NEED_CLIENT_AUTH)
    roots = _read(conf, settings.SSL_TRUST_STORE, need_client)
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=roots, require_client_auth=need_client
    )


def channel_credentials(conf: Conf) -> grpc.ChannelCredentials:
    """Trust roots, plus our own certificate for mutual TLS when we have one.

    Raises:
        RpcConfigError: a file is unreadable or not PEM.
    """
    roots = _read(conf, settings.SSL_TRUST_STORE, False)
    key = _read(conf, settings.SSL_PRIVATE_KEY, False)
    chain = _read(conf, settings.SSL_CERT_CHAIN, False)
    return grpc.ssl_channel_credentials(
        root_certificates=roots, private_key=key, certificate_chain=chain
    )
