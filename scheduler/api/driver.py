"""The driver's wiring: what a SparkContext is made of, built in one place.

`build_driver` takes the checked settings (`DriverSpec`) and the task
scheduler, and starts the rest in order: the RpcEnv with the
"CoarseGrainedScheduler" endpoint (on a cluster, a gRPC env for the Master and
a tcp env for the executors, see `executors_rpc_backend`), the event log and the UI (listeners
before any executor can report), the added files, the backend (local
executor process or standalone AppClient, which gives the app id), the
scheduler's ticker and the console progress bar. `DriverRuntime.stop`
undoes it in reverse; a start that fails part-way stops what it had started.
SparkContext keeps only PySpark's methods over the result. The settings it
checks before anything starts (`scheduler_settings`, `check_task_cpus`) live here
too, so a bad value fails fast and names its key.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from rpcenv import (
    DRIVER_ID_ENV_VAR,
    SECRET_ENV_VAR,
    Conf,
    RpcAddress,
    RpcEnv,
    hide_process_environment,
)
from rpcenv import settings as rpc_keys
from scheduler import settings as keys
from scheduler.backend.addresses import check_driver_bind, driver_addresses
from scheduler.backend.base import ExecutorAllocationClient, SchedulerBackend
from scheduler.backend.endpoint import ENDPOINT_NAME, SchedulerEndpoint
from scheduler.backend.local import (
    LOCAL_RPC_BACKEND,
    LocalBackend,
    check_driver_rpc_backend,
    local_executor_env,
    local_rpc_backend,
)
from scheduler.core.allocation import AllocationSettings
from scheduler.core.taskscheduler import SchedulerSettings, TaskScheduler
from scheduler.executor.workerlimits import worker_limits_env
from scheduler.status.eventlog import EventLogSettings, EventLogWriter

if TYPE_CHECKING:
    from scheduler.api.conf import SparkConf
    from scheduler.backend.localcluster import LocalCluster
    from scheduler.status.driverui import AppStatusStore, DriverUI
    from scheduler.status.progress import ConsoleProgressBar

__all__ = [
    "CLUSTER_TCP_MAX_CONNECTIONS",
    "DriverOwner",
    "DriverRuntime",
    "DriverSpec",
    "barrier_check",
    "build_driver",
    "check_task_cpus",
    "executor_environment",
    "executors_rpc_backend",
    "python_worker_memory_mb",
    "register_exit_hook",
    "scheduler_settings",
]

log = logging.getLogger(__name__)

#: Driver settings executors receive in SPARKCTL_RPC_CONF (never a secret).
_EXECUTOR_RPC_PREFIXES = (
    "spark.rpc.",
    "spark.ssl.rpc.",
    "spark.blockManager.",
    "spark.port.maxRetries",
    "spark.sparkctl.shuffle.",
)


class DriverOwner(Protocol):
    """What `build_driver` tells the object that owns the driver (SparkContext implements it).

    The driver's parts report to their owner at four moments it must act on;
    a declared protocol rather than loose callbacks, so that mypy checks the
    context against it and a reader finds the seam in one place.
    """

    def driver_wired(self, runtime: DriverRuntime) -> None:
        """The runtime exists and its backend has not started: executors lost while it
        starts must already reach it (to be replaced)."""
        ...

    def add_configured_files(self) -> None:
        """The endpoint serves files and no executor has started: add the configured
        --py-files, --files and --archives (checked before any executor runs)."""
        ...

    def executors_gone(self) -> None:
        """The local backend gave up on its executor: the owner stops (off the backend's
        thread), so a later job fails at once instead of waiting forever."""
        ...

    def removed_by_master(self, reason: str) -> None:
        """The Master removed the application (Spark's `dead`): the owner stops."""
        ...


@dataclass
class DriverSpec:
    """What the context decided before wiring: the master, the application, its resources."""

    conf: SparkConf
    #: "local" or "standalone" (a local-cluster is standalone by then), with local[N]'s N.
    kind: str
    cores: int
    master_urls: list[str]
    app_name: str
    start_ms: int
    user: str
    #: The Python of a local executor (spark.pyspark.python, PYSPARK_PYTHON, else ours).
    python: str
    allocation: AllocationSettings | None
    #: Custom resources each executor needs (spark.executor.resource.*), for the Master.
    executor_resources: Mapping[str, int] = field(default_factory=dict)
    #: A local-cluster's Master and Workers, stopped with the driver.
    local_cluster: LocalCluster | None = None


@dataclass
class DriverRuntime:
    """The running parts of a driver, as `build_driver` wired them."""

    scheduler: TaskScheduler
    env: RpcEnv
    endpoint: SchedulerEndpoint
    app_id: str
    #: What executors dial: spark://CoarseGrainedScheduler@host:port (the advertised host).
    driver_url: str
    #: The executors' environment (their settings travel in SPARKCTL_* variables).
    executor_env: dict[str, str]
    local: bool
    local_cluster: LocalCluster | None = None
    #: A second env, where executors reach the driver when they speak another backend
    #: than the Master (tcp; `executors_rpc_backend`); None: `env` serves them too.
    executors_env: RpcEnv | None = None
    event_log: EventLogWriter | None = None
    status_store: AppStatusStore | None = None
    ui: DriverUI | None = None
    backend: SchedulerBackend | None = None
    #: The backend again when it can ask a cluster manager for executors (standalone).
    allocation_client: ExecutorAllocationClient | None = None
    progress: ConsoleProgressBar | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def scheduler_env(self) -> RpcEnv:
        """The env of the "CoarseGrainedScheduler" endpoint: where executors reach us."""
        return self.executors_env or self.env

    def stop(self) -> None:
        """Stop everything started, the UI first and the event log last (idempotent)."""
        self._stopped.set()
        if self.ui is not None:
            self.ui.stop()
        if self.progress is not None:
            self.progress.stop()
        self.scheduler.stopping = True
        if self.backend is not None:
            try:
                self.backend.stop()
            except Exception:
                log.exception("stopping the backend failed")
        if self.executors_env is not None:
            self.executors_env.shutdown()
        self.env.shutdown()
        if self.local_cluster is not None:
            self.local_cluster.stop()
        if self.event_log is not None:
            self.event_log.stop()
        if self.local:
            # Executors remove their own dirs; these are the ones of executors that died.
            for path in self.scheduler.local_dirs:
                shutil.rmtree(path, ignore_errors=True)

    def _tick(self, conf: Conf) -> None:
        """Speculation, starvation warnings, silent executors, held removals: every 100 ms."""
        timeout = conf.get(rpc_keys.NETWORK_TIMEOUT)
        last_expiry = time.monotonic()
        scheduler = self.scheduler
        while not self._stopped.wait(0.1):
            try:
                self.endpoint.flush_removals()
                if scheduler.tsms:
                    scheduler.check_speculation()
                    scheduler.check_starvation(time.monotonic())
                if time.monotonic() - last_expiry > 1.0:
                    last_expiry = time.monotonic()
                    scheduler.expire_silent_executors(timeout)
            except Exception:
                log.exception("scheduler tick failed")


def build_driver(spec: DriverSpec, scheduler: TaskScheduler, owner: DriverOwner) -> DriverRuntime:
    """Start a driver's RpcEnv, endpoint, listeners, UI and backend around `scheduler`.

    Sets spark.driver.host and spark.driver.port in `spec.conf` to where it listens;
    tells `owner` of the runtime, when to add its files, and when the driver is gone.

    Raises:
        RuntimeError: the backend could not start (no Master, no local executor).
        OSError, ValueError: the driver cannot bind as configured, or a bad setting.
    """
    conf = spec.conf
    settings = conf.to_conf()
    check_driver_rpc_backend(settings, spec.kind == "local")
    addresses = driver_addresses(settings, spec.kind, spec.master_urls, os.environ)
    check_driver_bind(addresses, settings, os.environ)
    if os.environ.get(DRIVER_ID_ENV_VAR):
        # A cluster-mode driver holds the secret on a Worker, beside other applications'
        # executors that run as the same user: they must not read it from our /proc.
        hide_process_environment()
    port = settings.get(keys.DRIVER_PORT)
    rpc_conf = dict(conf.getAll())
    local = spec.kind == "local"
    backend = executors_rpc_backend(settings, rpc_conf, local)
    # local[N] has no Master: its one env speaks the executors' backend. A cluster's
    # driver keeps its env on gRPC for the Master (the language-neutral contract) and
    # opens a second one, of the executors' backend, for them.
    env = RpcEnv.create(
        "sparkDriver",
        addresses.bind,
        port,
        {**rpc_conf, rpc_keys.RPC_BACKEND.key: backend} if backend and local else rpc_conf,
        advertise_host=addresses.advertise,
    )
    executors_env: RpcEnv | None = None
    # The settings the executors' envs share with ours (they get them in SPARKCTL_RPC_CONF).
    executor_rpc_overrides = _executor_rpc_overrides(backend, local, rpc_conf)
    if backend is not None and not local:
        try:
            executors_env = RpcEnv.create(
                "sparkDriver",
                addresses.bind,
                0,  # a pinned spark.driver.port keeps every peer on gRPC (no backend here)
                {**rpc_conf, **executor_rpc_overrides},
                advertise_host=addresses.advertise,
            )
        except BaseException:
            env.shutdown()
            raise
    scheduler_env = executors_env or env
    app_id = f"local-{spec.start_ms}" if local else f"pending-{uuid.uuid4().hex[:8]}"
    endpoint = SchedulerEndpoint(scheduler, app_id)
    # Executors dial the advertised address, which differs from the bound one only
    # when spark.driver.bindAddress says so (a NAT, a container).
    advertised = RpcAddress(addresses.advertise, scheduler_env.address.port)
    rt = DriverRuntime(
        scheduler,
        env,
        endpoint,
        app_id,
        f"spark://{ENDPOINT_NAME}@{advertised.host_port}",
        {},
        local,
        spec.local_cluster,
        executors_env=executors_env,
    )
    owner.driver_wired(rt)
    try:
        scheduler_env.setup_endpoint(ENDPOINT_NAME, endpoint)
        # As Spark's driver does: the conf says where it ended up (where executors dial).
        conf.set("spark.driver.host", addresses.advertise)
        conf.set("spark.driver.port", str(advertised.port))
        rt.executor_env = executor_environment(conf.to_conf(), scheduler.settings.task_cpus)
        if executor_rpc_overrides:  # the executors speak the backend opened for them
            executor_rpc = json.loads(rt.executor_env["SPARKCTL_RPC_CONF"])
            executor_rpc.update(executor_rpc_overrides)
            rt.executor_env["SPARKCTL_RPC_CONF"] = json.dumps(executor_rpc)
        _start_listeners(rt, spec, settings, addresses.bind, addresses.advertise)
        owner.add_configured_files()
        _start_backend(rt, spec, settings, owner)
        if rt.status_store is not None:
            rt.status_store.set_app(rt.app_id)
            rt.status_store.user = spec.user
        if rt.event_log is not None:
            rt.event_log.start(rt.app_id, spec.app_name, spec.start_ms, spec.user, conf.getAll())
        threading.Thread(
            target=rt._tick, args=(settings,), name="scheduler-ticker", daemon=True
        ).start()
        if settings.get(keys.UI_SHOW_PROGRESS) and sys.stderr.isatty():
            from scheduler.status.progress import ConsoleProgressBar

            rt.progress = ConsoleProgressBar()
            rt.progress.listen(scheduler.bus)
            rt.progress.start()
    except BaseException:
        rt.local_cluster = None  # the context stops the local cluster it started
        rt.stop()
        raise
    return rt


def _start_listeners(
    rt: DriverRuntime, spec: DriverSpec, settings: Conf, bind: str, advertise: str
) -> None:
    """The event log and the UI's store listen before any executor can report."""
    log_settings = EventLogSettings.from_conf(settings)
    if log_settings is not None:
        rt.event_log = EventLogWriter(log_settings)
        rt.scheduler.bus.add(rt.event_log)
    if not settings.get(keys.UI_ENABLED):
        return
    from scheduler.status.driverui import AppStatusStore, DriverUI
    from scheduler.status.ui import ui_auth

    # With the cluster secret the UI asks for a sign-in (the admin, or this application);
    # a bad spark.sparkctl.ui.authenticate fails the context, naming the key.
    auth = ui_auth(settings, "application UI")
    rt.status_store = AppStatusStore(rt.app_id, spec.app_name, spec.conf.getAll())
    rt.scheduler.bus.add(rt.status_store)
    try:
        port = settings.get(keys.UI_PORT)  # 0: any free port
        rt.ui = DriverUI(rt.status_store, bind, port, advertise=advertise, auth=auth)
    except OSError as exc:
        log.warning("application UI not started: %s", exc)


def _start_backend(rt: DriverRuntime, spec: DriverSpec, settings: Conf, owner: DriverOwner) -> None:
    """Start the backend; it gets the first executors and (standalone) the app id."""
    if rt.local:
        backend = LocalBackend(
            rt.scheduler,
            rt.driver_url,
            rt.app_id,
            spec.cores,
            local_executor_env({**rt.executor_env, **_local_secret_env(settings)}),
            python=spec.python,
        )
        rt.backend = backend
        # As when the Master removes an application: the context goes with its last
        # executor, so a later job fails at once instead of waiting for one forever.
        backend.on_dead = owner.executors_gone
        backend.start()
        return
    from scheduler.backend.standalone import StandaloneBackend, app_description

    description = app_description(
        spec.app_name,
        rt.driver_url,
        settings,
        rt.executor_env,
        rt.ui.url if rt.ui is not None else None,
        spec.user,
        spec.allocation,
        executor_resources=spec.executor_resources,
    )
    standalone = StandaloneBackend(
        rt.scheduler,
        rt.env,  # the AppClient talks to the Master: gRPC
        rt.endpoint,
        spec.master_urls,
        description,
        spec.allocation,
        owner.removed_by_master,
    )
    # A profile without pysparkMemory gives its Python workers the app's (PySpark 4.3).
    standalone.pyspark_memory_mb = (settings.get(keys.EXECUTOR_PYSPARK_MEMORY) or 0) >> 20
    rt.backend = rt.allocation_client = standalone
    rt.app_id = standalone.start()
    rt.endpoint.set_app_id(rt.app_id)


def executors_rpc_backend(settings: Conf, explicit: Mapping[str, str], local: bool) -> str | None:
    """The backend the driver and its executors speak instead of the configured one.

    None keeps the configured backend (gRPC unless named) for every peer. Otherwise
    tcp: plain sockets cost a message one write and one reader-thread wake-up where
    gRPC's Python runtime costs several thread hand-offs on each side, most of a tiny
    job's time. It is None when the app names spark.rpc.backend (`grpc` then means
    gRPC everywhere), asks for TLS (which tcp lacks), or, on a cluster, pins
    spark.driver.port: a firewall opened for that one port must let executors in,
    and one port serves one backend. A cluster's Master and Workers stay on gRPC.
    """
    backend = local_rpc_backend(settings, explicit)
    if backend is None or local:
        return backend
    return None if settings.get(keys.DRIVER_PORT) else backend


#: Inbound tcp connections a cluster application's envs accept unless the app says:
#: the driver's come from every executor, an executor's from every other one fetching
#: its blocks, so 256 (the key's default, enough for local[N]) would cap the cluster.
CLUSTER_TCP_MAX_CONNECTIONS = 4096


def _executor_rpc_overrides(
    backend: str | None, local: bool, explicit: Mapping[str, str]
) -> dict[str, str]:
    """What the driver's executor-facing env and the executors' envs set over the conf."""
    if backend is None:
        return {}
    overrides = {rpc_keys.RPC_BACKEND.key: backend}
    limit = rpc_keys.TCP_MAX_CONNECTIONS.key
    if backend == LOCAL_RPC_BACKEND and not local and limit not in explicit:
        overrides[limit] = str(CLUSTER_TCP_MAX_CONNECTIONS)
    return overrides


def _local_secret_env(settings: Conf) -> dict[str, str]:
    """The app's own secret for local[N]'s executor, its child: through the environment.

    A cluster's executors take the secret of their worker's host; local[N]'s has no
    other source, and a secret set only in the app's conf left it refused by its
    own driver ('no authentication token'). Never on a command line.
    """
    secret = settings.get(rpc_keys.AUTH_SECRET)
    if secret:
        return {SECRET_ENV_VAR: secret}
    secret_file = settings.get(rpc_keys.AUTH_SECRET_FILE)
    return {f"{SECRET_ENV_VAR}_FILE": secret_file} if secret_file else {}


def executor_environment(settings: Conf, cpus: int) -> dict[str, str]:
    """The environment executors get: spark.executorEnv.* and the SPARKCTL_* settings."""
    env = {
        key[len("spark.executorEnv.") :]: value
        for key, value in settings.items()
        if key.startswith("spark.executorEnv.")
    }
    env.setdefault("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))
    local_dir = settings.get(rpc_keys.LOCAL_DIR)
    if local_dir:
        env["SPARKCTL_LOCAL_DIR"] = local_dir
    env["SPARKCTL_PYTHON_WORKER_MEMORY_MB"] = str(python_worker_memory_mb(settings))
    env["SPARKCTL_TASK_CPUS"] = str(cpus)
    env.update(worker_limits_env(settings))  # the Python workers' limits
    rpc = {
        k: v
        for k, v in settings.items()
        if k.startswith(_EXECUTOR_RPC_PREFIXES) and "secret" not in k.lower()
    }
    # Executors must agree with the driver on message limits, the backend and TLS,
    # and listen for block fetches as the app says (secrets come from their env).
    env["SPARKCTL_RPC_CONF"] = json.dumps(rpc)
    interval = settings.get(keys.EXECUTOR_HEARTBEAT_INTERVAL)
    env["SPARKCTL_EXECUTOR_HEARTBEAT_INTERVAL"] = str(interval)
    return env


def python_worker_memory_mb(settings: Conf) -> int:
    """spark.python.worker.memory in MiB (at least 1): where aggregation spills."""
    return settings.get(keys.PYTHON_WORKER_MEMORY) >> 20


def scheduler_settings(
    settings: Conf, kind: str, cpus: int, max_failures: int | None
) -> SchedulerSettings:
    """The task scheduler's settings; `max_failures` is local[N,F]'s F (None: not given).

    Raises:
        ValueError: a bad value, naming its key.
    """
    scheduler = SchedulerSettings(
        task_cpus=cpus,
        max_failures=max_failures or settings.get(keys.TASK_MAX_FAILURES),
        max_stage_attempts=settings.get(keys.STAGE_MAX_ATTEMPTS),
        locality_wait=settings.get(keys.LOCALITY_WAIT),
        speculation=settings.get(keys.SPECULATION),
        speculation_multiplier=settings.get(keys.SPECULATION_MULTIPLIER),
        speculation_quantile=settings.get(keys.SPECULATION_QUANTILE),
        max_result_size=settings.get(keys.DRIVER_MAX_RESULT_SIZE),
        barrier_sync_timeout=settings.get(keys.BARRIER_SYNC_TIMEOUT),
    )
    if kind == "local" and max_failures is None and keys.TASK_MAX_FAILURES.key not in settings:
        # Spark's local[N] does not retry failed tasks; local[N,F] retries F-1 times.
        scheduler.max_failures = 1
    return scheduler


def barrier_check(settings: Conf) -> tuple[float, int]:
    """How often, and how many times, a barrier job waits for enough slots.

    Raises:
        ValueError: a bad value, naming its key.
    """
    return settings.get(keys.BARRIER_CHECK_INTERVAL), settings.get(keys.BARRIER_CHECK_MAX_FAILURES)


def check_task_cpus(settings: Conf, kind: str, local_cores: int) -> int:
    """spark.task.cpus, checked against the cores an executor will have.

    Raises:
        ValueError: not a positive number, or more than an executor's cores (local[N]
            gives N; spark.executor.cores when set), naming the keys.
    """
    cpus = settings.get(keys.TASK_CPUS)
    executor_cores = local_cores if kind == "local" else settings.get(keys.EXECUTOR_CORES)
    if executor_cores and executor_cores < cpus:
        where = f"local[{local_cores}]" if kind == "local" else "spark.executor.cores"
        raise ValueError(
            f"the number of cores per executor ({where} = {executor_cores}) must be at least "
            f"spark.task.cpus ({cpus})"
        )
    return cpus


def register_exit_hook(hook: Callable[[], None]) -> None:
    """Run `hook` at interpreter exit, before non-daemon (RpcEnv pool) threads are joined."""
    import concurrent.futures.thread  # noqa: F401 - registers its exit hook first

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(hook)
            return
        except RuntimeError:  # the interpreter is already shutting down
            return
    atexit.register(hook)
