"""Applications and their executors at the Master.

A driver registers its application (or claims back a recovered one), asks
for a total of executors per resource profile, kills executors, and
unregisters; workers report its executors' state changes, and an
application whose executors keep failing with none running fails
(`spark.deploy.maxExecutorRetries`). Placement itself is `MasterBase._schedule`'s.
A mixin of the Master endpoint (single-threaded like it); it never blocks
except to resolve a driver endpoint named by a client-mode driver.
"""

from __future__ import annotations

import logging

from google.protobuf import empty_pb2

from cluster.master_base import origin_peer_id
from cluster.master_state import FINISHED_EXECUTOR_STATES, AppInfo
from cluster.master_workers import MasterWorkers
from cluster.request_limits import check_app_description, shown_id
from rpcenv import RpcCallContext, RpcEndpointRef, RpcError
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = ["MasterApps"]

log = logging.getLogger("cluster.master")

ES = pb.ExecutorState
AS = pb.ApplicationState


class MasterApps(MasterWorkers):
    """Application and executor handlers of the Master endpoint."""

    # -- executors -----------------------------------------------------------------

    def _on_executor_state_changed(
        self, msg: pb.ExecutorStateChanged, sender: RpcEndpointRef | None
    ) -> None:
        app = self.apps.get(msg.app_id)
        executor = app.executors.get(msg.executor_id) if app is not None else None
        if app is None or executor is None:
            if msg.state in (ES.EXECUTOR_STATE_LAUNCHING, ES.EXECUTOR_STATE_RUNNING):
                self._kill_executor(sender, msg.app_id, msg.executor_id)
            return
        executor.state = msg.state
        update = pb.ExecutorUpdated(
            executor_id=msg.executor_id, state=msg.state, message=msg.message
        )
        if msg.HasField("exit_status"):
            update.exit_status = msg.exit_status
        self._send(app.driver_ref, update)
        if msg.state == ES.EXECUTOR_STATE_RUNNING:
            app.retry_count = 0
            return
        if msg.state not in FINISHED_EXECUTOR_STATES:
            return
        del app.executors[msg.executor_id]
        worker = self.workers.get(executor.worker_id)
        if worker is not None:
            worker.executors.pop(executor.key, None)
        normal = msg.HasField("exit_status") and msg.exit_status == 0
        if not normal:
            app.retry_count += 1
            limit = self.max_executor_retries
            running = any(e.state == ES.EXECUTOR_STATE_RUNNING for e in app.executors.values())
            if limit is not None and 0 <= limit <= app.retry_count and not running:
                detail = msg.message or pb.ExecutorState.Name(msg.state)
                reason = (
                    f"application {app.app_id} failed: {app.retry_count} executors failed in a row "
                    f"with none running (spark.deploy.maxExecutorRetries={limit}); last: {detail}"
                )
                self._finish_app(app, AS.APPLICATION_STATE_FAILED, reason, True)
                return
        self._schedule()

    def _on_request_executors(
        self, msg: pb.RequestExecutorsRequest, context: RpcCallContext
    ) -> None:
        app = self._active_app(msg.app_id)
        if msg.requested_total < 0:
            raise ValueError(f"requested_total must be >= 0, not {msg.requested_total}")
        if any(total < 0 for total in msg.profile_totals.values()):
            raise ValueError("profile_totals must be >= 0")
        app.executor_limit = msg.requested_total
        for profile in msg.profiles:
            sizes = (profile.cores, profile.memory_mb, profile.python_worker_limit_mb)
            if profile.id <= 0 or min(sizes) < 0:
                raise ValueError(f"bad ExecutorProfile {profile.id}: id > 0, sizes >= 0")
            if any(amount < 0 for amount in profile.resources.values()):
                raise ValueError(f"ExecutorProfile {profile.id} asks negative resources")
            app.profiles[profile.id] = profile
        unknown = [p for p in msg.profile_totals if p not in app.profiles]
        if unknown:
            raise ValueError(f"profile_totals names unknown profile(s) {unknown}")
        app.profile_limits.update(msg.profile_totals)
        log.info(
            "application %s asks for %d executors in total%s",
            app.app_id,
            msg.requested_total,
            "".join(f", {n} of profile {p}" for p, n in sorted(msg.profile_totals.items())),
        )
        context.reply(pb.RequestExecutorsResponse(acknowledged=True))
        self._schedule()

    def _on_kill_executors(self, msg: pb.KillExecutorsRequest, context: RpcCallContext) -> None:
        app = self._active_app(msg.app_id)
        unknown = [i for i in msg.executor_ids if i not in app.executors]
        for executor_id in msg.executor_ids:
            executor = app.executors.pop(executor_id, None)
            if executor is None:
                continue
            worker = self.workers.get(executor.worker_id)
            if worker is not None:
                worker.executors.pop(executor.key, None)
                self._kill_executor(worker.ref, app.app_id, executor_id)
        if unknown:
            log.info("application %s asked to kill unknown executors %s", app.app_id, unknown)
        context.reply(pb.KillExecutorsResponse(acknowledged=not unknown))
        # Their cores and memory are free now (as in Spark, which schedules here): an
        # executor of another profile may be waiting for them, and the killed ones'
        # exit reports find no executor left to schedule after.
        if len(unknown) < len(msg.executor_ids):
            self._schedule()

    # -- applications --------------------------------------------------------------

    def _on_register_application(
        self, msg: pb.RegisterApplicationRequest, context: RpcCallContext
    ) -> None:
        desc = pb.ApplicationDescription()
        desc.CopyFrom(msg.description)
        check_app_description(desc, self.default_cores or 0)  # ValueError: INVALID_ARGUMENT
        if desc.max_cores == 0 and self.default_cores:
            desc.max_cores = self.default_cores  # spark.deploy.defaultCores
        ref = context.sender
        if ref is None and msg.driver_endpoint:
            try:
                ref = self.rpc_env.endpoint_ref(
                    context.sender_address, msg.driver_endpoint, timeout=5.0
                )
            except RpcError as exc:
                log.warning("cannot reach driver endpoint %s: %s", msg.driver_endpoint, exc)
        recovered = self.apps.get(msg.app_id) if msg.app_id else None
        if recovered is not None and recovered.state == AS.APPLICATION_STATE_UNKNOWN:
            app = recovered
            app.driver_ref = ref
            app.driver_address = context.sender_address
            app.driver_peer_id = origin_peer_id()
            app.state = (
                AS.APPLICATION_STATE_RUNNING if app.executors else AS.APPLICATION_STATE_WAITING
            )
        else:
            app = AppInfo(
                app_id=self.ids.app_id(),
                description=desc,
                driver_ref=ref,
                driver_address=context.sender_address,
                driver_peer_id=origin_peer_id(),
            )
            if desc.HasField("initial_executor_limit"):
                app.executor_limit = desc.initial_executor_limit
            self.apps[app.app_id] = app
        # The admin's claim (registering takes the secret): the application's credential
        # then reaches this driver too, unless another live application has it already.
        if msg.driver_id in self.drivers and not any(
            a.driver_id == msg.driver_id for a in self.apps.values() if a is not app
        ):
            app.driver_id = msg.driver_id
        self.app_by_address[context.sender_address] = app.app_id
        self._store(
            "app",
            app.app_id,
            pb.PersistedApplication(
                app_id=app.app_id,
                description=app.description,
                start_time_ms=app.start_time_ms,
                driver_endpoint=msg.driver_endpoint,
                # Where a newly elected leader tells the driver (0: a client-mode env).
                driver_host=context.sender_address.host,
                driver_port=context.sender_address.port,
            ),
        )
        log.info("registered application %s (%r)", app.app_id, desc.name)  # a name can forge lines
        context.reply(
            pb.RegisterApplicationResponse(
                app_id=app.app_id,
                master_url=self.url,
                master_epoch=self.epoch,
                app_credential=self.app_credential(app.app_id),
            )
        )
        self._maybe_finish_recovery()
        self._schedule()

    def _on_unregister_application(
        self, msg: pb.UnregisterApplication, _sender: RpcEndpointRef | None
    ) -> None:
        app = self.apps.get(msg.app_id)
        if app is not None:
            self._finish_app(
                app, AS.APPLICATION_STATE_FINISHED, "unregistered by its driver", False
            )

    def _on_unregister_ask(self, msg: pb.UnregisterApplication, context: RpcCallContext) -> None:
        self._on_unregister_application(msg, context.sender)
        context.reply(empty_pb2.Empty())

    def _on_kill_application(
        self, msg: api.KillApplicationRequest, context: RpcCallContext
    ) -> None:
        app = self.apps.get(msg.app_id)
        if app is None:
            if any(a.app_id == msg.app_id for a in self.completed_apps):
                context.reply(
                    api.KillApplicationResponse(killed=False, message=f"{msg.app_id} already ended")
                )
                return
            raise LookupError(f"no application {shown_id(msg.app_id)}")
        self._finish_app(app, AS.APPLICATION_STATE_KILLED, "killed by request", True)
        context.reply(api.KillApplicationResponse(killed=True, message=f"killed {msg.app_id}"))
