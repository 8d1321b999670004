"""The standalone backend: the "AppClient" endpoint that talks to the Master.

It registers the application (ApplicationDescription with the executor
command whose {{...}} placeholders the Worker fills in), follows the
Master's ExecutorAdded / ExecutorUpdated / ApplicationRemoved pushes, and
unregisters on stop. Executors themselves register with the driver's
"CoarseGrainedScheduler" endpoint; this module never schedules tasks.

With spark.dynamicAllocation.enabled, an `ExecutorAllocator` thread runs the
policy of `scheduler.core.allocation` every 100 ms and carries out its decisions here:
RequestExecutors with the new total, KillExecutors with idle executors'
ids (taken out of task offers first, so that no task lands on them).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from google.protobuf.message import Message

from rpcenv import (
    DRIVER_ID_ENV_VAR,
    Conf,
    RpcAddress,
    RpcAuthenticationError,
    RpcEndpoint,
    RpcEndpointRef,
    RpcEnv,
    RpcRemoteError,
)
from scheduler import settings
from scheduler.backend.endpoint import (
    WORKER_PYTHON,
    SchedulerEndpoint,
    executor_argv,
    executor_python,
)
from scheduler.backend.senders import APP_CLIENT_SENDERS
from scheduler.core.allocation import (
    AllocationPolicy,
    AllocationSettings,
    profile_settings,
    read_snapshot,
)
from scheduler.core.taskscheduler import ExecutorHandle, TaskScheduler
from scheduler.executor.workerlimits import (
    profile_tasks_per_executor,
    profile_worker_limit_mb,
    task_profile_worker_limit_mb,
)
from scheduler.resource.profile import ResourceProfile
from sparkctl.v1 import deploy_pb2 as dpb
from sparkctl.v1 import master_service_pb2 as api
from sparkctl.v1 import scheduler_pb2 as pb

__all__ = ["APP_CLIENT_ENDPOINT", "ExecutorAllocator", "StandaloneBackend", "app_description"]

log = logging.getLogger(__name__)

APP_CLIENT_ENDPOINT = "AppClient"
_ENDED = {
    dpb.EXECUTOR_STATE_KILLED,
    dpb.EXECUTOR_STATE_FAILED,
    dpb.EXECUTOR_STATE_LOST,
    dpb.EXECUTOR_STATE_EXITED,
}


class AppClient(RpcEndpoint):
    """Registers the application with every Master it is given and follows the leader.

    As Spark's StandaloneAppClient: the registration goes to all Masters at once;
    only the ALIVE one accepts (a standby refuses), and a newly elected leader that
    recovered the application says so with MasterChanged, upon which the client
    registers again with it under the same application id.
    """

    #: Checked before every handler: news only from our Master (backend.senders).
    sender_policy = APP_CLIENT_SENDERS

    def __init__(self, backend: StandaloneBackend) -> None:
        self._backend = backend
        self.master: RpcEndpointRef | None = None
        #: The newest Master epoch we registered under: an older leader's MasterChanged
        #: (a deposed Master's late message) is ignored.
        self.master_epoch = 0
        self._reconnect_attempts = 0
        # The current registration round: asks outstanding, and why the others failed.
        self._pending = 0
        self._errors: list[str] = []
        self._fatal = False
        # Masters that accepted us, by the URL in their answer (set on the ask's thread).
        self._responders: dict[str, RpcEndpointRef] = {}

    def on_start(self) -> None:
        self._register(self._backend.master_urls)

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, dpb.ExecutorAdded):
            log.info("executor %s added on %s", message.executor_id, message.worker_id)
            self._backend.executor_announced(str(message.executor_id))
        elif isinstance(message, dpb.ExecutorUpdated):
            if message.state == dpb.EXECUTOR_STATE_FAILED:
                log.warning("executor %s failed: %s", message.executor_id, message.message)
            if message.state in _ENDED:
                self._backend.executor_unannounced(str(message.executor_id))
                reason = message.message or dpb.ExecutorState.Name(message.state)
                self._backend.executor_ended(str(message.executor_id), reason)
        elif isinstance(message, dpb.ApplicationRemoved):
            self._backend.application_removed(message.message, message.state)
        elif isinstance(message, dpb.MasterChanged):
            self._on_master_changed(message)
        elif isinstance(message, dpb.RegisterApplicationResponse):
            self._on_registered(message)
        elif isinstance(message, dpb.RegistrationFailed):
            self._on_registration_failed(message)
        elif isinstance(message, pb.ReregisterApplication) and self.master is None:
            self._register(self._backend.master_urls)

    def on_disconnected(self, address: RpcAddress) -> None:
        if self.master is not None and address == self.master.address:
            log.warning(
                "lost the connection to the Master at %s; executors keep running, "
                "registering again when a Master is back",
                address,
            )
            self.master = None
            self._schedule_reregister(0.5)

    def master_addresses(self) -> set[RpcAddress]:
        """Where a Master may speak from: the URLs we were given, the one we follow."""
        found = {self.master.address} if self.master is not None else set()
        for url in self._backend.master_urls:
            for part in url.removeprefix("spark://").split(","):
                try:
                    found.add(RpcAddress.from_uri(f"spark://{part}"))
                except ValueError:
                    continue
        return found

    def _on_master_changed(self, message: dpb.MasterChanged) -> None:
        """A newly elected leader recovered our application: register with it again."""
        if self._backend.stopped or self._backend.app_id is None:
            return
        if message.master_epoch and message.master_epoch < self.master_epoch:
            log.warning(
                "ignoring MasterChanged from an older master (epoch %d < %d)",
                message.master_epoch,
                self.master_epoch,
            )
            return
        self.master_epoch = max(self.master_epoch, message.master_epoch)
        log.info("the Master changed to %s; registering the application again", message.master_url)
        self.master = None
        self._register([message.master_url], force=True)

    def _register(self, urls: list[str], force: bool = False) -> None:
        """Ask every Master in `urls` to take the application (again, once it has an id).

        A round still waiting for answers is not doubled, unless `force`d (a new leader).
        """
        backend = self._backend
        if backend.stopped or (self._pending and not force):
            return
        if backend.app_id is not None:
            self._reconnect_attempts += 1
        self._errors = []
        self._fatal = False
        for url in urls:
            uri = f"spark://Master@{url.removeprefix('spark://')}"
            try:
                master = self.rpc_env.endpoint_ref(uri, timeout=5.0)
            except Exception as exc:
                self._errors.append(f"{url}: {exc}")
                # A Master that refuses our proof of the secret will refuse it again.
                self._fatal = self._fatal or isinstance(exc, RpcAuthenticationError)
                continue
            request = dpb.RegisterApplicationRequest(
                description=backend.description,
                driver_endpoint=APP_CLIENT_ENDPOINT,
                app_id=backend.app_id or "",
                # Set by the Worker that launched us in cluster mode: our driver id.
                driver_id=os.environ.get(DRIVER_ID_ENV_VAR, ""),
            )
            # Asked from our own inbox, so the Master keeps a ref back to us for pushes.
            master.ask(request, 30.0).add_done_callback(self._answered(url, master))
            self._pending += 1
        if not self._pending:
            self._round_failed()

    def _answered(
        self, url: str, master: RpcEndpointRef
    ) -> Callable[[concurrent.futures.Future[Message]], None]:
        ref = self.self_ref

        def answered(future: concurrent.futures.Future[Message]) -> None:
            try:
                reply = future.result()
            except Exception as exc:
                standby = "StandbyMasterError" in getattr(exc, "remote_type", "")
                fatal = isinstance(exc, RpcRemoteError) and not standby
                text = getattr(exc, "remote_message", "") or str(exc)
                ref.send(dpb.RegistrationFailed(master_url=url, reason=text, fatal=fatal))
                return
            if isinstance(reply, dpb.RegisterApplicationResponse):
                self._responders[reply.master_url] = master
            ref.send(reply)

        return answered

    def _on_registered(self, reply: dpb.RegisterApplicationResponse) -> None:
        self._pending = max(0, self._pending - 1)
        master = self._responders.pop(reply.master_url, None)
        if master is None:
            return
        if self.master is not None:
            if master.address != self.master.address:
                # Two Masters accepted (both ALIVE: not an HA setup): leave the second.
                log.warning("master %s also accepted the application; leaving it", reply.master_url)
                master.send(dpb.UnregisterApplication(app_id=reply.app_id))
            return
        self.master = master
        self.master_epoch = max(self.master_epoch, reply.master_epoch)
        self._reconnect_attempts = 0
        backend = self._backend
        if backend.app_id is None:
            backend.registered(reply)
            return
        backend.reregistered(reply)
        allocator = backend.allocator
        if allocator is not None:
            # A Master that had forgotten the app starts it at initialExecutors again.
            # (With the executor totals of each stage-level profile, and their shapes.)
            master.ask(allocator.request(reply.app_id), 10.0)

    def _on_registration_failed(self, failure: dpb.RegistrationFailed) -> None:
        self._pending = max(0, self._pending - 1)
        self._errors.append(f"{failure.master_url}: {failure.reason}")
        self._fatal = self._fatal or failure.fatal
        if not self._pending and self.master is None:
            self._round_failed()

    def _round_failed(self) -> None:
        """No Master took the application in this round: give up, or try again later."""
        reasons = "; ".join(self._errors) or "no Master answered"
        if self._backend.app_id is None and self._fatal:
            self._backend.registration_failed(reasons)
            return
        log.info("no ALIVE Master took the application yet (%s); retrying", reasons)
        self._schedule_reregister(min(5.0, 0.5 * 2 ** min(self._reconnect_attempts, 4)))

    def _schedule_reregister(self, delay: float) -> None:
        """Retry later from a timer, so the endpoint never sleeps."""
        if self._backend.stopped or self._backend.gave_up:
            return
        ref = self.self_ref

        def fire() -> None:
            try:
                ref.send(pb.ReregisterApplication())
            except Exception as exc:  # the driver is stopping
                log.debug("no registration retry: %s", exc)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()


class ExecutorAllocator:
    """Dynamic allocation's clock: every 100 ms, read the scheduler, decide, ask the Master."""

    INTERVAL = 0.1

    def __init__(
        self, backend: StandaloneBackend, scheduler: TaskScheduler, policy: AllocationPolicy
    ) -> None:
        self._backend = backend
        self._scheduler = scheduler
        self.policy = policy
        #: One policy per stage-level profile that needs executors of its own.
        self.profile_policies: dict[int, AllocationPolicy] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dynamic-allocation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        self._stopped.set()
        if wait and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stopped.wait(self.INTERVAL):
            try:
                self.tick()
            except Exception:
                log.exception("dynamic allocation tick failed")

    def request(self, app_id: str) -> dpb.RequestExecutorsRequest:
        """Every total the policies want now, for a Master that registered us again."""
        with self._scheduler.lock:
            profiles = [
                p
                for p in self._scheduler.executor_profiles.values()
                if p.id in self.profile_policies
            ]
        return profile_request(
            app_id,
            self.policy.target,
            {p.id: self.profile_policies[p.id].target for p in profiles},
            profiles,
            self._backend.worker_limit_settings(),
        )

    def tick(self) -> None:
        """One round: the policies' decisions, carried out through the AppClient's Master."""
        decisions = [(self.policy, self.policy.tick(read_snapshot(self._scheduler)))]
        changed = decisions[0][1].total is not None
        with self._scheduler.lock:
            profiles = list(self._scheduler.executor_profiles.values())
        for profile in profiles:
            policy = self.profile_policies.get(profile.id)
            if policy is None:
                task_cpus = profile.task_cpus(self._scheduler.settings.task_cpus)
                shape = profile_settings(self.policy.settings, profile.executor_cores(), task_cpus)
                policy = self.profile_policies[profile.id] = AllocationPolicy(shape)
            decision = policy.tick(read_snapshot(self._scheduler, profile.id))
            decisions.append((policy, decision))
            changed = changed or decision.total is not None
        if changed and not self._backend.request_total(
            self.policy.target,
            {p.id: self.profile_policies[p.id].target for p in profiles},
            profiles,
        ):
            for policy, decision in decisions:
                policy.not_acknowledged(decision)
        for policy, decision in decisions:
            if decision.kill:
                killed = self._backend.kill(
                    decision.kill, "idle, removed by dynamic allocation", only_idle=True
                )
                policy.not_killed(set(decision.kill) - set(killed))


