"""`sparkctl start-history-server` and `stop-history-server`.

Like start-master: settings are resolved (flags > --conf > properties file >
SPARK_HISTORY_OPTS > defaults) and checked in the calling process, so a
missing log directory is a usage error naming the flag before anything is
spawned; then the server runs in the foreground or as a daemon with a pid
file and a log file in the work directory. With the cluster secret the
history UI asks for a sign-in (docs/security.md, "Web UIs"); without one it
is open, so a non-loopback --host then needs --allow-insecure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from cli._config import ConfigError, Setting, load_conf, parse_port, resolve
from cli._daemon import (
    DaemonError,
    ReadySignal,
    daemon_files,
    hold_daemon_lock,
    remove_own_pid_file,
    write_pid_file,
)
from cli._daemon_cmds import _spawn, _stop, _work_dir
from cli._options import conf_options, usage_error
from rpcenv import Conf, RpcConfigError, is_loopback_host
from rpcenv.settings import PORT_MAX_RETRIES
from scheduler.settings import (
    HISTORY_LOG_DIRECTORY,
    HISTORY_RETAINED_APPLICATIONS,
    HISTORY_UI_PORT,
)

__all__ = ["start_history_server", "stop_history_server"]

log = logging.getLogger(__name__)

ROLE = "history-server"
DEFAULT_HOST = "127.0.0.1"
HISTORY_PORT = Setting("--port", HISTORY_UI_PORT.key, ())
HISTORY_DIR = Setting("--dir", HISTORY_LOG_DIRECTORY.key, ())


@dataclasses.dataclass(frozen=True)
class HistorySettings:
    """Everything start-history-server resolved."""

    host: str
    port: int
    log_dir: Path
    work_dir: Path
    conf: Conf


def _resolve(
    host: str | None,
    port: int | None,
    log_dir: str | None,
    work_dir: str | None,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
) -> HistorySettings:
    from scheduler.status.eventlog import log_dir_path

    environ = dict(os.environ)
    try:
        conf = load_conf(
            conf_pairs,
            Path(properties_file) if properties_file else None,
            environ,
            "SPARK_HISTORY_OPTS",
        )
        default_port = Conf().get(HISTORY_UI_PORT)
        chosen_port = resolve(HISTORY_PORT, port, conf, environ, default_port, parse_port)
        default_dir = Conf().get(HISTORY_LOG_DIRECTORY)
        text = resolve(HISTORY_DIR, log_dir, conf, environ, default_dir, str)
        directory = log_dir_path(text, "--dir")
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    except ValueError as exc:
        raise usage_error("--dir", str(exc)) from None
    conf.warn_unknown()
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise usage_error(
            "--dir",
            f"log directory {text} {what}; create it, or point --dir "
            "(spark.history.fs.logDirectory) at the applications' spark.eventLog.dir",
        )
    try:
        work = _work_dir(work_dir, environ, check=True)
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    return HistorySettings(
        host=(host or DEFAULT_HOST).strip(),
        port=chosen_port,
        log_dir=directory,
        work_dir=work,
        conf=conf,
    )


def run_history_server(settings: HistorySettings, ready: ReadySignal, pid_file: Path | None) -> int:
    """Serve the history UI until SIGTERM/SIGINT; returns the exit status."""
    from cli._services import _configure_logging, _stop_event
    from scheduler.history.provider import HistoryProvider
    from scheduler.history.server import HistoryServer
    from scheduler.status.ui import ui_auth

    _configure_logging()
    stop = _stop_event()
    retained = settings.conf.get(HISTORY_RETAINED_APPLICATIONS)
    max_retries = settings.conf.get(PORT_MAX_RETRIES)
    provider = HistoryProvider(settings.log_dir, retained)
    try:
        auth = ui_auth(settings.conf, "history server")
    except ValueError as exc:
        reason = f"cannot start the history server (--conf): {exc}"
        log.error("%s", reason)
        ready.fail(reason)
        return 1
    try:
        server = HistoryServer(provider, settings.host, settings.port, max_retries, auth)
    except OSError as exc:
        reason = f"cannot start the history server (--port): {exc.strerror or exc}"
        log.error("%s", reason)
        ready.fail(reason)
        return 1
    try:
        if pid_file is not None:
            write_pid_file(pid_file)
        log.info("history server at %s, reading %s", server.url, settings.log_dir)
        ready.ready(url=server.url, webui_url=server.url)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        if pid_file is not None:
            remove_own_pid_file(pid_file)
    log.info("history server stopped")
    return 0


def _foreground(settings: HistorySettings, ready_fd: int | None) -> NoReturn:
    ready = ReadySignal(ready_fd)
    pid_file = settings.work_dir / f"sparkctl-{ROLE}.pid" if ready_fd is not None else None
    if ready_fd is not None:
        try:
            hold_daemon_lock(daemon_files(settings.work_dir, ROLE))
        except DaemonError as exc:
            ready.fail(str(exc))
            raise SystemExit(1) from None
    try:
        code = run_history_server(settings, ready, pid_file)
    except BaseException as exc:
        if ready_fd is None:
            raise
        # Never leave the parent waiting: it reads the reason, the log has the traceback.
        traceback.print_exc()
        ready.fail(f"the history server failed to start: {exc!r} (see the log)")
        sys.stderr.flush()
        os._exit(1)
    raise SystemExit(code)


@click.command("start-history-server")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="HTTP port (default 18080).")
@click.option(
    "--dir",
    "log_dir",
    help="Event log directory, a path or file: URI (default: spark.history.fs.logDirectory, "
    "else file:/tmp/spark-events).",
)
@click.option("--work-dir", help="Directory for the pid and log files (default ./work).")
@click.option("--foreground", is_flag=True, help="Run in this process; do not daemonize.")
@click.option(
    "--allow-insecure",
    is_flag=True,
    help="Allow a non-loopback --host without a secret (the history UI is then open).",
)
@conf_options
@click.option("--ready-fd", type=int, hidden=True)
def start_history_server(
    host: str | None,
    port: int | None,
    log_dir: str | None,
    work_dir: str | None,
    foreground: bool,
    allow_insecure: bool,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    ready_fd: int | None,
) -> None:
    """Start the history server: the UI of applications that wrote an event log."""
    settings = _resolve(host, port, log_dir, work_dir, conf_pairs, properties_file)
    from scheduler.status.ui import ui_auth

    try:
        signed_in = ui_auth(settings.conf, "history server") is not None
    except (ValueError, RpcConfigError) as exc:
        raise usage_error("--conf", str(exc)) from None
    if not is_loopback_host(settings.host) and not signed_in:
        if not allow_insecure:
            raise usage_error(
                "--host",
                f"refusing to serve event logs on non-loopback address {settings.host!r}: "
                "without the cluster secret (SPARKCTL_SECRET) the history UI asks for no "
                "sign-in; set it, or pass --allow-insecure to do it anyway",
            )
        log.warning("the history UI on %s is readable by anyone who can reach it", settings.host)
    if foreground:
        _foreground(settings, ready_fd)
    argv = [
        "start-history-server",
        "--foreground",
        "--host", settings.host,
        "--port", str(settings.port),
        "--dir", str(settings.log_dir),
        "--work-dir", str(settings.work_dir),
    ]  # fmt: skip
    for pair in conf_pairs:
        argv += ["--conf", pair]
    if properties_file:
        argv += ["--properties-file", properties_file]
    if allow_insecure:
        argv.append("--allow-insecure")
    _spawn(ROLE, argv, settings.work_dir)


@click.command("stop-history-server")
@click.option("--work-dir", help="The history server's work directory (default ./work).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop_history_server(work_dir: str | None, timeout: float) -> None:
    """Stop the history server daemon started from this work directory."""
    _stop(ROLE, work_dir, timeout)
