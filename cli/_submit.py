"""`sparkctl submit`: run an application, in client or cluster deploy mode.

Client mode runs `app.py` in a child Python with its settings in the
environment variable SPARKCTL_SUBMIT_CONF (a JSON object of Spark keys) and
the --py-files on PYTHONPATH; its output streams through and its exit status
becomes ours. Cluster mode hands a DriverDescription to the Master, with the
bytes of app.py, --py-files, --files and --archives (nothing needs to exist on
the cluster's hosts), and prints the driver id. Either way the driver's
SparkContext adds those files (spark.submit.pyFiles, spark.files,
spark.archives) and serves them to its executors. Every bad flag exits with
status 2 before anything runs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

from cli._config import ConfigError, check_security, load_conf
from cli._options import COUNT, MEMORY, conf_options, usage_error
from cli._settings import parse_master_list
from cluster.settings import MAX_FILES_SIZE
from cluster.submitted_files import MAX_FILES_KEY, check_file_name
from rpcenv import Conf, RpcAddress
from scheduler import settings as sched_settings
from scheduler.task.sparkfiles import local_path

__all__ = ["SUBMIT_CONF_ENV", "submit", "validate_master"]

SUBMIT_CONF_ENV = "SPARKCTL_SUBMIT_CONF"
#: scheduler.api.conf.WARNED_KEYS_ENV: the unknown keys this command already warned about.
WARNED_KEYS_ENV = "SPARKCTL_CONF_WARNED"
_LOCAL = re.compile(r"^local(?:\[(\*|\d+)(?:,(\d+))?\])?$")
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1
#: The largest count the wire carries (int32 fields): local[N] beyond it never registered.
_INT32_MAX = 2**31 - 1
#: What --archives accepts (what the driver can unpack), as Spark's Utils.unpack.
_ARCHIVE_SUFFIXES = (".zip", ".jar", ".tar", ".tar.gz", ".tgz")


def validate_master(master: str) -> str:
    """Check a --master value: local, local[N], local[*], local[N,F], local-cluster[N,C,M]
    or spark://...

    Raises:
        ValueError: naming what is wrong.
    """
    text = master.strip()
    if text.startswith("local-cluster"):
        from scheduler.backend.master_url import parse_local_cluster

        if parse_local_cluster(text) is None:
            raise ValueError(f"bad master {master!r}: expected local-cluster[N,C,M]")
        return text
    if text.startswith("local"):
        match = _LOCAL.match(text)
        if match is None:
            raise ValueError(
                f"bad local master {master!r}: expected local, local[N], local[*] or local[N,F]"
            )
        threads, failures = match.groups()
        if threads not in (None, "*") and not 1 <= int(threads) <= _INT32_MAX:
            raise ValueError(f"{master!r}: the number of threads must be 1..{_INT32_MAX}")
        if failures is not None and not 1 <= int(failures) <= _INT32_MAX:
            raise ValueError(f"{master!r}: the number of task failures must be 1..{_INT32_MAX}")
        return text
    parse_master_list(text)  # raises ValueError for an unknown scheme or bad host:port
    return text


def _tcp_unreachable(masters: list[RpcAddress], timeout: float) -> str | None:
    """None if a TCP connection to some master opens, else why none does.

    Only a connect: the app's SparkContext does the real handshake moments
    later, and the check must not cost the app a gRPC start-up of its own.
    """
    reasons: list[str] = []
    for address in masters:
        try:
            with socket.create_connection((address.host, address.port), timeout=timeout):
                return None
        except OSError as exc:
            reasons.append(f"{address.to_spark_url()}: {exc.strerror or exc}")
    return "; ".join(reasons)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return "secret" in lowered or "password" in lowered


@dataclasses.dataclass(frozen=True)
class _Shipped:
    """One --py-files, --files or --archives entry."""

    flag: str
    path: Path
    alias: str | None = None

    @property
    def conf_value(self) -> str:
        """As spark.submit.pyFiles / spark.files / spark.archives list it."""
        return f"{self.path}#{self.alias}" if self.alias else str(self.path)


#: Flag -> (conf key, SubmittedFile kind name).
_SHIPPING = {
    "--py-files": (sched_settings.PY_FILES.key, "SUBMITTED_FILE_KIND_PY_FILE"),
    "--files": (sched_settings.FILES.key, "SUBMITTED_FILE_KIND_FILE"),
    "--archives": (sched_settings.ARCHIVES.key, "SUBMITTED_FILE_KIND_ARCHIVE"),
}


def _shipped_files(flag: str, value: str | None) -> list[_Shipped]:
    """Parse a comma-separated --py-files/--files/--archives value (`#alias` for archives).

    Raises:
        click.BadParameter: an entry that is not a local file, or a bad archive or alias.
    """
    found: list[_Shipped] = []
    for item in (value or "").split(","):
        try:
            text = local_path(item.strip(), flag)
        except ValueError as exc:
            raise usage_error(flag, str(exc).removeprefix(f"{flag}: ")) from None
        if not text:
            continue
        alias: str | None = None
        if flag == "--archives" and "#" in text:
            text, alias = text.rsplit("#", 1)
            try:
                check_file_name(alias, "the alias")
            except ValueError as exc:
                raise usage_error(flag, f"{item.strip()!r}: {exc}") from None
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise usage_error(flag, f"{item.strip()!r} is not a file")
        if flag == "--archives" and not path.name.lower().endswith(_ARCHIVE_SUFFIXES):
            raise usage_error(
                flag, f"{item.strip()!r}: archives must end with {', '.join(_ARCHIVE_SUFFIXES)}"
            )
        found.append(_Shipped(flag, path, alias))
    return found


def _path_entries(py_files: list[Path]) -> list[str]:
    """sys.path entries for the py-files: archives as they are, .py files by directory."""
    entries: list[str] = []
    for path in py_files:
        entry = str(path.parent if path.suffix == ".py" else path)
        if entry not in entries:
            entries.append(entry)
    return entries


def _python_path(py_files: list[Path]) -> str:
    """PYTHONPATH with the py-files first, then the caller's, then this project."""
    entries = _path_entries(py_files)
    existing = os.environ.get("PYTHONPATH", "")
    entries += [e for e in existing.split(os.pathsep) if e]
    entries.append(str(_PROJECT_ROOT))  # `from scheduler import ...` without an install
    return os.pathsep.join(entries)


