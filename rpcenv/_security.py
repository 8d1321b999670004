"""Shared-secret authentication and bind safety, independent of the transport.

A connection proves it knows the secret with an HMAC over its env id, a
timestamp and a nonce; the secret itself never crosses the wire, and is never
logged or put on a command line. Without a secret, servers stay on loopback
unless the user opts in to insecurity explicitly.

An application credential is a key derived from the secret and an application
id (`derive_app_credential`). A process holding only that key proves it with an
`app1` token, which names the application; a verifier that may derive
application keys (a Master's, a Worker's, a driver's for its own application)
accepts it and reports which application the caller is, so that the caller can
be limited to that application. An executor holds only its application's key:
its verifier checks that application's tokens and nothing else.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import hmac
import logging
import os
import secrets
import sys
import threading
import time

from rpcenv import settings
from rpcenv._address import is_loopback_host
from rpcenv._conf import Conf
from rpcenv._errors import RpcConfigError

__all__ = [
    "APP_CREDENTIAL_ENV_VAR",
    "APP_ID_ENV_VAR",
    "DRIVER_ID_ENV_VAR",
    "SECRET_ENV_VAR",
    "AuthVerifier",
    "check_bind_allowed",
    "current_caller_app",
    "derive_app_credential",
    "hide_process_environment",
    "make_app_auth_token",
    "make_auth_token",
    "make_verifier",
    "resolve_app_credential",
    "resolve_secret",
    "token_app_id",
]

log = logging.getLogger(__name__)

SECRET_ENV_VAR = "SPARKCTL_SECRET"
SECRET_FILE_ENV_VAR = "SPARKCTL_SECRET_FILE"
#: An application's credential (hex) and its id, for a process without the secret.
APP_CREDENTIAL_ENV_VAR = "SPARKCTL_APP_CREDENTIAL"
APP_ID_ENV_VAR = "SPARKCTL_APP_ID"
#: A cluster-mode driver's id, set by the Worker that launches it: its application
#: names it when it registers, so that the application's credential reaches it.
DRIVER_ID_ENV_VAR = "SPARKCTL_DRIVER_ID"
_TOKEN_VERSION = "v1"
_APP_TOKEN_VERSION = "app1"
#: Domain separation: an application key is never a MAC some other token could need.
_APP_KEY_LABEL = b"sparkctl-app-credential:v1:"
#: How far a token's clock may be from ours.
MAX_SKEW_SECONDS = 300.0


def resolve_secret(conf: Conf) -> bytes | None:
    """The shared secret: conf `spark.authenticate.secret`, its `.file`, or the environment.

    Raises:
        RpcConfigError: the secret file cannot be read or is empty.
    """
    value = conf.get(settings.AUTH_SECRET) or os.environ.get(SECRET_ENV_VAR)
    if value:
        return value.encode()
    path = conf.get(settings.AUTH_SECRET_FILE) or os.environ.get(SECRET_FILE_ENV_VAR)
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


def resolve_app_credential() -> tuple[str, bytes] | None:
    """(app id, credential) from SPARKCTL_APP_ID and SPARKCTL_APP_CREDENTIAL, if both are set.

    Raises:
        RpcConfigError: only one of them is set, or the id cannot be named in a token.
    """
    app_id = os.environ.get(APP_ID_ENV_VAR, "")
    credential = os.environ.get(APP_CREDENTIAL_ENV_VAR, "")
    if not app_id and not credential:
        return None
    if not app_id or not credential:
        missing = APP_ID_ENV_VAR if not app_id else APP_CREDENTIAL_ENV_VAR
        raise RpcConfigError(f"{missing} must be set with the application credential")
    if not _valid_app_id(app_id):
        raise RpcConfigError(f"{APP_ID_ENV_VAR} {app_id[:80]!r} is not an application id")
    return app_id, credential.encode()


def _valid_app_id(app_id: str) -> bool:
    return 0 < len(app_id) <= 128 and app_id.isascii() and ":" not in app_id


def derive_app_credential(secret: bytes, app_id: str) -> str:
    """Application `app_id`'s credential: a key only the secret's holders can derive.

    It is hex text (it travels in an environment variable); it is not the secret and
    the secret cannot be computed from it.
    """
    return hmac.new(secret, _APP_KEY_LABEL + app_id.encode(), hashlib.sha256).hexdigest()


#: prctl(2)'s option number.
_PR_SET_DUMPABLE = 4


def hide_process_environment() -> bool:
    """Make this process's environment and memory unreadable to other processes of its user.

    A Worker's executors (and a cluster-mode driver's neighbours) run as the same
    user: without this, a task could read /proc/<pid>/environ of the Worker (its
    SPARKCTL_SECRET) or attach to it. Non-dumpable (prctl PR_SET_DUMPABLE 0), only
    root may; the children it starts are dumpable again after exec. Linux only; True
    when it took effect. For a daemon's entry point: it also turns off core dumps.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def check_bind_allowed(host: str, secret: bytes | None, conf: Conf) -> None:
    """Refuse to listen beyond loopback without a key to check callers, unless allowed.

    `secret` is the key this server checks tokens with: the shared secret, or an
    executor's application credential.

    Raises:
        RpcConfigError: naming SPARKCTL_SECRET and the opt-in.
    """
    if secret is not None or is_loopback_host(host):
        return
    if conf.get(settings.ALLOW_INSECURE):
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


def _app_mac(credential: bytes, app_id: str, env_id: str, timestamp: str, nonce: str) -> str:
    text = f"{_APP_TOKEN_VERSION}:{app_id}:{env_id}:{timestamp}:{nonce}".encode()
    return hmac.new(credential, text, hashlib.sha256).hexdigest()


