"""`sparkctl ui-token`: the password to sign in to the web UIs of a cluster with a secret.

It is derived from the cluster secret (`webui.auth`), so it is printed only
where the secret is (SPARKCTL_SECRET, SPARKCTL_SECRET_FILE or
spark.authenticate.secret); it never contacts the cluster. The UI password is
not the secret: typing it into a browser, or sending it over plain HTTP,
opens the UIs and nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from cli._config import ConfigError, load_conf
from cli._options import conf_options, usage_error

__all__ = ["ui_token"]

#: What `ui-token --app` accepts: the Master's application ids, and local[N] ones.
_APP_ID = re.compile(r"^(app|local)-[0-9A-Za-z._-]{1,120}$")


@click.command("ui-token")
@click.option(
    "--app",
    "app_id",
    metavar="APP_ID",
    help="Print the password of one application (sees only its own pages and logs).",
)
@click.option(
    "--header", is_flag=True, help="Print only the `Authorization: Bearer ...` header line."
)
@conf_options
def ui_token(
    app_id: str | None, header: bool, conf_pairs: tuple[str, ...], properties_file: str | None
) -> None:
    """Print the user and password that sign in to the web UIs (needs the cluster secret)."""
    from rpcenv import RpcConfigError, derive_app_credential, resolve_secret
    from webui.auth import ADMIN_USER, admin_ui_password, app_ui_password

    try:
        conf = load_conf(conf_pairs, Path(properties_file) if properties_file else None, os.environ)
        secret = resolve_secret(conf)
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    except RpcConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if secret is None:
        raise click.ClickException(
            "no cluster secret here: set SPARKCTL_SECRET or SPARKCTL_SECRET_FILE (or "
            "spark.authenticate.secret.file) as on the cluster; without a secret the UIs "
            "need no sign-in"
        )
    if app_id is not None:
        if not _APP_ID.match(app_id):
            raise usage_error(
                "--app", f"{app_id[:80]!r} is not an application id (app-... or local-...)"
            )
        user, password = app_id, app_ui_password(derive_app_credential(secret, app_id))
    else:
        user, password = ADMIN_USER, admin_ui_password(secret)
    if header:
        click.echo(f"Authorization: Bearer {user}:{password}")
        return
    click.echo(f"user:     {user}")
    click.echo(f"password: {password}")
    click.echo(f"header:   Authorization: Bearer {user}:{password}")
