"""The Worker's state and the helpers every Worker handler shares.

`WorkerBase` holds the executor and driver records (`worker_runners`), the
Master it registered with, its resource accounting, and the one-way sends:
to the Master (kept while unregistered), to its own inbox from helper threads
(dropped once stopping). The handlers live in `cluster.worker` and
`cluster.worker_drivers`. Nothing here blocks or starts a process.
"""

from __future__ import annotations

import collections
import logging
import os
import pathlib
import threading
import time
from collections.abc import Sequence

from google.protobuf.message import Message

from cluster import settings
from cluster._timers import SYSTEM_CLOCK, Clock, Ticker
from cluster.heartbeat_datagrams import DatagramSender
from cluster.launcher import Launcher, OsLauncher
from cluster.master_finder import MasterFinder
from cluster.memory_monitor import MemoryMonitor
from cluster.worker_runners import DriverRunner, ExecutorRunner, worker_local_dirs
from rpcenv import Conf, RpcAddress, RpcEndpoint, RpcEndpointRef, RpcError, route_address
from rpcenv.settings import LOCAL_DIR
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["ENDPOINT_NAME", "STOP_GRACE_S", "WorkerBase"]

log = logging.getLogger("cluster.worker")

ENDPOINT_NAME = "Worker"

#: Seconds an executor or driver gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 3.0


