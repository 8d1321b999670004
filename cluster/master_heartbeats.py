"""How the Master hears from its workers: stream heartbeats, datagrams, timer lateness.

A worker heartbeats on its stream (`WorkerHeartbeat`) or, when both sides
enabled `spark.sparkctl.worker.udpHeartbeats`, by datagram into the table of
`cluster.heartbeat_datagrams`, read by a listener thread. This mixin owns that
table and its socket, moves workers between datagrams and their streams
(UDP blocked, a probe that got through, a DEAD worker still sending),
reports dropped datagrams (a rate-limited log line; cumulative counts for
`/metrics`) and notes when each worker-timeout check is issued. Judging who
is DEAD is `master_liveness`'s; acting on it is the Master's. A mixin of the
Master endpoint (single-threaded like it); only the listener's thread
touches the table besides it.
"""

from __future__ import annotations

import logging
import pathlib

from cluster._timers import SYSTEM_CLOCK, Clock
from cluster.heartbeat_datagrams import DatagramCounts, DatagramListener, HeartbeatDatagrams
from cluster.master_leadership import MasterLeadership
from cluster.settings import WORKER_UDP_HEARTBEATS
from rpcenv import Conf, RpcEndpointRef
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["MasterHeartbeats"]

log = logging.getLogger("cluster.master")

#: How often dropped heartbeat datagrams are reported in the log, at most.
_DROP_LOG_INTERVAL_S = 60.0


class MasterHeartbeats(MasterLeadership):
    """Heartbeat handling of the Master endpoint (see the module docstring)."""

    def __init__(
        self,
        conf: Conf,
        work_dir: pathlib.Path,
        webui_url: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(conf, work_dir, webui_url, clock)
        #: Heartbeat datagrams (`cluster.heartbeat_datagrams`); None: stream heartbeats only.
        self.datagrams: HeartbeatDatagrams | None = None
        if conf.get(WORKER_UDP_HEARTBEATS):
            self.datagrams = HeartbeatDatagrams(self.liveness.clock)
        self._listener: DatagramListener | None = None
        self._drops_logged_at = self.liveness.clock()
        #: The timeout timer's period, and when it last issued a check (`_issue_timeout_check`).
        self._check_period = self.liveness.check_interval
        self._last_check_issued: float | None = None

    def datagram_counts(self) -> DatagramCounts | None:
        """Datagrams taken and dropped (by reason) since the start; None without datagrams.

        Safe from any thread (the web UI's `/metrics` reads it): a snapshot of counters.
        """
        table = self.datagrams
        return table.counts() if table is not None else None

    def _issue_timeout_check(self) -> None:
        """Note a timeout check about to be queued (the timer's thread): judged as of now,
        however long the inbox makes it wait.

        A timer that fires later than twice its period was frozen with the whole
        process (SIGSTOP, swapped out, a long pause): the heartbeats of that time
        still wait in the kernel's buffers, read only after this check would run, so
        the check is judged as of when it was due. The next, on time, judges the rest.
        """
        liveness = self.liveness
        now = liveness.clock()
        last, self._last_check_issued = self._last_check_issued, now
        period = self._check_period
        if last is not None and now - last > 2 * period:
            log.warning(
                "the master's timer fired %.1fs late (the process was stopped or starved); "
                "its worker timeout check is judged as of when it was due",
                now - last - period,
            )
            liveness.issue(last + period)
        else:
            liveness.issue()

    def _listen_for_datagrams(self) -> None:
        """Bind the heartbeat socket beside the RPC port (same address, same number if free)."""
        if self.datagrams is None:
            return
        address = self.rpc_env.address
        try:
            self._listener = DatagramListener(self.datagrams, address.host, address.port)
        except OSError as exc:
            log.warning(
                "no UDP heartbeats (workers heartbeat on their streams): cannot bind a UDP "
                "socket on %s: %s",
                address.host,
                exc,
            )
            self.datagrams = None
            return
        self._listener.start()
        log.info(
            "heartbeat datagrams on udp %s:%d (spark.sparkctl.worker.udpHeartbeats)",
            self._listener.host,
            self._listener.port,
        )

    def _check_heartbeat_datagrams(self, now: float, as_of: float | None = None) -> None:
        """Move UDP workers unheard `as_of` (a check's issue time, else `now`) to their
        streams; tell DEAD ones to register again."""
        table = self.datagrams
        if table is None:
            return
        liveness = self.liveness
        judged = now if as_of is None else as_of
        for entry, reason in table.unheard(judged, liveness.heartbeat_interval, liveness.timeout):
            worker = entry.worker
            log.warning(
                "worker %s heartbeats on its stream from now on: %s", worker.worker_id, reason
            )
            self._send(
                worker.ref,
                pb.UseStreamHeartbeats(master_url=self.url, master_epoch=self.epoch, reason=reason),
            )
        for entry in table.heard_again():
            log.info(
                "worker %s heartbeats by datagram again: its probe got through",
                entry.worker.worker_id,
            )
            self._send(
                entry.worker.ref,
                pb.UseDatagramHeartbeats(master_url=self.url, master_epoch=self.epoch),
            )
        for entry in table.heard_from_dead():
            log.info(
                "DEAD worker %s still heartbeats; asking it to reconnect", entry.worker.worker_id
            )
            self._send(
                entry.worker.ref, pb.ReconnectWorker(master_url=self.url, master_epoch=self.epoch)
            )
        if now - self._drops_logged_at >= _DROP_LOG_INTERVAL_S:
            self._drops_logged_at = now
            drops = table.take_drops()
            if drops:
                counts = ", ".join(f"{n} {why}" for why, n in sorted(drops.items()))
                log.warning("dropped bad heartbeat datagrams in the last minute: %s", counts)

    def _stop_listening(self) -> None:
        """Close the heartbeat socket (its thread ends)."""
        if self._listener is not None:
            self._listener.stop()

    def _on_heartbeat(self, msg: pb.WorkerHeartbeat, sender: RpcEndpointRef | None) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None and worker.alive and worker.incarnation == msg.incarnation:
            # A worker on datagrams may still send this (sent before it was told): its
            # datagram record stays; if it went to its stream for good, the unheard
            # rule parks it (`_check_heartbeat_datagrams`).
            worker.heard_from(self.liveness.clock())
            return
        if worker is not None and worker.incarnation > msg.incarnation:
            log.debug("ignoring a heartbeat of a stale incarnation of %s", msg.worker_id)
            return
        # Unknown, DEAD or recovered-but-not-yet-registered: ask it to register again.
        log.info("worker %s is not registered (or was DEAD); asking it to reconnect", msg.worker_id)
        self._send(sender, pb.ReconnectWorker(master_url=self.url, master_epoch=self.epoch))