def make_app_auth_token(credential: bytes, app_id: str, env_id: str) -> str:
    """A fresh proof of `app_id`'s credential, bound to `env_id`.

    `app1:<app-id>:<ts>:<nonce>:<hmac(credential, "app1:<app-id>:<env-id>:<ts>:<nonce>")>`.
    """
    timestamp = str(int(time.time()))
    nonce = secrets.token_hex(16)
    mac = _app_mac(credential, app_id, env_id, timestamp, nonce)
    return f"{_APP_TOKEN_VERSION}:{app_id}:{timestamp}:{nonce}:{mac}"


def token_app_id(token: str | None) -> str:
    """The application an `app1` token names ("" for a secret token, or none).

    Only meaningful for a token a verifier has accepted: it reads, it does not check.
    """
    if not token or not token.startswith(_APP_TOKEN_VERSION + ":"):
        return ""
    return token.split(":", 2)[1]


def make_verifier(
    secret: bytes | None, app_credential: tuple[str, bytes] | None
) -> AuthVerifier | None:
    """A server's verifier: by the secret, else by an application's credential; None: open."""
    if secret is None and app_credential is None:
        return None
    return AuthVerifier(secret, app=app_credential if secret is None else None)


_caller = threading.local()


class current_caller_app:
    """The application the caller of a public call on this thread is limited to.

    `current_caller_app.get()` is "" for the secret's holders (and outside a call);
    the transport sets it with `with current_caller_app(app_id):` around a handler,
    and an env carries it into the origin of what the handler posts to an endpoint.
    """

    def __init__(self, app_id: str) -> None:
        self._app_id = app_id
        self._previous = ""

    def __enter__(self) -> None:
        self._previous = getattr(_caller, "app_id", "")
        _caller.app_id = self._app_id

    def __exit__(self, *exc: object) -> None:
        _caller.app_id = self._previous

    @staticmethod
    def get() -> str:
        """The current thread's caller application, "" when unlimited."""
        return str(getattr(_caller, "app_id", ""))


class AuthVerifier:
    """Checks tokens; remembers recent nonces so a captured token cannot be replayed.

    Args:
        secret: the cluster's shared secret; None in a process that holds only an
            application's credential (an executor), which then checks `app1` tokens
            of that application and nothing else: it cannot check a proof of a
            secret it does not hold.
        accept_app_tokens: also accept `app1` tokens, proving a credential derived from
            the secret; only where the callers they let in are limited to their
            application (the Master, a Worker, a driver), since they prove less than
            the secret.
        app: (application id, credential) of the one application this process serves
            (an executor's, from its environment): its tokens are checked with that
            key, and another application's are refused.

    Raises:
        ValueError: neither a secret nor an application's credential.
    """

    def __init__(
        self,
        secret: bytes | None,
        accept_app_tokens: bool = False,
        app: tuple[str, bytes] | None = None,
    ) -> None:
        if secret is None and app is None:
            raise ValueError("an AuthVerifier needs the secret or an application's credential")
        self._secret = secret
        self._app = app
        self.accept_app_tokens = accept_app_tokens or app is not None
        #: When set, the one application whose `app1` tokens are accepted (a driver's
        #: own, an executor's): another application's credential is refused.
        self.only_app = app[0] if app is not None else ""
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str | None, env_id: str) -> str | None:
        """None when `token` is valid for `env_id`, else the reason it is not.

        A valid `app1` token's application is `token_app_id(token)`.
        """
        if not token:
            return "no authentication token"
        parts = token.split(":")
        if parts[0] == _APP_TOKEN_VERSION:
            if not self.accept_app_tokens:
                return "application credentials are not accepted here"
            if len(parts) != 5 or not _valid_app_id(parts[1]):
                return "malformed authentication token"
            app_id, timestamp, nonce, mac = parts[1:]
            if self.only_app and app_id != self.only_app:
                return f"only the credential of application {self.only_app} is accepted here"
            if self._app is not None and app_id == self._app[0]:
                key = self._app[1]
            elif self._secret is not None:
                key = derive_app_credential(self._secret, app_id).encode()
            else:  # unreachable: only_app is our app's id
                return "application credentials are not accepted here"
            expected = _app_mac(key, app_id, env_id, timestamp, nonce)
            return self._check(timestamp, nonce, mac, expected, "wrong application credential")
        if len(parts) != 4 or parts[0] != _TOKEN_VERSION:
            return "malformed authentication token"
        if self._secret is None:
            # Checking a proof of the secret takes the secret, which this process must
            # not hold (an executor): the admin reaches it with the app's credential.
            return (
                "this process holds only the credential of application "
                f"{self.only_app}: prove that credential, not the cluster secret"
            )
        _, timestamp, nonce, mac = parts
        return self._check(
            timestamp,
            nonce,
            mac,
            _mac(self._secret, env_id, timestamp, nonce),
            "wrong shared secret",
        )

    def _check(self, timestamp: str, nonce: str, mac: str, expected: str, wrong: str) -> str | None:
        # Whole seconds in ASCII digits only: float() would take "nan", which no clock
        # check refuses, so such a token would never expire.
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            return "malformed authentication token"
        stamped = float(timestamp)
        now = time.time()
        if abs(now - stamped) > MAX_SKEW_SECONDS:
            return "expired authentication token (check the clocks)"
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            return wrong
        with self._lock:
            if nonce in self._seen:
                return "replayed authentication token"
            self._seen[nonce] = now
            while self._seen and next(iter(self._seen.values())) < now - 2 * MAX_SKEW_SECONDS:
                self._seen.popitem(last=False)
        return None
