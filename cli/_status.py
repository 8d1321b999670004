"""`sparkctl status` and `sparkctl kill`: read and steer a running cluster.

`status` prints the cluster as readable tables, or with `--json` the same
document as the master's `/json` (Spark's field names, memory in MiB); given
a driver or application id it shows that one. `kill` stops a driver or an
application by id. Both only talk to the Master; they never touch processes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from cli._config import ConfigError, check_security, load_conf
from cli._master_client import (
    MasterClient,
    MasterNotFoundError,
    MasterUnreachableError,
    error_text,
)
from cli._options import conf_options, usage_error
from rpcenv import Conf, RpcError
from scheduler.settings import MASTER

__all__ = ["default_master", "kill", "printable", "render_table", "status"]

#: Control characters (C0, DEL, C1) but newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def default_master(conf: Conf, environ: Mapping[str, str]) -> str:
    """spark.master when it is a spark:// URL, else SPARK_MASTER_HOST/PORT, else 127.0.0.1:7077."""
    configured = conf.get(MASTER) or ""
    if configured.startswith("spark://"):
        return configured
    host = environ.get("SPARK_MASTER_HOST") or "127.0.0.1"
    port = environ.get("SPARK_MASTER_PORT") or "7077"
    return f"spark://{host}:{port}"


