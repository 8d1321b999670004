"""Shared-secret authentication and bind safety, independent of the transport.

A connection proves it knows the secret with an HMAC over its env id, a
timestamp and a nonce; the secret itself never crosses the wire, and is never
logged or put on a command line. Without a secret, servers stay on loopback
unless the user opts in to insecurity explicitly.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time

from rpcenv._address import is_loopback_host
from rpcenv._conf import Conf
from rpcenv._errors import RpcConfigError

__all__ = [
    "SECRET_ENV_VAR",
    "AuthVerifier",
    "check_bind_allowed",
    "make_auth_token",
    "resolve_secret",
]

log = logging.getLogger(__name__)

SECRET_ENV_VAR = "SPARKCTL_SECRET"
SECRET_FILE_ENV_VAR = "SPARKCTL_SECRET_FILE"
_TOKEN_VERSION = "v1"
#: How far a token's clock may be from ours.
MAX_SKEW_SECONDS = 300.0


def resolve_secret(conf: Conf) -> bytes | None:
    """The shared secret: conf `spark.authenticate.secret`, its `.file`, or the environment.

    Raises:
        RpcConfigError: the secret file cannot be read or is empty.
    """
    value = conf.get_str("spark.authenticate.secret") or os.environ.get(SECRET_ENV_VAR)
    if value:
        return value.encode()
    path = conf.get_str("spark.authenticate.secret.file") or os.environ.get(SECRET_FILE_ENV_VAR)
    if path:
        try:
            with open(path, "rb") as handle:
                data = handle.read().strip()
        except OSError as exc:
            raise RpcConfigError(f"cannot read the secret file {path}: {exc.strerror}") from None
        if not data:
            raise RpcConfigError(f"the secret file {path} is empty")
        return data
    return None


def check_bind_allowed(host: str, secret: bytes | None, conf: Conf) -> None:
    """Refuse to listen beyond loopback without a secret, unless explicitly allowed.

    Raises:
        RpcConfigError: naming SPARKCTL_SECRET and the opt-in.
    """
    if secret is not None or is_loopback_host(host):
        return
    if conf.get_bool("spark.rpc.allowInsecure"):
        log.warning(
            "SECURITY WARNING: listening on %s without authentication: anyone who can reach "
            "this port can run code on this cluster. Set %s to require a shared secret.",
            host,
            SECRET_ENV_VAR,
        )
        return
    raise RpcConfigError(
        f"refusing to listen on non-loopback address {host!r} without a shared secret: "
        f"set {SECRET_ENV_VAR} (or spark.authenticate.secret.file), or pass --allow-insecure "
        "(spark.rpc.allowInsecure=true) to accept unauthenticated connections"
    )


def _mac(secret: bytes, env_id: str, timestamp: str, nonce: str) -> str:
    text = f"{_TOKEN_VERSION}:{env_id}:{timestamp}:{nonce}".encode()
    return hmac.new(secret, text, hashlib.sha256).hexdigest()


def make_auth_token(secret: bytes, env_id: str) -> str:
    """A fresh proof of the secret, bound to `env_id`: `v1:<ts>:<nonce>:<hmac>`."""
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)
    return f"{_TOKEN_VERSION}:{timestamp}:{nonce}:{_mac(secret, env_id, timestamp, nonce)}"


class AuthVerifier:
    """Checks tokens; remembers recent nonces so a captured token cannot be replayed."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str | None, env_id: str) -> str | None:
        """None when `token` is valid for `env_id`, else the reason it is not."""
        if not token:
            return "no authentication token"
        parts = token.split(":")
        if len(parts) != 4 or parts[0] != _TOKEN_VERSION:
            return "malformed authentication token"
        _, timestamp, nonce, mac = parts
        # Whole seconds in ASCII digits only: float() would take "nan", which no clock
        # check refuses, so such a token would never expire.
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            return "malformed authentication token"
        stamped = float(timestamp)
        now = time.time()
        if abs(now - stamped) > MAX_SKEW_SECONDS:
            return "expired authentication token (check the clocks)"
        if not hmac.compare_digest(mac, _mac(self._secret, env_id, timestamp, nonce)):
            return "wrong shared secret"
        with self._lock:
            if nonce in self._seen:
                return "replayed authentication token"
            self._seen[nonce] = now
            while self._seen and next(iter(self._seen.values())) < now - 2 * MAX_SKEW_SECONDS:
                self._seen.popitem(last=False)
        return None
