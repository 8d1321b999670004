"""The foreground lives of `start-master` and `start-worker`: service + web UI.

Each function starts the cluster service through `cluster.launch`, its web UI,
writes the pid file once ready, tells a waiting parent (ReadySignal), and then
waits for SIGTERM/SIGINT to stop both cleanly. A failure to start is reported
with its reason (port in use, unreachable master), never as a traceback.
This module never forks; daemonizing is `_daemon`'s job.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from cli._daemon import ReadySignal, remove_own_pid_file, write_pid_file
from cli._settings import MasterSettings, WorkerSettings
from rpcenv import Conf, RpcAddress, RpcEnv, RpcError, hide_process_environment
from rpcenv.settings import PORT_MAX_RETRIES
from sparkctl.v1 import deploy_pb2, master_service_pb2

if TYPE_CHECKING:
    from cluster.heartbeat_datagrams import DatagramCounts
    from cluster.launch import MasterHandle, WorkerHandle

__all__ = [
    "check_masters_reachable",
    "run_master",
    "run_worker",
]

log = logging.getLogger(__name__)

#: How long the UI waits for the service to answer a state query.
_STATE_TIMEOUT = 10.0


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _stop_event() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the daemon's way to stop cleanly)."""
    event = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return event


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (port 0 is never in use)."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port in TIME_WAIT is free for gRPC too; only a listener conflicts.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _wait_for_stop(stop: threading.Event, handle: MasterHandle | WorkerHandle) -> None:
    """Block until a signal arrives or the service ends by itself."""
    while not stop.wait(0.5):
        if handle.wait(0):
            log.warning("the service stopped by itself")
            return


def _log_ready(what: str, started: float, webui_url: str) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000
    log.info("%s in %.0f ms; web UI at %s", what, elapsed_ms, webui_url)


def run_master(settings: MasterSettings, ready: ReadySignal, pid_file: Path | None) -> int:
    """Run a master and its web UI until SIGTERM/SIGINT; returns the exit status."""
    from cluster.launch import check_daemon_rpc_backend, start_master
    from cluster.ui import MasterWebUI, ui_auth

    _configure_logging()
    stop = _stop_event()
    started = time.monotonic()
    try:
        check_daemon_rpc_backend(settings.conf, "Master")
    except ValueError as exc:  # RpcConfigError: a bad setting, before any port is taken
        return _fail(ready, f"cannot start the master: {exc}", flag="--conf")
    host, port = settings.host, settings.port
    if port_in_use(host, port):
        return _fail(
            ready,
            f"cannot start the master: port {port} on {host} is already in use "
            "(is another master running? pick another with --port)",
            flag="--port",
        )
    handles: list[MasterHandle] = []  # filled once the master runs; the UI reads through it

    def state() -> master_service_pb2.GetClusterStateResponse:
        if not handles:
            raise RuntimeError("the master is still starting")
        reply = handles[0].ref.ask_sync(master_service_pb2.GetClusterStateRequest(), _STATE_TIMEOUT)
        assert isinstance(reply, master_service_pb2.GetClusterStateResponse)
        return reply

    def datagrams() -> DatagramCounts | None:
        return handles[0].endpoint.datagram_counts() if handles else None

    max_retries = settings.conf.get(PORT_MAX_RETRIES)
    try:
        auth = ui_auth(settings.conf, "master web UI")
    except ValueError as exc:
        return _fail(ready, f"cannot start the master web UI: {exc}", flag="--conf")
    try:
        # Bound before the master starts: the master tells workers the UI's URL.
        ui = MasterWebUI(
            state, host, settings.webui_port, max_retries, auth=auth, datagrams=datagrams
        )
    except OSError as exc:
        return _fail(
            ready, f"cannot start the master web UI: {exc.strerror or exc}", flag="--webui-port"
        )
    conf = settings.conf.merged({"spark.sparkctl.master.webUiUrl": ui.url})
    try:
        handle = start_master(conf, host, port, settings.work_dir)
    except (OSError, RpcError, ValueError) as exc:
        ui.stop()
        if port_in_use(host, port):
            reason = f"cannot start the master: port {port} on {host} is already in use"
            return _fail(ready, reason, flag="--port")
        return _fail(ready, f"cannot start the master: {exc}")
    handles.append(handle)
    try:
        ui.start()
        if pid_file is not None:
            write_pid_file(pid_file)
        _log_ready(f"master {handle.url} ready", started, ui.url)
        ready.ready(url=handle.url, webui_url=ui.url)
        _wait_for_stop(stop, handle)
    finally:
        ui.stop()
        handle.stop()
        if pid_file is not None:
            remove_own_pid_file(pid_file)
    if handle.revoked:
        # Spark's Master exits too: a supervisor restarts it as a standby.
        log.error("master stopped: ZooKeeper leadership revoked (%s)", handle.revoked)
        return 1
    log.info("master stopped")
    return 0