def printable(text: object, one_line: bool = False) -> str:
    """`text` with control characters shown as escapes (newlines too when `one_line`).

    App names, worker addresses and driver errors come from other users and programs:
    printed raw, an escape sequence in one would drive the reader's terminal.
    """
    value = str(text)
    if one_line:
        value = value.replace("\n", "\\n").replace("\t", "\\t")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces (control characters escaped)."""
    cells = [
        [printable(h, one_line=True) for h in headers],
        *[[printable(c, one_line=True) for c in row] for row in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def _mib(value: int) -> str:
    return f"{value / 1024:.1f} GiB" if value >= 1024 else f"{value} MiB"


def _client(
    master: str | None, conf_pairs: tuple[str, ...], properties_file: str | None
) -> MasterClient:
    try:
        conf = load_conf(conf_pairs, Path(properties_file) if properties_file else None, os.environ)
        check_security(conf, os.environ, serving=False)
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    url = master or default_master(conf, os.environ)
    try:
        return MasterClient(url, conf)
    except ValueError as exc:
        raise usage_error("--master", str(exc)) from None


def _print_cluster(doc: dict[str, Any], webui_url: str) -> None:
    web = f"  web UI {webui_url}" if webui_url else ""
    click.echo(printable(f"Master {doc['url']}  status {doc['status']}{web}", one_line=True))
    click.echo(
        f"Workers {doc['aliveworkers']} alive; cores {doc['coresused']}/{doc['cores']} used; "
        f"memory {_mib(doc['memoryused'])}/{_mib(doc['memory'])} used"
    )
    sections: list[tuple[str, list[str], list[list[object]]]] = [
        (
            "Workers",
            ["ID", "ADDRESS", "STATE", "CORES", "MEMORY", "WEB UI"],
            [
                [
                    w["id"],
                    f"{w['host']}:{w['port']}",
                    w["state"],
                    f"{w['coresused']}/{w['cores']}",
                    f"{_mib(w['memoryused'])}/{_mib(w['memory'])}",
                    w["webuiaddress"],
                ]
                for w in doc["workers"]
            ],
        ),
    ]
    for title, key in (
        ("Running applications", "activeapps"),
        ("Completed applications", "completedapps"),
    ):
        sections.append(
            (
                title,
                ["ID", "NAME", "STATE", "CORES", "MEMORY/EXECUTOR", "DURATION"],
                [
                    [
                        a["id"],
                        a["name"],
                        a["state"],
                        a["cores"],
                        _mib(a["memoryperexecutor"]),
                        f"{a['duration'] / 1000:.1f} s",
                    ]
                    for a in doc[key]
                ],
            )
        )
    for title, key in (
        ("Running drivers", "activedrivers"),
        ("Completed drivers", "completeddrivers"),
    ):
        sections.append(
            (
                title,
                ["ID", "STATE", "WORKER", "CORES", "MEMORY", "RESOURCE"],
                [
                    [
                        d["id"],
                        d["state"],
                        d["worker"],
                        d["cores"],
                        _mib(d["memory"]),
                        d["mainclass"],
                    ]
                    for d in doc[key]
                ],
            )
        )
    for title, headers, rows in sections:
        click.echo(f"\n{title} ({len(rows)})")
        if rows:
            click.echo(render_table(headers, rows))


def _show_one(client: MasterClient, item_id: str, as_json: bool) -> None:
    from cluster.ui import app_json, driver_json

    if not item_id.startswith("app-"):
        try:
            driver = client.driver_status(item_id)
        except MasterNotFoundError:
            if item_id.startswith("driver-"):
                raise click.ClickException(f"the master knows no driver {item_id}") from None
        else:
            doc = driver_json(driver)
            doc["exception"] = driver.exception
            if as_json:
                click.echo(json.dumps(doc, indent=2))
            else:
                where = (
                    f" on {driver.worker_host_port or driver.worker_id}" if driver.worker_id else ""
                )
                click.echo(printable(f"{driver.id} {doc['state']}{where}", one_line=True))
                if driver.exception:
                    click.echo(printable(f"  {driver.exception}"))
            return
    state = client.cluster_state()
    for app in [*state.active_apps, *state.completed_apps]:
        if app.id == item_id:
            doc = app_json(app)
            if as_json:
                click.echo(json.dumps(doc, indent=2))
                return
            click.echo(printable(f"{app.id} {doc['state']} {app.name!r}: {app.cores} cores"))
            if app.message:
                click.echo(printable(f"  {app.message}"))
            return
    raise click.ClickException(f"the master knows no driver or application {item_id}")


@click.command()
@click.argument("item_id", metavar="[DRIVER_ID|APP_ID]", required=False)
@click.option("--master", help="spark://host:port (default: spark.master, else 127.0.0.1:7077).")
@click.option("--json", "as_json", is_flag=True, help="Print the master's /json document.")
@conf_options
def status(
    item_id: str | None,
    master: str | None,
    as_json: bool,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
) -> None:
    """Show the cluster's workers, applications and drivers (or one of them)."""
    client = _client(master, conf_pairs, properties_file)
    try:
        with client:
            if item_id:
                _show_one(client, item_id, as_json)
                return
            from cluster.ui import master_state_json

            state = client.cluster_state()
            doc = master_state_json(state)
    except MasterUnreachableError as exc:
        raise usage_error("--master", str(exc)) from None
    except RpcError as exc:
        raise click.ClickException(f"the master failed to answer: {error_text(exc)}") from None
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        _print_cluster(doc, state.webui_url)


@click.command()
@click.argument("item_id", metavar="DRIVER_ID|APP_ID")
@click.option("--master", help="spark://host:port (default: spark.master, else 127.0.0.1:7077).")
@conf_options
def kill(
    item_id: str, master: str | None, conf_pairs: tuple[str, ...], properties_file: str | None
) -> None:
    """Kill a driver or an application by its id."""
    client = _client(master, conf_pairs, properties_file)
    try:
        with client:
            reply: Any = None
            if not item_id.startswith("app-"):
                try:
                    reply = client.kill_driver(item_id)
                except MasterNotFoundError:
                    if item_id.startswith("driver-"):
                        raise
            if reply is None:
                reply = client.kill_application(item_id)
    except MasterUnreachableError as exc:
        raise usage_error("--master", str(exc)) from None
    except MasterNotFoundError as exc:
        raise click.ClickException(f"nothing to kill: {exc}") from None
    except RpcError as exc:
        raise click.ClickException(
            f"the master failed to kill {item_id}: {error_text(exc)}"
        ) from None
    text = reply.message or (f"killed {item_id}" if reply.killed else f"{item_id} not killed")
    click.echo(printable(text))
    if not reply.killed:
        raise SystemExit(1)