def profile_request(
    app_id: str,
    total: int,
    profile_totals: Mapping[int, int],
    profiles: Sequence[ResourceProfile],
    app: tuple[int, int, int],
) -> dpb.RequestExecutorsRequest:
    """A RequestExecutorsRequest: the default profile's total, each other profile's and shape.

    `app`: the app's spark.executor.pyspark.memory in MiB, spark.executor.cores and
    spark.task.cpus (0: unset), from which each profile's Python worker limit follows.
    """
    app_memory, app_cores, app_task_cpus = app
    request = dpb.RequestExecutorsRequest(app_id=app_id, requested_total=total)
    request.profile_totals.update(profile_totals)
    for profile in profiles:
        cores = profile.executor_cores()
        request.profiles.add(
            id=profile.id,
            cores=cores or 0,
            memory_mb=profile.executor_memory_mb() or 0,
            resources=profile.custom_executor_resources(),
            python_worker_limit_mb=profile_worker_limit_mb(
                profile.pyspark_memory_mb() or app_memory,
                profile_tasks_per_executor(profile, app_cores, app_task_cpus or 1),
            ),
        )
    return request


def app_description(
    name: str,
    driver_url: str,
    conf: Conf,
    executor_env: dict[str, str],
    ui_url: str | None,
    user: str,
    allocation: AllocationSettings | None,
    executor_resources: Mapping[str, int] | None = None,
) -> dpb.ApplicationDescription:
    """What the Master is told of the application: its executors' command and sizes."""
    memory = conf.get(settings.EXECUTOR_MEMORY) >> 20
    cores_max = conf.get(settings.CORES_MAX) or 0  # 0 on the wire: unset
    executor_cores = conf.get(settings.EXECUTOR_CORES) or 0
    argv = executor_argv(
        driver_url,
        "{{EXECUTOR_ID}}",
        "{{HOSTNAME}}",
        "{{CORES}}",
        "{{APP_ID}}",
        "{{WORKER_URL}}",
        # Our sys.executable means nothing on another host: unless the app names one,
        # each Worker runs its executors with its own Python.
        executor_python(conf, os.environ) or WORKER_PYTHON,
    )
    # No path of the driver's host: --py-files and addPyFile travel by content (the
    # driver's file server), the app's functions by value, and each worker's Python
    # imports its own sparkctl (the worker adds its own PYTHONPATH, as Spark does).
    env = dict(executor_env)
    description = dpb.ApplicationDescription(
        name=name,
        max_cores=cores_max,
        memory_per_executor_mb=int(memory),
        cores_per_executor=executor_cores,
        command=dpb.Command(argv=argv, environment=env),
        app_ui_url=ui_url or "",
        user=user,
        executors_report_registration=True,
        executor_resources=dict(executor_resources or {}),
    )
    if allocation is not None:
        description.initial_executor_limit = allocation.initial_executors
    return description