def _die_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn that has the child SIGKILLed when `parent` dies (Linux), else None.

    In client mode the app is the driver, as spark-submit's own JVM is: a SIGKILLed
    sparkctl must not leave it running, holding the cluster's cores with nobody reading
    its output. (No gRPC thread runs in this process yet, so a fork is safe here.)
    """
    if not sys.platform.startswith("linux"):
        return None

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # it died before the prctl took effect
            os._exit(128 + int(signal.SIGKILL))

    return setup


def _check_driver_address(master: str, conf: Conf) -> None:
    """Say before the app starts, not in its traceback, that the driver may not listen.

    A driver on a host other than the master's must listen beyond loopback, which
    needs the shared secret; the SparkContext would refuse too, but from inside
    the user's program.
    """
    from scheduler.backend.addresses import check_driver_bind, driver_addresses

    urls = [f"spark://{host}" for host in master.removeprefix("spark://").split(",")]
    try:
        check_driver_bind(driver_addresses(conf, "spark", urls, os.environ), conf, os.environ)
    except ValueError as exc:  # RpcConfigError is a ValueError too
        raise usage_error("--master", str(exc)) from None


def _check_rpc_backend(conf: Conf) -> None:
    """Say before the app starts that a cluster's driver cannot use the tcp backend."""
    from scheduler.backend.local import check_driver_rpc_backend

    try:
        check_driver_rpc_backend(conf, local=False)
    except ValueError as exc:  # RpcConfigError
        raise usage_error("--conf", str(exc)) from None


def _run_client(app: Path, app_args: tuple[str, ...], conf: Conf, py_files: list[Path]) -> int:
    env = dict(os.environ)
    env[SUBMIT_CONF_ENV] = json.dumps(dict(conf), sort_keys=True)
    env[WARNED_KEYS_ENV] = json.dumps(sorted(conf.warn_unknown()))  # logged once, here
    env["PYTHONPATH"] = _python_path(py_files)
    child = subprocess.Popen(
        [sys.executable, str(app), *app_args], env=env, preexec_fn=_die_with(os.getpid())
    )

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    # SIGTERM is passed on; Ctrl-C already reaches the app through the terminal.
    previous_term = signal.signal(signal.SIGTERM, forward)
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    return 128 - code if code < 0 else code


