"""The leader election of standby Masters through ZooKeeper.

Every Master of an HA cluster contends for kazoo's election lock (sequential
ephemeral znodes) under `<spark.deploy.zookeeper.dir>/leader_election`; the
one holding it is the leader, as with Spark's ZooKeeperLeaderElectionAgent.
The agent only reports: `on_elected` once the lock is won, `on_revoked` once
leadership is lost, i.e. when the session that holds it is suspended or lost
(after which a standby may legitimately win: the old leader must stop at once,
and Spark's Master exits). Both callbacks run on kazoo's threads and must only
post a message. A standby whose session expires simply contends again (the
lock recipe retries). This module never touches the Master's state.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import CancelledError, KazooException
from kazoo.recipe.election import Election

__all__ = ["ZooKeeperLeaderElection"]

log = logging.getLogger(__name__)


class ZooKeeperLeaderElection:
    """Contends for leadership on a thread of its own.

    Args:
        client: a started kazoo client; stopped and closed by `stop`.
        directory: `spark.deploy.zookeeper.dir`.
        identifier: what contenders see of us (the Master's URL).
        on_elected: called once this Master became the leader.
        on_revoked: called once with a reason when that leadership is lost.
    """

    def __init__(
        self,
        client: KazooClient,
        directory: str,
        identifier: str,
        on_elected: Callable[[], None],
        on_revoked: Callable[[str], None],
    ) -> None:
        self._client = client
        self.path = f"{directory}/leader_election"
        self._election = Election(client, self.path, identifier)
        self._on_elected = on_elected
        self._on_revoked = on_revoked
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._leading = False
        self._revoked = False
        self._thread = threading.Thread(target=self._run, name="zk-election", daemon=True)

    @property
    def leading(self) -> bool:
        """Whether this Master holds leadership now."""
        return self._leading and not self._revoked

    def start(self) -> None:
        """Start contending."""
        self._client.add_listener(self._state_changed)
        self._thread.start()

    def contenders(self) -> list[str]:
        """Identifiers of the contenders, the leader first (a ZooKeeper round trip).

        Raises:
            KazooException: ZooKeeper cannot be asked now.
        """
        return [str(c) for c in self._election.contenders()]

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._election.run(self._lead)
                return
            except CancelledError:
                return
            except KazooException as exc:  # the lock recipe gave up: contend again
                if self._stopped.wait(1.0):
                    return
                log.warning("leader election interrupted (%r); contending again", exc)

    def _lead(self) -> None:
        with self._lock:
            if self._stopped.is_set() or self._revoked:
                return
            self._leading = True
        log.info("won the leader election at %s", self.path)
        self._on_elected()
        # Hold the lock (our ephemeral znode) until stopped; losing the session
        # ends leadership through _state_changed, whatever this thread does.
        self._stopped.wait()

    def _state_changed(self, state: str) -> bool:
        """kazoo's connection listener (on its thread): revoke on suspension or loss."""
        if self._stopped.is_set():
            return True  # our own stop closes the session: nothing is revoked
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            with self._lock:
                if not self._leading or self._revoked:
                    return False
                self._revoked = True
            reason = (
                "ZooKeeper session expired"
                if state == KazooState.LOST
                else "connection to ZooKeeper suspended (the session may expire)"
            )
            log.error("leadership revoked: %s", reason)
            self._on_revoked(reason)
            return True  # a revoked leader never leads again: stop listening
        return False

    def stop(self) -> None:
        """Leave the election (releasing leadership) and close the session."""
        self._stopped.set()
        with contextlib.suppress(KazooException):
            self._election.cancel()
        self._thread.join(5.0)
        try:
            self._client.stop()
        except KazooException as exc:
            log.debug("closing the ZooKeeper session: %r", exc)
        self._client.close()