class StandaloneBackend:
    """Asks a standalone Master for executors for this application.

    Args:
        scheduler: the driver's task scheduler, whose executors it adds and removes.
        env: the driver's RpcEnv, where it sets up the "AppClient" endpoint.
        endpoint: the driver's scheduler endpoint, told the app id the Master gives.
        master_urls: the Masters to register with (an HA group's, or one).
        description: the application as the Master sees it (`app_description`).
        allocation: dynamic allocation's settings (None: off).
        on_removed: called with the reason, off the endpoint's inbox, once the Master
            removed the application (the context then stops).
    """

    def __init__(
        self,
        scheduler: TaskScheduler,
        env: RpcEnv,
        endpoint: SchedulerEndpoint,
        master_urls: list[str],
        description: dpb.ApplicationDescription,
        allocation: AllocationSettings | None,
        on_removed: Callable[[str], None],
    ) -> None:
        self._scheduler = scheduler
        self._env = env
        self._endpoint = endpoint
        self._on_removed = on_removed
        self.master_urls = master_urls
        self.app_id: str | None = None
        #: The application's credential from the Master (docs/security.md): enough to
        #: act on this application alone. Never logged; "" without a shared secret.
        self.app_credential = ""
        self._registered = threading.Event()
        self._error: str | None = None
        self._client: AppClient | None = None
        self._stopped = False
        self._announced: set[str] = set()
        #: Why the Master removed the application (None while it has not).
        self.removed_reason: str | None = None
        self.allocation = allocation
        self.allocator: ExecutorAllocator | None = None
        #: The executor total last acknowledged by the Master (None: no limit asked).
        self.requested_total: int | None = (
            None if allocation is None else allocation.initial_executors
        )
        self.description = description
        #: The app's spark.executor.pyspark.memory in MiB (0: unset), the Python workers'
        #: memory of a profile that sets no pysparkMemory of its own.
        self.pyspark_memory_mb = 0
        scheduler.task_profile_worker_limit = self.task_profile_worker_limit_mb

    def worker_limit_settings(self) -> tuple[int, int, int]:
        """The app's pyspark memory (MiB), executor cores and task cpus (0: unset)."""
        return (
            self.pyspark_memory_mb,
            self.description.cores_per_executor,
            self._scheduler.settings.task_cpus,
        )

    def task_profile_worker_limit_mb(self, profile: ResourceProfile) -> int:
        """The Python workers' limit (MiB, 0: none) of a task-only profile's stage."""
        memory, cores, task_cpus = self.worker_limit_settings()
        dynamic = self.allocation is not None
        return task_profile_worker_limit_mb(profile, memory, cores, task_cpus, dynamic)

    @property
    def stopped(self) -> bool:
        """Stopped, or the Master removed the application: the AppClient stops too."""
        return self._stopped

    def start(self, timeout: float = 30.0) -> str:
        """Register with a Master; returns the application id.

        Raises:
            RuntimeError: no Master answered or it refused the application.
        """
        self._client = AppClient(self)
        self._env.setup_endpoint(APP_CLIENT_ENDPOINT, self._client)
        if not self._registered.wait(timeout):
            self._error = f"no ALIVE Master within {timeout:.0f}s"
            last = "; ".join(list(self._client._errors))
            raise RuntimeError(
                f"could not register with the Master at {','.join(self.master_urls)} "
                f"within {timeout:.0f}s" + (f" ({last})" if last else "")
            )
        if self._error is not None or self.app_id is None:
            raise RuntimeError(f"could not register the application: {self._error}")
        wants_executors = self.allocation is None or self.allocation.initial_executors > 0
        if wants_executors and not self._wait_for_executors(10.0):
            log.warning("no executor registered yet; jobs wait for one%s", self._why_waiting())
        if self.removed_reason is not None:
            raise RuntimeError(f"Master removed our application: {self.removed_reason}")
        if self.allocation is not None:
            policy = AllocationPolicy(self.allocation)
            self.allocator = ExecutorAllocator(self, self._scheduler, policy)
            self.allocator.start()
            log.info(
                "dynamic allocation on: %d executor(s) to start, between %d and %s",
                self.allocation.initial_executors,
                self.allocation.min_executors,
                self.allocation.max_executors,
            )
        return self.app_id

    def executor_announced(self, executor_id: str) -> None:
        with self._scheduler.lock:
            self._announced.add(executor_id)
            self._scheduler.executors_changed.notify_all()

    def executor_unannounced(self, executor_id: str) -> None:
        with self._scheduler.lock:
            self._announced.discard(executor_id)
            self._scheduler.executors_changed.notify_all()

    def _wait_for_executors(self, timeout: float) -> bool:
        """Wait for a first executor, then for the rest the Master announced (bounded).

        Returns False when no executor came within `timeout`.
        """
        scheduler_ = self._scheduler
        deadline = time.monotonic() + timeout
        with scheduler_.lock:
            while not scheduler_.executors and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                scheduler_.executors_changed.wait(min(left, 0.2))
            # Executors of one launch round register close together: wait for the ones
            # the Master announced, so that defaultParallelism sees all their cores.
            settle = time.monotonic() + 3.0
            while time.monotonic() < settle and not self._announced <= set(scheduler_.executors):
                scheduler_.executors_changed.wait(0.05)
        return True

    def _why_waiting(self) -> str:
        """`: <the Master's reason>` when it says why the application has no executor.

        An application asking more memory or cores per executor than any worker has
        waits (a larger worker may join); the Master's state says so, and the user
        running the driver should read it there rather than in the Master's UI.
        """
        state = self._ask_master(api.GetClusterStateRequest())
        if not isinstance(state, api.GetClusterStateResponse):
            return ""
        for app in state.active_apps:
            if app.id == self.app_id and app.message:
                return f": {app.message}"
        return ""

    def registered(self, reply: dpb.RegisterApplicationResponse) -> None:
        """The first Master to accept gave the application its id."""
        self.app_id = reply.app_id
        self.app_credential = reply.app_credential
        self._endpoint.set_app_id(reply.app_id)
        log.info("registered as application %s with %s", reply.app_id, reply.master_url)
        self._registered.set()

    def reregistered(self, reply: dpb.RegisterApplicationResponse) -> None:
        """A Master took the application back (under a new id if it had forgotten it)."""
        # The same id gets the same credential from any Master (same secret).
        self.app_credential = reply.app_credential
        if reply.app_id != self.app_id:
            log.warning(
                "the Master at %s no longer knew application %s; it is now %s",
                reply.master_url,
                self.app_id,
                reply.app_id,
            )
            self.app_id = reply.app_id
            self._endpoint.set_app_id(reply.app_id)
        else:
            log.info("application %s registered again with %s", reply.app_id, reply.master_url)

    def executor_lost(self, executor_id: str, reason: str) -> None:
        """Nothing to do: the Master replaces a standalone app's lost executors itself."""

    @property
    def pids(self) -> list[int]:
        """None: a Worker starts the executors of a standalone application."""
        return []

    def registration_failed(self, reason: str) -> None:
        self._error = reason
        self._registered.set()

    @property
    def gave_up(self) -> bool:
        """Registration failed or timed out: the AppClient stops retrying."""
        return self._error is not None

    def executor_ended(self, executor_id: str, reason: str) -> None:
        self._scheduler.executor_lost(executor_id, reason)

    def application_removed(self, message: str, state: int) -> None:
        if self._stopped:
            return
        self.removed_reason = message
        log.error("the Master removed application %s: %s", self.app_id, message)
        self._stopped = True
        if self.allocator is not None:
            self.allocator.stop(wait=False)  # from the AppClient's inbox: never block it
        self._scheduler.cancel_jobs(None, f"because Master removed our application: {message}")
        # As Spark's StandaloneSchedulerBackend.dead: the context goes with its application
        # (off this inbox, whose env it shuts down). A job started later waited forever for
        # executors the Master would never grant; it now fails on the stopped context.
        reason = f"Master removed our application: {message}"
        threading.Thread(
            target=self._on_removed, args=(reason,), name="stop-removed-app", daemon=True
        ).start()

    def stop(self) -> None:
        """Unregister from the Master and stop the executors."""
        self._stopped = True
        if self.allocator is not None:
            self.allocator.stop()
        self._scheduler.broadcast_to_executors(pb.StopExecutor(reason="application finished"))
        client = self._client
        if self.removed_reason is not None:
            return  # the Master already removed it
        if client is not None and client.master is not None and self.app_id is not None:
            try:
                client.master.ask_sync(dpb.UnregisterApplication(app_id=self.app_id), 5.0)
            except Exception as exc:
                log.warning("could not unregister %s: %s", self.app_id, exc)

    # -- executors on demand (dynamic allocation and the developer API) --------------------

    def _ask_master(self, message: Message) -> Message | None:
        """Ask the current Master; None (logged) when it cannot be reached."""
        client = self._client
        if client is None or client.master is None or self.app_id is None or self._stopped:
            return None
        try:
            return client.master.ask_sync(message, 10.0)
        except Exception as exc:
            log.warning("the Master did not answer %s: %s", type(message).__name__, exc)
            return None

    def request_total(
        self,
        total: int,
        profile_totals: Mapping[int, int] | None = None,
        profiles: Sequence[ResourceProfile] = (),
    ) -> bool:
        """Ask the Master to keep `total` executors for this app; True once acknowledged.

        `profile_totals`: executors wanted of each stage-level profile in `profiles`.
        """
        if total < 0:
            raise ValueError(f"the number of executors must be >= 0, not {total}")
        request = profile_request(
            self.app_id or "",
            total,
            profile_totals or {},
            profiles,
            self.worker_limit_settings(),
        )
        reply = self._ask_master(request)
        acknowledged = isinstance(reply, dpb.RequestExecutorsResponse) and reply.acknowledged
        if acknowledged:
            self.requested_total = total
            log.info("asked the Master for %d executor(s) in total", total)
        return acknowledged

    def request_executors(self, additional: int) -> bool:
        """`additional` executors more than requested so far (or than registered)."""
        if additional < 0:
            raise ValueError(f"the number of executors must be >= 0, not {additional}")
        return self.request_total(self._current_total() + additional)

    def kill_executors(self, executor_ids: list[str]) -> bool:
        """The developer API's kill: lower the total first, so the Master does not replace them."""
        if self.allocator is not None:
            raise ValueError("killExecutors() is not supported with dynamic allocation turned on")
        with self._scheduler.lock:
            known = [e for e in executor_ids if e in self._scheduler.executors]
        if not known:
            return False
        self.request_total(max(0, self._current_total() - len(known)))
        return bool(self.kill(known, "killed by the driver", only_idle=False))

    def _current_total(self) -> int:
        if self.requested_total is not None:
            return self.requested_total
        with self._scheduler.lock:
            return len(self._scheduler.executors)

    def kill(self, executor_ids: list[str], reason: str, only_idle: bool) -> list[str]:
        """Kill executors through the Master; returns the ids it was asked to kill.

        Each leaves the task scheduler first, under its lock (so no task can be launched
        on it meanwhile; with `only_idle`, one that got a task since the policy looked is
        spared). If the Master cannot be reached, the executor is told to stop itself.
        """
        sched = self._scheduler
        removed: dict[str, ExecutorHandle] = {}
        with sched.lock:
            for executor_id in executor_ids:
                handle = sched.executors.get(executor_id)
                if handle is None or not executor_id.isdigit() or (only_idle and handle.running):
                    continue
                removed[executor_id] = handle
                self._announced.discard(executor_id)
                sched.executor_lost(executor_id, reason, expected=True)
        if not removed:
            return []
        reply = self._ask_master(
            dpb.KillExecutorsRequest(
                app_id=self.app_id or "", executor_ids=[int(e) for e in removed]
            )
        )
        if not isinstance(reply, dpb.KillExecutorsResponse):
            for handle in removed.values():
                handle.send(pb.StopExecutor(reason=reason))
        return list(removed)