def _submitted_files(app: Path, shipped: list[_Shipped], conf: Conf) -> list[Any]:
    """SubmittedFile messages with the bytes of every shipped file, within the limit.

    Raises:
        click.BadParameter: two files of one name (or the app's), or too many bytes.
    """
    from sparkctl.v1 import deploy_pb2

    try:
        limit = conf.get(MAX_FILES_SIZE)
    except ValueError as exc:
        raise usage_error("--conf", str(exc)) from None
    total = sum(item.path.stat().st_size for item in shipped)
    if total > limit:
        biggest = sorted(shipped, key=lambda i: -i.path.stat().st_size)[:3]
        listing = ", ".join(
            f"{i.path.name} {i.path.stat().st_size / 2**20:.1f} MiB" for i in biggest
        )
        raise usage_error(
            shipped[0].flag
            if len({i.flag for i in shipped}) == 1
            else "--py-files/--files/--archives",
            f"cluster deploy mode sends these files with the submission: {total / 2**20:.1f} MiB "
            f"in all ({listing}) is more than {limit / 2**20:.1f} MiB ({MAX_FILES_KEY}; the "
            "master has its own): put large inputs where the cluster can read them",
        )
    names: dict[str, str] = {app.name: "APP"}
    files = []
    for item in shipped:
        try:
            check_file_name(item.path.name, "the file name")
        except ValueError as exc:
            raise usage_error(item.flag, f"{item.path}: {exc}") from None
        for name in {item.path.name, item.alias or item.path.name}:
            if name in names:
                raise usage_error(
                    item.flag, f"{item.path}: the name {name!r} is also {names[name]}'s"
                )
            names[name] = f"{item.flag} {item.path}"
        files.append(
            deploy_pb2.SubmittedFile(
                name=item.path.name,
                kind=deploy_pb2.SubmittedFileKind.Value(_SHIPPING[item.flag][1]),
                content=item.path.read_bytes(),
                alias=item.alias or "",
                source_path=str(item.path),
            )
        )
    return files


def _submit_cluster(
    master: str,
    app: Path,
    app_args: tuple[str, ...],
    conf: Conf,
    shipped: list[_Shipped],
    driver_cores: int,
    driver_memory_mb: int,
    supervise: bool,
) -> None:
    from cli._master_client import MasterClient, MasterUnreachableError, error_text
    from rpcenv import RpcError, RpcMessageTooLargeError
    from sparkctl.v1 import deploy_pb2

    files = _submitted_files(app, shipped, conf)
    # The paths are this host's: the files go by content, and the worker names its copies.
    local_keys = {key for key, _ in _SHIPPING.values()}
    description = deploy_pb2.DriverDescription(
        app_resource=str(app),
        app_args=list(app_args),
        cores=driver_cores,
        memory_mb=driver_memory_mb,
        supervise=supervise,
        # Secrets stay here: the cluster's processes have their own, and the master
        # may persist driver descriptions for recovery.
        conf={k: v for k, v in conf.items() if not _is_secret_key(k) and k not in local_keys},
        # Inline, so a worker on another machine can run it too.
        app_content=app.read_bytes(),
        files=files,
    )
    try:
        with MasterClient(master, conf) as client:
            reply = client.submit_driver(description)
    except MasterUnreachableError as exc:
        raise usage_error("--master", str(exc)) from None
    except RpcMessageTooLargeError as exc:
        # The app and its files travel inline, so that a worker on another machine can run it.
        what = f"{app} and its files" if files else str(app)
        size = (len(description.app_content) + sum(len(f.content) for f in files)) / 2**20
        raise usage_error(
            "APP",
            f"{what} ({size:.1f} MiB) are too large to send to the master: {error_text(exc)} "
            "(spark.rpc.message.maxSize of the master and of this submit)",
        ) from None
    except RpcError as exc:
        raise click.ClickException(f"the master refused the driver: {error_text(exc)}") from None
    click.echo(
        f"submitted {app.name} as {reply.driver_id}; follow it with "
        f"'sparkctl status {reply.driver_id} --master {master}'",
        err=True,
    )
    click.echo(reply.driver_id)


