"""The master's and worker's UI sign-in, from the daemon's conf (see `webui.auth`).

With a shared secret, both UIs ask for a UI credential; `spark.sparkctl.ui.authenticate`
turns that off (a reverse proxy doing its own sign-in) or, without a secret, is an
error. Application passwords derive from the secret, so both daemons check every
application's. This module only builds the checker; the UIs decide what a viewer sees.
"""

from __future__ import annotations

from rpcenv import Conf, derive_app_credential, resolve_secret, settings
from webui.auth import UIAuth, sign_in

__all__ = ["UI_AUTHENTICATE_KEY", "ui_auth"]

#: On (default with a secret) the UIs require a UI credential; off, they are open.
UI_AUTHENTICATE_KEY = settings.UI_AUTHENTICATE.key


def ui_auth(conf: Conf, what: str) -> UIAuth | None:
    """The sign-in of the UI `what` ("master web UI"), or None when it is open.

    Raises:
        ValueError: the setting is not a boolean, or is true without a secret.
    """
    enabled = conf.get(settings.UI_AUTHENTICATE)
    return sign_in(resolve_secret(conf), enabled, derive_app_credential, f"sparkctl {what}")
