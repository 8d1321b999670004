"""`sparkctl start-master`, `start-worker`, `stop-master`, `stop-worker`.

Each start command resolves its settings (flags > --conf > properties file >
SPARK_* environment > defaults) in the calling process, so every usage error
exits with status 2 before anything is spawned; then it either runs in the
foreground or re-executes itself detached with the resolved flags and waits
for the child to be ready. Secrets never appear in the child's arguments.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import click

from cli._config import (
    ConfigError,
    Setting,
    check_security,
    default_worker_memory_mb,
    load_conf,
    parse_memory_mb,
    parse_port,
    parse_positive_int,
    resolve,
)
from cli._daemon import (
    DaemonError,
    ReadySignal,
    daemon_files,
    hold_daemon_lock,
    spawn_daemon,
    stop_daemon,
)
from cli._options import COUNT, MEMORY, conf_options, usage_error
from cli._settings import MasterSettings, WorkerSettings, parse_master_list
from cluster import settings as cluster_settings
from rpcenv import SECRET_ENV_VAR, Conf, RpcAddress, is_loopback_host, route_address
from rpcenv import settings as rpc_settings

__all__ = ["start_master", "start_worker", "stop_master", "stop_worker"]

S = TypeVar("S", MasterSettings, WorkerSettings)

DEFAULT_HOST = "127.0.0.1"
#: How long the parent waits for a daemon to say it is ready.
READY_TIMEOUT = 60.0

_HOST_ENV = ("SPARK_LOCAL_IP",)
MASTER_HOST = Setting("--host", None, ("SPARK_MASTER_HOST", *_HOST_ENV))
MASTER_PORT = Setting("--port", None, ("SPARK_MASTER_PORT",))
MASTER_WEBUI_PORT = Setting(
    "--webui-port", cluster_settings.MASTER_UI_PORT.key, ("SPARK_MASTER_WEBUI_PORT",)
)
WORKER_CORES = Setting("--cores", cluster_settings.WORKER_CORES.key, ("SPARK_WORKER_CORES",))
WORKER_MEMORY = Setting("--memory", cluster_settings.WORKER_MEMORY.key, ("SPARK_WORKER_MEMORY",))
WORKER_HOST = Setting("--host", None, _HOST_ENV)
WORKER_PORT = Setting("--port", None, ("SPARK_WORKER_PORT",))
WORKER_WEBUI_PORT = Setting(
    "--webui-port", cluster_settings.WORKER_UI_PORT.key, ("SPARK_WORKER_WEBUI_PORT",)
)
WORK_DIR = Setting("--work-dir", None, ("SPARK_WORKER_DIR",))


def _check_bind(host: str, conf: Conf, environ: dict[str, str]) -> None:
    """Refuse a non-loopback --host without a secret before anything listens (UI included).

    The RpcEnv enforces the same rule; checking here too keeps the web UI from
    opening on that address first, and makes it a usage error naming the flag.
    """
    if is_loopback_host(host) or conf.get(rpc_settings.ALLOW_INSECURE):
        return
    if not _has_secret(conf, environ):
        raise usage_error(
            "--host",
            f"refusing to listen on non-loopback address {host!r} without a shared secret: set "
            f"{SECRET_ENV_VAR} (or spark.authenticate.secret.file), or pass --allow-insecure",
        )


def _has_secret(conf: Conf, environ: dict[str, str]) -> bool:
    given: tuple[str | None, ...] = (
        conf.get(rpc_settings.AUTH_SECRET),
        conf.get(rpc_settings.AUTH_SECRET_FILE),
        environ.get(SECRET_ENV_VAR),
        environ.get(f"{SECRET_ENV_VAR}_FILE"),
    )
    return any(given)


def _default_worker_host(masters: list[RpcAddress], conf: Conf, environ: dict[str, str]) -> str:
    """Where a worker given no --host listens: its route to the master, as peers must reach it.

    A worker on the master's host stays on loopback. One on another host takes the
    address of the interface that reaches the master (a UDP connect(): nothing is sent),
    which needs a shared secret like any non-loopback address; without one the error
    says so and names both ways out.
    """
    routed = next((r for m in masters if (r := route_address(m.host, m.port)) is not None), None)
    if routed is None or is_loopback_host(routed):
        return DEFAULT_HOST
    if _has_secret(conf, environ) or conf.get(rpc_settings.ALLOW_INSECURE):
        return routed
    raise usage_error(
        "--host",
        f"the master is on another host, so this worker would listen on {routed} (its route "
        f"to the master), which needs a shared secret: set {SECRET_ENV_VAR} (or "
        "spark.authenticate.secret.file) here and on the master, or pass --allow-insecure",
    )


def _worker_host(
    flag: str | None, masters: list[RpcAddress], conf: Conf, environ: dict[str, str]
) -> str:
    """--host, else SPARK_LOCAL_IP, else the route to the master (an empty --host stays
    empty, for `_check_host` to refuse)."""
    chosen = resolve(WORKER_HOST, flag, conf, environ, None, str.strip)
    if chosen is not None:
        return chosen
    return _default_worker_host(masters, conf, environ)


def _check_host(host: str) -> None:
    """--host must be an address of this machine (the web UI failed first, blaming its port)."""
    if not host:
        raise usage_error("--host", "must not be empty (0.0.0.0 listens on every address)")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise usage_error("--host", f"cannot resolve {host!r}: {reason}") from None
    with socket.socket(family, kind) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise usage_error(
                "--host", f"{host} is not an address of this machine: {exc.strerror or exc}"
            ) from None


def _check_ports(port: int, webui_port: int) -> None:
    """The web UI, bound first, would take the RPC port and the service fail to start."""
    if port and port == webui_port:
        raise usage_error("--webui-port", f"{webui_port} is also the RPC port (--port)")


def _work_dir(flag: str | None, environ: dict[str, str], check: bool = False) -> Path:
    """The work directory; with `check`, one that exists or can be made, and is writable.

    The check creates nothing: a start that fails later leaves no directory behind.

    Raises:
        ConfigError: (with `check`) naming --work-dir or SPARK_WORKER_DIR.
    """
    text = resolve(WORK_DIR, flag, Conf(), environ, "work", str)
    path = Path(text).expanduser().resolve()
    if not check:
        return path
    source = WORK_DIR.flag if flag is not None else "SPARK_WORKER_DIR"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "" if existing == path else f" ({existing} is not a directory)"
        raise ConfigError(source, f"the work directory {path} is not a directory{what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "" if existing == path else f" (cannot create it in {existing})"
        raise ConfigError(source, f"the work directory {path} is not writable{what}")
    return path


def _common_daemon_options(function: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.option(
                "--host",
                help="Address to bind and advertise (default 127.0.0.1; a worker: its route "
                "to the master).",
            ),
            click.option(
                "--work-dir", help="Directory for pid, log and work files (default ./work)."
            ),
            click.option(
                "--foreground", is_flag=True, help="Run in this process; do not daemonize."
            ),
            click.option(
                "--allow-insecure",
                is_flag=True,
                help="Allow a non-loopback --host without SPARKCTL_SECRET (unauthenticated!).",
            ),
            conf_options,
            click.option("--ready-fd", type=int, hidden=True),
        ]
    ):
        function = decorator(function)
    return function


def _load(
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    opts_var: str,
    allow_insecure: bool,
    environ: dict[str, str],
) -> Conf:
    conf = load_conf(
        conf_pairs, Path(properties_file) if properties_file else None, environ, opts_var
    )
    check_security(conf, environ, serving=True)
    if allow_insecure:
        conf = conf.merged({rpc_settings.ALLOW_INSECURE.key: "true"})
    return conf


def _child_args(
    command: str,
    flags: list[str],
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    allow_insecure: bool,
) -> list[str]:
    argv = [command, "--foreground", *flags]
    for pair in conf_pairs:
        argv += ["--conf", pair]
    if properties_file:
        argv += ["--properties-file", properties_file]
    if allow_insecure:
        argv.append("--allow-insecure")
    return argv


def _run_foreground(
    role: str,
    run: Callable[[S, ReadySignal, Path | None], int],
    settings: S,
    ready_fd: int | None,
) -> NoReturn:
    """Run the service here; a daemon's child reports any failure to its parent first."""
    ready = ReadySignal(ready_fd)
    files = daemon_files(settings.work_dir, role) if ready_fd is not None else None
    if files is not None:
        try:
            hold_daemon_lock(files)
        except DaemonError as exc:
            ready.fail(str(exc))
            raise SystemExit(1) from None
    try:
        code = run(settings, ready, files.pid_file if files else None)
    except BaseException as exc:
        if ready_fd is None:
            raise
        # Never leave the parent waiting, nor a half-started daemon behind.
        traceback.print_exc()
        ready.fail(f"the {role} failed to start: {exc!r} (see the log)")
        sys.stderr.flush()
        os._exit(1)
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """Exit once the service has stopped, skipping the interpreter's final teardown.

    Everything that matters is done by then (streams closed, pid file removed,
    children stopped); what is left is freeing a loaded master's objects one by one,
    3-5 s at 2,000 peers, which SIGTERM-then-wait supervisors count against us.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _spawn(role: str, argv: list[str], work_dir: Path) -> None:
    files = daemon_files(work_dir, role)
    try:
        report = spawn_daemon(argv, files, READY_TIMEOUT)
    except DaemonError as exc:
        if exc.flag is not None:
            raise usage_error(exc.flag, str(exc)) from None
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"started {role} {report.get('url', '')} (pid {report.get('pid')}), "
        f"web UI {report.get('webui_url', '')}, log {files.log_file}"
    )


@click.command("start-master")
@_common_daemon_options
@click.option("--port", type=click.IntRange(0, 65535), help="RPC port (default 7077).")
@click.option("--webui-port", type=click.IntRange(0, 65535), help="Web UI port (default 8080).")
def start_master(
    host: str | None,
    port: int | None,
    webui_port: int | None,
    work_dir: str | None,
    foreground: bool,
    allow_insecure: bool,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    ready_fd: int | None,
) -> None:
    """Start a standalone Master (a daemon unless --foreground)."""
    environ = dict(os.environ)
    try:
        conf = _load(conf_pairs, properties_file, "SPARK_MASTER_OPTS", allow_insecure, environ)
        settings = MasterSettings(
            host=resolve(MASTER_HOST, host, conf, environ, DEFAULT_HOST, str.strip),
            port=resolve(MASTER_PORT, port, conf, environ, 7077, parse_port),
            webui_port=resolve(
                MASTER_WEBUI_PORT,
                webui_port,
                conf,
                environ,
                Conf().get(cluster_settings.MASTER_UI_PORT),
                parse_port,
            ),
            work_dir=_work_dir(work_dir, environ, check=True),
            conf=conf,
        )
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    _check_host(settings.host)
    _check_bind(settings.host, conf, environ)
    _check_ports(settings.port, settings.webui_port)
    if foreground:
        from cli._services import run_master

        _run_foreground("master", run_master, settings, ready_fd)
    flags = [
        "--host", settings.host,
        "--port", str(settings.port),
        "--webui-port", str(settings.webui_port),
        "--work-dir", str(settings.work_dir),
    ]  # fmt: skip
    argv = _child_args("start-master", flags, conf_pairs, properties_file, allow_insecure)
    _spawn("master", argv, settings.work_dir)


@click.command("start-worker")
@click.argument("master")
@click.option("--cores", type=COUNT, help="Cores to offer (default: all).")
@click.option("--memory", type=MEMORY, help="Memory to offer, e.g. 4g (default: total less 1g).")
@_common_daemon_options
@click.option("--port", type=click.IntRange(0, 65535), help="RPC port (default: any free).")
@click.option("--webui-port", type=click.IntRange(0, 65535), help="Web UI port (default 8081).")
def start_worker(
    master: str,
    cores: int | None,
    memory: int | None,
    host: str | None,
    port: int | None,
    webui_port: int | None,
    work_dir: str | None,
    foreground: bool,
    allow_insecure: bool,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    ready_fd: int | None,
) -> None:
    """Start a Worker for the master at MASTER (spark://host:port[,host:port])."""
    environ = dict(os.environ)
    try:
        masters = parse_master_list(master)
    except ValueError as exc:
        raise usage_error("MASTER", str(exc)) from None
    try:
        conf = _load(conf_pairs, properties_file, "SPARK_WORKER_OPTS", allow_insecure, environ)
        settings = WorkerSettings(
            master_url=master,
            masters=masters,
            cores=resolve(
                WORKER_CORES, cores, conf, environ, os.cpu_count() or 1, parse_positive_int
            ),
            memory_mb=resolve(
                WORKER_MEMORY, memory, conf, environ, default_worker_memory_mb(), parse_memory_mb
            ),
            host=_worker_host(host, masters, conf, environ),
            port=resolve(WORKER_PORT, port, conf, environ, 0, parse_port),
            webui_port=resolve(
                WORKER_WEBUI_PORT,
                webui_port,
                conf,
                environ,
                Conf().get(cluster_settings.WORKER_UI_PORT),
                parse_port,
            ),
            work_dir=_work_dir(work_dir, environ, check=True),
            conf=conf,
            register_timeout=READY_TIMEOUT - 5.0,
        )
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    _check_host(settings.host)
    _check_bind(settings.host, conf, environ)
    _check_ports(settings.port, settings.webui_port)
    if foreground and ready_fd is None:
        from cli._services import check_masters_reachable

        # The worker would retry forever: say now that the master is not there.
        # (A daemon's child checks this itself and reports it as a usage error.)
        reason = check_masters_reachable(masters, conf, timeout=5.0)
        if reason is not None:
            raise usage_error("MASTER", f"cannot reach the master: {reason}")
    if foreground:
        from cli._services import run_worker

        _run_foreground("worker", run_worker, settings, ready_fd)
    flags = [
        master,
        "--cores", str(settings.cores),
        "--memory", f"{settings.memory_mb}m",
        "--host", settings.host,
        "--port", str(settings.port),
        "--webui-port", str(settings.webui_port),
        "--work-dir", str(settings.work_dir),
    ]  # fmt: skip
    argv = _child_args("start-worker", flags, conf_pairs, properties_file, allow_insecure)
    _spawn("worker", argv, settings.work_dir)


def _stop(role: str, work_dir: str | None, grace: float) -> None:
    directory = _work_dir(work_dir, dict(os.environ))
    files = daemon_files(directory, role)
    try:
        pid = stop_daemon(files, grace)
    except DaemonError as exc:
        raise click.ClickException(str(exc)) from None
    if pid is None:
        click.echo(f"no {role} is running (no live pid file {files.pid_file})")
        return
    click.echo(f"stopped {role} (pid {pid})")


@click.command("stop-master")
@click.option("--work-dir", help="The master's work directory (default ./work).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop_master(work_dir: str | None, timeout: float) -> None:
    """Stop the master daemon started from this work directory."""
    _stop("master", work_dir, timeout)


@click.command("stop-worker")
@click.option("--work-dir", help="The worker's work directory (default ./work).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop_worker(work_dir: str | None, timeout: float) -> None:
    """Stop the worker daemon started from this work directory."""
    _stop("worker", work_dir, timeout)