@click.command(context_settings={"allow_interspersed_args": False})
@click.option(
    "--master",
    help="spark://host:port, local, local[N], local[*] or local-cluster[N,C,M] (default local[*]).",
)
@click.option(
    "--deploy-mode",
    type=click.Choice(["client", "cluster"]),
    help="Run the driver here (client, default) or on a worker (cluster).",
)
@click.option("--name", help="Application name (default: the app file's name).")
@click.option("--executor-cores", type=COUNT, help="Cores per executor.")
@click.option("--executor-memory", type=MEMORY, help="Memory per executor, e.g. 1g.")
@click.option("--total-executor-cores", type=COUNT, help="Cores for the whole app.")
@click.option("--driver-cores", type=COUNT, help="Driver cores (cluster mode).")
@click.option("--driver-memory", type=MEMORY, help="Driver memory, e.g. 1g (cluster mode).")
@click.option(
    "--py-files",
    help="Comma-separated .py/.zip/.egg files for the app's and its tasks' PYTHONPATH.",
)
@click.option("--files", help="Comma-separated files for tasks to open with SparkFiles.get(name).")
@click.option(
    "--archives",
    help="Comma-separated .zip/.jar/.tar/.tar.gz/.tgz archives, unpacked for tasks (a.zip#alias).",
)
@click.option("--supervise", is_flag=True, help="Restart the driver if it fails (cluster mode).")
@conf_options
@click.argument(
    "app", type=click.Path(exists=True, dir_okay=False, readable=True, resolve_path=True)
)
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED)
def submit(
    master: str | None,
    deploy_mode: str | None,
    name: str | None,
    executor_cores: int | None,
    executor_memory: int | None,
    total_executor_cores: int | None,
    driver_cores: int | None,
    driver_memory: int | None,
    py_files: str | None,
    files: str | None,
    archives: str | None,
    supervise: bool,
    conf_pairs: tuple[str, ...],
    properties_file: str | None,
    app: str,
    app_args: tuple[str, ...],
) -> None:
    """Run APP (a Python file) with APP_ARGS on a cluster or locally."""
    try:
        base = load_conf(conf_pairs, Path(properties_file) if properties_file else None, os.environ)
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    master = master or base.get(sched_settings.MASTER) or os.environ.get("MASTER") or "local[*]"
    try:
        master = validate_master(master)
    except ValueError as exc:
        raise usage_error("--master", str(exc)) from None
    mode = deploy_mode or base.get(sched_settings.DEPLOY_MODE)
    if mode not in ("client", "cluster"):
        raise usage_error("--deploy-mode", f"{mode!r} is neither client nor cluster")
    try:
        # A client-mode app is the driver, which listens; cluster mode only dials here.
        check_security(base, os.environ, serving=mode == "client")
        if master.startswith("spark://"):
            from scheduler.core.allocation import allocation_settings

            # Checked as the app's SparkContext will check them, but before it runs.
            allocation_settings(base, local=False)
    except ConfigError as exc:
        raise usage_error(exc.source, str(exc)) from None
    except ValueError as exc:
        raise usage_error("--conf", str(exc)) from None
    if mode == "cluster" and master.startswith("local"):
        raise usage_error(
            "--deploy-mode", f"cluster deploy mode needs a spark:// master, not {master}"
        )
    given = {"--py-files": py_files, "--files": files, "--archives": archives}
    shipped: list[_Shipped] = []
    for flag, (key, _) in _SHIPPING.items():
        shipped += _shipped_files(flag, given[flag] or base.get(key))
    app_path = Path(app)
    updates: dict[str, str] = {
        "spark.master": master,
        "spark.submit.deployMode": mode,
        "spark.app.name": name or base.get(sched_settings.APP_NAME) or app_path.stem,
    }
    for flag, (key, _) in _SHIPPING.items():
        values = [item.conf_value for item in shipped if item.flag == flag]
        if values:
            updates[key] = ",".join(values)
    if executor_cores is not None:
        updates["spark.executor.cores"] = str(executor_cores)
    if executor_memory is not None:
        updates["spark.executor.memory"] = f"{executor_memory}m"
    if total_executor_cores is not None:
        updates["spark.cores.max"] = str(total_executor_cores)
    if driver_cores is not None:
        updates["spark.driver.cores"] = str(driver_cores)
    if driver_memory is not None:
        updates["spark.driver.memory"] = f"{driver_memory}m"
    if supervise:
        updates["spark.driver.supervise"] = "true"
    conf = base.merged(updates)
    if not master.startswith("local") or master.startswith("local-cluster"):
        _check_rpc_backend(conf)
    if mode == "cluster":
        try:
            cores = conf.get(sched_settings.DRIVER_CORES)
            memory_mb = conf.get(sched_settings.DRIVER_MEMORY) >> 20
        except ValueError as exc:
            raise usage_error("--conf", str(exc)) from None
        _submit_cluster(master, app_path, app_args, conf, shipped, cores, memory_mb, supervise)
        return
    if supervise:
        click.echo("warning: --supervise only applies in cluster deploy mode", err=True)
    if master.startswith("spark://"):
        reason = _tcp_unreachable(parse_master_list(master), timeout=5.0)
        if reason is not None:
            raise usage_error("--master", f"cannot reach the master: {reason}")
        _check_driver_address(master, conf)
    py_paths = [item.path for item in shipped if item.flag == "--py-files"]
    raise SystemExit(_run_client(app_path, app_args, conf, py_paths))