class WorkerBase(RpcEndpoint):
    """A standalone Worker's state (see `cluster.worker.Worker`).

    Args:
        conf: settings (`spark.worker.timeout`, `spark.worker.cleanup.*`).
        worker_id: this worker's id (unique per process).
        master_urls: `spark://host:port` URLs of the Master(s), tried in order.
        cores: cores it offers.
        memory_mb: memory it offers, in MiB.
        work_dir: root of the executors' and drivers' work directories.
        webui_address: its web UI's URL (shown by the Master), may be empty.
        launcher: starts and measures its child processes (`cluster.launcher.OsLauncher`
            by default; tests pass a fake one to check its accounting without processes).
        clock: monotonic seconds and one-shot timers (the executors' startup grace);
            tests pass a `FakeClock`, whose timers fire when the test advances it.
    """

    def __init__(
        self,
        conf: Conf,
        worker_id: str,
        master_urls: Sequence[str],
        cores: int,
        memory_mb: int,
        work_dir: pathlib.Path,
        webui_address: str = "",
        launcher: Launcher | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if cores <= 0:
            raise ValueError(f"worker cores must be positive, not {cores}")
        if memory_mb <= 0:
            raise ValueError(f"worker memory must be positive, not {memory_mb} MiB")
        self.conf = conf
        self.worker_id = worker_id
        self.master_urls = list(master_urls)
        self.cores = cores
        self.memory_mb = memory_mb
        self.work_dir = work_dir
        self.webui_address = webui_address
        #: Starts and measures its executors and drivers (`OsLauncher`: real processes).
        self.launcher: Launcher = launcher if launcher is not None else OsLauncher()
        self.clock = clock
        self.incarnation = time.time_ns()
        self.heartbeat_interval = max(0.05, conf.get(settings.WORKER_TIMEOUT) / 4)
        self.cleanup_enabled = conf.get(settings.WORKER_CLEANUP_ENABLED)
        self.cleanup_interval = conf.get(settings.WORKER_CLEANUP_INTERVAL)
        self.app_data_ttl = conf.get(settings.WORKER_CLEANUP_APP_DATA_TTL)
        self.memory_check_interval = conf.get(settings.WORKER_MEMORY_CHECK_INTERVAL)
        self.startup_grace = conf.get(settings.EXECUTOR_STARTUP_GRACE)
        #: The executors' local dirs (SPARK_EXECUTOR_DIRS), stronger than the app's own.
        self.local_dirs = worker_local_dirs(os.environ, conf.get(LOCAL_DIR))
        self.master_ref: RpcEndpointRef | None = None
        self.master_url = ""
        self.master_webui_url = ""
        self.master_epoch = 0
        #: The env id of the Master we registered with (its commands come over it).
        self.master_env_id = ""
        self.registered = threading.Event()
        self.executors: dict[tuple[str, int], ExecutorRunner] = {}
        #: Summaries of ended executors, for the UI's lists and log links (bounded).
        self.finished_executors: collections.deque[pb.ExecutorRunnerSummary] = collections.deque(
            maxlen=conf.get(settings.WORKER_UI_RETAINED_EXECUTORS)
        )
        self.drivers: dict[str, DriverRunner] = {}
        self.finished_drivers: collections.deque[DriverRunner] = collections.deque(
            maxlen=conf.get(settings.WORKER_UI_RETAINED_DRIVERS)
        )
        # Ended applications whose local dirs go once their executors exit (bounded).
        self.finished_apps: collections.OrderedDict[str, None] = collections.OrderedDict()
        # Masters that answered a registration: (their ref, how many unsent messages
        # went before the request), by the URL in their answer.
        self._responders: dict[str, tuple[RpcEndpointRef, int]] = {}
        self._found: dict[str, RpcEndpointRef] = {}
        self._refused = False
        self._failures = 0
        self._finder: MasterFinder | None = None
        self._tickers: list[Ticker] = []
        # Its period is the Master's to set (RegisterWorkerResponse.heartbeat_interval_ms).
        self._heartbeat: Ticker | None = None
        #: Ask the Master for UDP heartbeats (spark.sparkctl.worker.udpHeartbeats).
        self.udp_heartbeats = conf.get(settings.WORKER_UDP_HEARTBEATS)
        # Our heartbeats' socket while the Master takes them by datagram (None: the stream).
        self._datagrams: DatagramSender | None = None
        #: Told to heartbeat on the stream while keeping `_datagrams` to probe with.
        self._on_stream = False
        #: Heartbeats between probe datagrams while `_on_stream` (0: never moved yet).
        self._probe_every = 0
        self._beats_since_probe = 0
        self._monitor: MemoryMonitor | None = None
        self._launch_times: collections.deque[float] = collections.deque(maxlen=100)
        self._stopping = threading.Event()
        #: Set when on_stop has finished (its processes are gone).
        self.stopped = threading.Event()
        self._unsent: collections.deque[Message] = collections.deque(maxlen=1000)

    @property
    def url(self) -> str:
        """`spark://Worker@host:port`: how executors find this worker."""
        return f"spark://{ENDPOINT_NAME}@{self.rpc_env.address.host_port}"

    @property
    def executor_host(self) -> str:
        """The host executors advertise ({{HOSTNAME}}): ours, or our route to the Master.

        A Worker listening on a wildcard address cannot be dialled there; its
        executors take the local end of its route to the Master instead.
        """
        host = self.rpc_env.address.host
        if host not in ("0.0.0.0", "::", ""):
            return host
        for url in [self.master_url, *self.master_urls]:
            if not url:
                continue
            try:
                master = RpcAddress.from_uri(url)
            except ValueError:
                continue
            routed = route_address(master.host, master.port)
            if routed is not None:
                return routed
        return host

    @property
    def cores_used(self) -> int:
        """Cores held by running (not stopping) executors and drivers."""
        return sum(r.cores for r in self.executors.values() if not r.stop_reason) + sum(
            d.description.cores for d in self.drivers.values() if not d.killed
        )

    @property
    def memory_used_mb(self) -> int:
        """Memory held by running (not stopping) executors and drivers."""
        return sum(r.memory_mb for r in self.executors.values() if not r.stop_reason) + sum(
            d.description.memory_mb for d in self.drivers.values() if not d.killed
        )

    def launch_times(self) -> list[float]:
        """Seconds from LaunchExecutor received to process started, most recent last."""
        return list(self._launch_times)

    def _post(self, message: Message) -> None:
        """From a helper thread: post to our own inbox, unless we are stopping."""
        if not self._stopping.is_set():
            self.self_ref.send(message)

    def _stale(self, message: Message, epoch: int) -> bool:
        """A command from an older Master than the one we registered with: ignore it."""
        if epoch and self.master_epoch and epoch < self.master_epoch:
            log.warning(
                "ignoring %s from an older master (epoch %d < %d)",
                message.DESCRIPTOR.full_name,
                epoch,
                self.master_epoch,
            )
            return True
        return False

    def _send(self, ref: RpcEndpointRef | None, message: Message) -> None:
        if ref is None:
            return
        try:
            ref.send(message)
        except RpcError as exc:
            log.warning("could not send %s: %s", message.DESCRIPTOR.full_name, exc)

    def _to_master(self, message: Message) -> None:
        if self.master_ref is None:
            # Kept for the next Master, which gets them just before our registration.
            self._unsent.append(message)
            return
        self._send(self.master_ref, message)
