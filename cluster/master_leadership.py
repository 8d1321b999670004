"""The Master's leadership: standby, election, recovery on election, revocation.

With `spark.deploy.recoveryMode=ZOOKEEPER` a Master starts STANDBY and
contends in ZooKeeper (`zookeeper_election`); elected, it recovers what its
predecessor persisted and tells the recovered workers and drivers that it now
leads (MasterChanged, as Spark's beginRecovery); revoked, it stops serving and
shuts its RpcEnv down so that its process exits. Other recovery modes lead at
once. A mixin of the Master endpoint (single-threaded like it): the election's
callbacks only post messages to it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import TYPE_CHECKING

from cluster.master_drivers import MasterDrivers
from cluster.recovery import recover
from rpcenv import RpcAddress, RpcEndpointRef
from sparkctl.v1 import deploy_pb2 as pb

if TYPE_CHECKING:
    from cluster.zookeeper_election import ZooKeeperLeaderElection

__all__ = ["MasterLeadership"]

log = logging.getLogger("cluster.master")

WORKER_ENDPOINT = "Worker"
MS = pb.MasterStatus
WS = pb.WorkerState


class MasterLeadership(MasterDrivers):
    """Leadership handlers of the Master endpoint."""

    election: ZooKeeperLeaderElection | None = None

    def _lead(self) -> None:
        """Become the serving Master: recover what the persistence engine holds, or be ALIVE."""
        ref = self.self_ref
        if recover(self):
            log.info("master %s is RECOVERING; waiting up to %gs", self.url, self.worker_timeout)
            self.clock.later(
                self.worker_timeout, lambda: ref.send(pb.CompleteRecovery()), "master-recovery"
            )
            if self.recovery_mode == "ZOOKEEPER":
                self._announce_master_changed()
        else:
            log.info("master %s is ALIVE", self.url)

    def _start_election(self) -> None:
        from cluster.zookeeper_election import ZooKeeperLeaderElection
        from cluster.zookeeper_persistence import ZooKeeperPersistence

        engine = self.persistence
        assert isinstance(engine, ZooKeeperPersistence)
        ref = self.self_ref

        def revoke(reason: str) -> None:
            ref.send(pb.RevokedLeadership(reason=reason))

        engine.on_failure = lambda reason: revoke(f"ZooKeeper write failed: {reason}")
        self.election = ZooKeeperLeaderElection(
            engine.client, engine.directory, self.url, lambda: ref.send(pb.ElectedLeader()), revoke
        )
        self.election.start()

    def _standby_reason(self) -> str:
        if self.revoked:
            return f"standby master {self.url}: leadership revoked ({self.revoked}); shutting down"
        return (
            f"standby master {self.url}: not the elected leader "
            "(spark.deploy.recoveryMode=ZOOKEEPER); use the ALIVE master"
        )

    def _on_elected_leader(self, _msg: pb.ElectedLeader, _s: RpcEndpointRef | None) -> None:
        if self.status != MS.MASTER_STATUS_STANDBY or self.revoked:
            return
        # Fencing: a leader elected later commands with a larger epoch than any before it.
        self.epoch = max(self.epoch + 1, time.time_ns() // 1_000_000)
        self.status = MS.MASTER_STATUS_ALIVE
        log.info("master %s was elected leader", self.url)
        self._lead()

    def _on_revoked_leadership(self, msg: pb.RevokedLeadership, _s: RpcEndpointRef | None) -> None:
        if self.revoked:
            return
        self.revoked = msg.reason or "leadership revoked"
        # As Spark's Master: never serve again (another Master may lead now); exit.
        log.error("leadership has been revoked (%s): master shutting down", self.revoked)
        self.status = MS.MASTER_STATUS_STANDBY
        if self._ticker is not None:
            self._ticker.stop()
        env = self.rpc_env
        threading.Thread(target=env.shutdown, name="master-revoked", daemon=True).start()

    def _announce_master_changed(self) -> None:
        """Tell recovered workers and drivers that we lead now (Spark's beginRecovery).

        Off the endpoint's thread: each ref costs a round trip, and a gone peer a timeout.
        """
        message = pb.MasterChanged(
            master_url=self.url, master_webui_url=self.webui_url, master_epoch=self.epoch
        )
        targets = [
            (RpcAddress(w.host, w.port), WORKER_ENDPOINT)
            for w in self.workers.values()
            if w.state == WS.WORKER_STATE_UNKNOWN
        ] + list(self.recovered_drivers)
        env = self.rpc_env

        def tell(address: RpcAddress, name: str) -> None:
            try:
                env.endpoint_ref(address, name, timeout=5.0).send(message)
            except Exception as exc:  # gone: it re-registers by itself, or times out
                log.info("could not tell %s@%s of the new master: %s", name, address, exc)

        pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="master-changed")
        for address, name in targets:
            pool.submit(tell, address, name)
        pool.shutdown(wait=False)