def check_masters_reachable(masters: list[RpcAddress], conf: Conf, timeout: float) -> str | None:
    """None if at least one master answers, else why none does."""
    reasons: list[str] = []
    from cli._master_client import master_client_conf

    probe_conf = master_client_conf(conf)
    env = RpcEnv.create("sparkctl-probe", "localhost", 0, probe_conf, client_mode=True)
    try:
        for address in masters:
            try:
                env.endpoint_ref(address, "Master", timeout=timeout)
                return None
            except RpcError as exc:
                text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
                reasons.append(f"{address.to_spark_url()}: {text}")
    finally:
        env.shutdown()
    return "; ".join(reasons)


def run_worker(settings: WorkerSettings, ready: ReadySignal, pid_file: Path | None) -> int:
    """Run a worker and its web UI until SIGTERM/SIGINT; returns the exit status."""
    from cluster.launch import check_daemon_rpc_backend, start_worker
    from cluster.ui import WorkerWebUI, ui_auth

    _configure_logging()
    hide_process_environment()  # executors must not read our secret
    stop = _stop_event()
    started = time.monotonic()
    try:
        check_daemon_rpc_backend(settings.conf, "Worker")
    except ValueError as exc:  # RpcConfigError: a bad setting, before any port is taken
        return _fail(ready, f"cannot start the worker: {exc}", flag="--conf")
    host, port = settings.host, settings.port
    if port_in_use(host, port):
        return _fail(
            ready,
            f"cannot start the worker: port {port} on {host} is already in use "
            "(pick another with --port, or 0 for any)",
            flag="--port",
        )
    reason = check_masters_reachable(settings.masters, settings.conf, timeout=5.0)
    if reason is not None:
        log.error("cannot reach the master: %s", reason)
        ready.fail(f"cannot reach the master: {reason}", flag="MASTER")
        return 2
    max_retries = settings.conf.get(PORT_MAX_RETRIES)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        auth = ui_auth(settings.conf, "worker web UI")
    except ValueError as exc:
        return _fail(ready, f"cannot start the worker web UI: {exc}", flag="--conf")
    try:
        # Bound before the worker starts: it registers with the UI's URL.
        ui = WorkerWebUI(
            settings.work_dir, host, settings.webui_port, max_retries=max_retries, auth=auth
        )
    except OSError as exc:
        return _fail(
            ready, f"cannot start the worker web UI: {exc.strerror or exc}", flag="--webui-port"
        )
    try:
        handle = start_worker(
            settings.conf,
            [a.to_spark_url() for a in settings.masters],
            settings.cores,
            settings.memory_mb,
            host,
            port,
            settings.work_dir,
            webui_address=ui.url,
        )
    except (OSError, RpcError, ValueError) as exc:
        ui.stop()
        return _fail(ready, f"cannot start the worker: {exc}")

    def state() -> deploy_pb2.GetWorkerStateResponse:
        reply = handle.ref.ask_sync(deploy_pb2.GetWorkerStateRequest(), _STATE_TIMEOUT)
        assert isinstance(reply, deploy_pb2.GetWorkerStateResponse)
        return reply

    try:
        ui.attach(state)
        ui.start()
        if not handle.wait_registered(settings.register_timeout):
            return _fail(
                ready,
                f"the worker did not register with {settings.master_url} within "
                f"{settings.register_timeout:g} s (is the master up and reachable from {host}?)",
            )
        if pid_file is not None:
            write_pid_file(pid_file)
        _log_ready(f"worker {handle.worker_id} registered", started, ui.url)
        ready.ready(url=handle.url, webui_url=ui.url, worker_id=handle.worker_id)
        _wait_for_stop(stop, handle)
    finally:
        ui.stop()
        handle.stop()
        if pid_file is not None:
            remove_own_pid_file(pid_file)
    log.info("worker stopped")
    return 0


def _fail(ready: ReadySignal, reason: str, flag: str | None = None) -> int:
    """Report why the service did not start; with `flag`, a usage error of it (status 2)."""
    log.error("%s", reason)
    ready.fail(reason, flag=flag)
    return 1 if flag is None else 2
