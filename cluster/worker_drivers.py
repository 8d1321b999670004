"""The Worker's cluster-mode drivers: launch, kill, and report their end.

A driver runs `description.command.argv`, else `python app_resource args`, in
`<work_dir>/<driver-id>/` with its conf in `SPARKCTL_SUBMIT_CONF`
(`worker_runners.driver_launch_spec`). A mixin of the Worker endpoint
(single-threaded like it); a watcher thread reports the exit to its inbox.
"""

from __future__ import annotations

import logging

from cluster.process_runner import describe_exit, tail
from cluster.worker_base import STOP_GRACE_S, WorkerBase
from cluster.worker_runners import DriverRunner, driver_launch_spec
from rpcenv import RpcEndpointRef
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["WorkerDrivers"]

log = logging.getLogger("cluster.worker")

DS = pb.DriverState


class WorkerDrivers(WorkerBase):
    """Driver handlers of the Worker endpoint."""

    def _on_launch_driver(self, msg: pb.LaunchDriver, _s: RpcEndpointRef | None) -> None:
        if self._stale(msg, msg.master_epoch):
            return
        desc = msg.description
        runner = DriverRunner(msg.driver_id, desc, None, self.work_dir / msg.driver_id)
        runner.attempt = msg.attempt

        def error(reason: str) -> None:
            log.error("cannot launch driver %s: %s", msg.driver_id, reason)
            runner.state = DS.DRIVER_STATE_ERROR
            runner.exception = reason
            runner.description.ClearField("app_content")  # finished: never launched again
            for entry in runner.description.files:
                entry.ClearField("content")
            self.finished_drivers.append(runner)
            self._to_master(
                pb.DriverStateChanged(
                    driver_id=msg.driver_id,
                    state=DS.DRIVER_STATE_ERROR,
                    exception=reason,
                    worker_id=self.worker_id,
                    attempt=msg.attempt,
                )
            )

        if msg.driver_id in self.drivers:
            return
        if (
            self.cores_used + desc.cores > self.cores
            or self.memory_used_mb + desc.memory_mb > self.memory_mb
        ):
            error(f"worker {self.worker_id} lacks the cores or memory the driver asks for")
            return
        try:
            spec = driver_launch_spec(msg, self.work_dir, self.master_url, self.executor_host)
        except (ValueError, OSError) as exc:
            error(str(exc))
            return
        finally:
            for entry in runner.description.files:  # on disk now: not kept in memory
                entry.ClearField("content")
        process = self.launcher.process(
            f"driver-{msg.driver_id}",
            spec.argv,
            spec.cwd,
            spec.env,
            lambda code: self._post(
                pb.ProcessExited(kind="driver", driver_id=msg.driver_id, exit_status=code)
            ),
        )
        runner.process = process
        try:
            process.start()
        except OSError as exc:
            error(f"could not start {spec.argv[0]!r}: {exc}")
            return
        runner.state = DS.DRIVER_STATE_RUNNING
        self.drivers[msg.driver_id] = runner
        log.info("started driver %s (pid %d)", msg.driver_id, process.pid)
        self._to_master(
            pb.DriverStateChanged(
                driver_id=msg.driver_id,
                state=DS.DRIVER_STATE_RUNNING,
                worker_id=self.worker_id,
                attempt=msg.attempt,
            )
        )

    def _on_kill_driver(self, msg: pb.KillDriver, _s: RpcEndpointRef | None) -> None:
        if self._stale(msg, msg.master_epoch):
            return
        runner = self.drivers.get(msg.driver_id)
        if runner is None or runner.process is None:
            return
        runner.killed = True
        runner.process.stop(STOP_GRACE_S)

    def _driver_exited(self, msg: pb.ProcessExited) -> None:
        runner = self.drivers.pop(msg.driver_id, None)
        if runner is None:
            return
        code = msg.exit_status
        if runner.killed:
            state, text = DS.DRIVER_STATE_KILLED, "killed by request"
        elif code == 0:
            state, text = DS.DRIVER_STATE_FINISHED, ""
        else:
            state, text = DS.DRIVER_STATE_FAILED, describe_exit(code)
            if runner.process is not None and (stderr := tail(runner.process.stderr_path)):
                text += f"; stderr ends with:\n{stderr}"
        runner.state = state
        runner.exception = text
        # The 200 finished drivers kept held every app file in memory.
        runner.description.ClearField("app_content")
        runner.process = None  # its environment copy: spark.worker.ui.retainedDrivers are kept
        self.finished_drivers.append(runner)
        log.info("driver %s %s %s", msg.driver_id, DS.Name(state), text)
        self._to_master(
            pb.DriverStateChanged(
                driver_id=msg.driver_id,
                state=state,
                exception=text,
                worker_id=self.worker_id,
                attempt=runner.attempt,
            )
        )
