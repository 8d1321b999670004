"""Sign-in for every sparkctl web UI: who is asking, and what they may see.

When the cluster has a shared secret, its UIs answer only requests that carry
a UI credential, sent as HTTP Basic (what a browser prompts for) or as
`Authorization: Bearer <user>:<password>` (scripts, Prometheus):

- user `admin` with `admin_ui_password(secret)`: sees everything;
- user `<app-id>` with `app_ui_password(app_credential)`: sees only that
  application's pages and its executors' logs.

Both passwords are derived from keys the cluster already has (an HMAC with a
label of their own), so a password that leaks from a browser or from plain
HTTP opens the UIs, never the RPC port: the secret and the application
credential themselves are never typed into a browser. `sparkctl ui-token`
prints them.

This module only checks credentials and says who the viewer is; what a viewer
may see is each UI's decision (`Viewer.may_see`). It must never import
`cluster`, `scheduler`, `cli` or `rpcenv`: the UIs hand it the keys.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import threading
from collections.abc import Callable

__all__ = [
    "ADMIN_USER",
    "ANYONE",
    "UIAuth",
    "Viewer",
    "admin_ui_password",
    "app_ui_password",
    "current_viewer",
    "parse_authorization",
    "sign_in",
    "viewing_as",
]

#: The user name of the admin's UI credential.
ADMIN_USER = "admin"
#: Domain separation: a UI password is never a MAC any RPC token could need.
_ADMIN_LABEL = b"sparkctl-ui-admin:v1"
_APP_LABEL = b"sparkctl-ui-app:v1"


def admin_ui_password(secret: bytes) -> str:
    """The admin's UI password: derived from the cluster secret, not the secret itself."""
    return hmac.new(secret, _ADMIN_LABEL, hashlib.sha256).hexdigest()


def app_ui_password(app_credential: str) -> str:
    """An application's UI password, derived from its credential (hex, as issued)."""
    return hmac.new(app_credential.encode(), _APP_LABEL, hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class Viewer:
    """Who a request is from: the admin (`app_id` ""), or one application."""

    app_id: str = ""

    @property
    def admin(self) -> bool:
        """Whether this viewer may see everything (also when sign-in is off)."""
        return not self.app_id

    def may_see(self, app_id: str) -> bool:
        """Whether this viewer may see application `app_id`'s pages and logs."""
        return self.admin or app_id == self.app_id


#: The viewer of a UI without sign-in (no secret, or sign-in switched off).
ANYONE = Viewer()


def parse_authorization(header: str | None) -> tuple[str, str] | None:
    """(user, password) of a `Basic` or `Bearer <user>:<password>` header, else None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            text = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    elif scheme.lower() == "bearer":
        text = value
    else:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password:
        return None
    return user, password


class UIAuth:
    """Checks a request's UI credential against the keys this process holds.

    Args:
        secret: the cluster secret, when this process has it (admin sign-in, and
            any application's, through `app_credential`).
        app_credential: app id -> that application's credential (hex), or None
            for an application this process cannot vouch for. A Master or Worker
            derives it from the secret; a driver knows only its own.
        realm: names the UI in the browser's prompt.
    """

    def __init__(
        self,
        secret: bytes | None,
        app_credential: Callable[[str], str | None],
        realm: str = "sparkctl",
    ) -> None:
        self._admin = admin_ui_password(secret) if secret is not None else None
        self._app_credential = app_credential
        self.realm = realm

    def viewer(self, header: str | None) -> Viewer | None:
        """The viewer a request's `Authorization` header proves, or None (answer 401)."""
        parsed = parse_authorization(header)
        if parsed is None:
            return None
        user, password = parsed
        if user == ADMIN_USER:
            if self._admin is not None and hmac.compare_digest(password, self._admin):
                return ANYONE
            return None
        if len(user) > 128 or not user.isascii():
            return None
        credential = self._app_credential(user)
        if credential is None:
            return None
        if hmac.compare_digest(password, app_ui_password(credential)):
            return Viewer(app_id=user)
        return None


def sign_in(
    secret: bytes | None,
    enabled: bool | None,
    derive_app_credential: Callable[[bytes, str], str],
    realm: str,
    setting: str = "spark.sparkctl.ui.authenticate",
) -> UIAuth | None:
    """A UI's sign-in: on when the cluster has a secret, unless `setting` turns it off.

    Args:
        secret: the cluster secret of this process, if any.
        enabled: the setting's value (None: unset, so on exactly when there is a secret).
        derive_app_credential: (secret, app id) -> that application's credential.
        realm: names the UI in the browser's prompt.
        setting: the key, for the error.

    Raises:
        ValueError: sign-in asked for without a secret to derive passwords from.
    """
    if enabled is None:
        enabled = secret is not None
    if not enabled:
        return None
    if secret is None:
        raise ValueError(
            f"{setting}=true needs the cluster's shared secret (SPARKCTL_SECRET, "
            "SPARKCTL_SECRET_FILE or spark.authenticate.secret): UI passwords derive from it"
        )
    key = secret
    return UIAuth(key, lambda app_id: derive_app_credential(key, app_id), realm)


_viewer = threading.local()


def current_viewer() -> Viewer:
    """The viewer of the request this thread answers (everyone's when sign-in is off)."""
    viewer: Viewer = getattr(_viewer, "value", ANYONE)
    return viewer


class viewing_as:
    """`with viewing_as(viewer):` around a route call (the server does it)."""

    def __init__(self, viewer: Viewer) -> None:
        self._viewer = viewer
        self._previous = ANYONE

    def __enter__(self) -> None:
        self._previous = current_viewer()
        _viewer.value = self._viewer

    def __exit__(self, *exc: object) -> None:
        _viewer.value = self._previous
