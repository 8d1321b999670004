"""Starting a Master or a Worker in this process: the API the CLI calls.

`start_master` and `start_worker` create the RpcEnv, set up the endpoint (and
the public MasterService) and return once the port listens; the handles stop
them and wait for them. This module never daemonizes, writes pid files or
parses command lines: that is the CLI's job.
"""

from __future__ import annotations

import pathlib
import socket
import time
from typing import TYPE_CHECKING

from cluster.master_finder import split_master_urls
from rpcenv import Conf, RpcConfigError, RpcEndpointRef, RpcEnv
from rpcenv import settings as rpc_settings

if TYPE_CHECKING:
    from cluster.master import Master
    from cluster.worker import Worker

# The Master and Worker modules are imported by the function that starts one,
# so that a worker process does not load the Master's and vice versa.
WORKER_ENDPOINT = "Worker"

__all__ = [
    "MasterHandle",
    "WorkerHandle",
    "check_daemon_rpc_backend",
    "start_master",
    "start_worker",
]

#: How long WorkerHandle.stop waits for the Worker to stop its processes.
STOP_WAIT_S = 15.0


class MasterHandle:
    """A running Master.

    Attributes:
        url: `spark://host:port`, what workers and drivers are given.
        rpc_env: its RpcEnv.
        ref: the "Master" endpoint.
        endpoint: the Master object itself (for in-process tests and tools).
    """

    def __init__(self, rpc_env: RpcEnv, ref: RpcEndpointRef, endpoint: Master) -> None:
        self.rpc_env = rpc_env
        self.ref = ref
        self.endpoint = endpoint
        self.url = rpc_env.address.to_spark_url()

    @property
    def revoked(self) -> str:
        """Why ZooKeeper leadership was revoked ('' if it was not): the Master stopped."""
        return self.endpoint.revoked

    def stop(self) -> None:
        """Stop the Master and close its port."""
        self.rpc_env.shutdown()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if `timeout` passed first."""
        return self.rpc_env.await_termination(timeout)


class WorkerHandle:
    """A running Worker.

    Attributes:
        url: `spark://Worker@host:port`.
        worker_id: its id at the Master.
        rpc_env: its RpcEnv.
        ref: the "Worker" endpoint.
        endpoint: the Worker object itself (for in-process tests and tools).
    """

    def __init__(self, rpc_env: RpcEnv, ref: RpcEndpointRef, endpoint: Worker) -> None:
        self.rpc_env = rpc_env
        self.ref = ref
        self.endpoint = endpoint
        self.worker_id = endpoint.worker_id
        self.url = f"spark://{WORKER_ENDPOINT}@{rpc_env.address.host_port}"

    def wait_registered(self, timeout: float | None = None) -> bool:
        """Block until a Master accepted this worker; False if `timeout` passed first."""
        return self.endpoint.registered.wait(timeout)

    def stop(self) -> None:
        """Stop the Worker: its executors and drivers are killed, its port closed.

        The endpoint stops first, while the env can still tell the Master
        (WorkerStopping), then the env shuts down.
        """
        try:
            self.rpc_env.stop(self.ref)
            self.endpoint.stopped.wait(STOP_WAIT_S)
        finally:
            self.rpc_env.shutdown()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if `timeout` passed first."""
        return self.rpc_env.await_termination(timeout)


def _conf(conf: Conf | dict[str, str]) -> Conf:
    return conf if isinstance(conf, Conf) else Conf(conf)


def check_daemon_rpc_backend(settings: Conf, role: str) -> None:
    """Refuse the tcp backend for a Master or Worker: they must stay on gRPC.

    Their peers (drivers, executors, other languages' clients of MasterService)
    dial them over gRPC; a Master on tcp started, served no MasterService and
    answered nobody.

    Raises:
        RpcConfigError: naming the key.
    """
    backend = settings.get(rpc_settings.RPC_BACKEND)
    if backend == "tcp":
        raise RpcConfigError(
            f"spark.rpc.backend={backend} cannot serve a {role}: Masters and Workers speak "
            "gRPC (their services are the language-neutral contract in proto/, and their "
            "peers dial them with it); remove the setting"
        )


def start_master(conf: Conf, host: str, port: int, work_dir: pathlib.Path) -> MasterHandle:
    """Start a Master listening on `host:port` (0 = any free port).

    Raises:
        ValueError: a bad setting (e.g. spark.worker.timeout, recovery mode).
        RpcConfigError: an unsafe bind (non-loopback without a secret).
        OSError: the port is taken.
    """
    from cluster.master import ENDPOINT_NAME as MASTER_ENDPOINT
    from cluster.master import Master
    from cluster.master_service import serve_master_service

    settings = _conf(conf)
    check_daemon_rpc_backend(settings, "Master")
    if not 0 <= port < 65536:
        raise ValueError(f"bad master port {port}: expected 0-65535")
    work_dir.mkdir(parents=True, exist_ok=True)
    master = Master(settings, work_dir)  # validates the conf before a port is taken
    try:
        env = RpcEnv.create("sparkMaster", host, port, settings)
    except BaseException:
        master.persistence.close()  # e.g. the ZooKeeper session opened for recovery
        raise
    try:
        ref = env.setup_endpoint(MASTER_ENDPOINT, master)
        serve_master_service(env, ref)
    except BaseException:
        env.shutdown()
        raise
    return MasterHandle(env, ref, master)


def start_worker(
    conf: Conf,
    master_urls: list[str],
    cores: int,
    memory_mb: int,
    host: str,
    port: int,
    work_dir: pathlib.Path,
    webui_address: str = "",
) -> WorkerHandle:
    """Start a Worker on `host:port` that registers with the first reachable Master.

    Returns once the Worker listens; `WorkerHandle.wait_registered` waits for
    the Master's acceptance.

    Raises:
        ValueError: bad master URL, non-positive cores or memory, bad port.
        RpcConfigError: an unsafe bind (non-loopback without a secret).
        OSError: the port is taken.
    """
    from cluster.worker import Worker

    settings = _conf(conf)
    check_daemon_rpc_backend(settings, "Worker")
    urls = split_master_urls(master_urls)
    # Both travel as int32: a larger value failed to serialize and never registered.
    if not 0 < cores < 2**31:
        raise ValueError(f"--cores must be a positive number below 2^31, not {cores}")
    if not 0 < memory_mb < 2**31:
        raise ValueError(f"--memory must be positive and below 2^31 MiB, not {memory_mb} MiB")
    if not 0 <= port < 65536:
        raise ValueError(f"bad worker port {port}: expected 0-65535")
    work_dir.mkdir(parents=True, exist_ok=True)
    env = RpcEnv.create("sparkWorker", host, port, settings)
    try:
        address = env.address
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        worker_id = f"worker-{stamp}-{address.host}-{address.port}"
        worker = Worker(settings, worker_id, urls, cores, memory_mb, work_dir, webui_address)
        ref = env.setup_endpoint(WORKER_ENDPOINT, worker)
    except BaseException:
        env.shutdown()
        raise
    return WorkerHandle(env, ref, worker)


def default_host() -> str:
    """This machine's host name, as Spark advertises by default."""
    return socket.gethostname()
