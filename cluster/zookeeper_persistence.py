"""`spark.deploy.recoveryMode=ZOOKEEPER`: the ZooKeeper session and the persisted records.

`connect_zookeeper` opens the one kazoo session a Master uses both for the
leader election (`zookeeper_election`) and for its records, so that the
session that holds leadership is the one that writes. `ZooKeeperPersistence`
stores one znode per application, worker and driver under
`<spark.deploy.zookeeper.dir>/master_status`, named `<kind>_<key>` as Spark's
ZooKeeperPersistenceEngine names them, holding the same protobuf records as
the FILESYSTEM engine. This module never decides anything about the cluster:
a write that fails is reported to the caller's `on_failure`, which ends the
leadership (a leader that cannot persist must not go on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from cluster import settings
from cluster.persistence import Persistence
from cluster.zookeeper_files import ZooKeeperFiles
from rpcenv import Conf

__all__ = [
    "ZooKeeperPersistence",
    "connect_zookeeper",
    "zookeeper_dir",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


def zookeeper_dir(conf: Conf) -> str:
    """`spark.deploy.zookeeper.dir` without a trailing slash (default /spark).

    Raises:
        ValueError: not an absolute znode path.
    """
    directory = conf.get(settings.ZOOKEEPER_DIR).rstrip("/")
    if not directory.startswith("/"):
        raise ValueError(
            f"spark.deploy.zookeeper.dir must be an absolute znode path, not {directory!r}"
        )
    return directory


def connect_zookeeper(conf: Conf) -> KazooClient:
    """A started kazoo client for `spark.deploy.zookeeper.url` (host:port[,host:port]).

    The session timeout is `spark.sparkctl.zookeeper.sessionTimeout` (60 s, as
    Spark's; the server bounds it to 2-20 ticks): how long a killed leader
    keeps its leadership before a standby takes over.

    Raises:
        ValueError: no URL, a bad timeout, or no server answered in
            `spark.sparkctl.zookeeper.connectionTimeout` (15 s).
    """
    url = (conf.get(settings.ZOOKEEPER_URL) or "").strip()
    if not url:
        raise ValueError(
            "spark.deploy.recoveryMode=ZOOKEEPER needs spark.deploy.zookeeper.url (host:port,...)"
        )
    session = conf.get(settings.ZOOKEEPER_SESSION_TIMEOUT)
    connect = conf.get(settings.ZOOKEEPER_CONNECTION_TIMEOUT)
    client = KazooClient(hosts=url, timeout=session, connection_retry={"max_tries": -1})
    try:
        client.start(timeout=connect)
    except (KazooTimeoutError, KazooException, ValueError) as exc:
        client.stop()
        client.close()
        raise ValueError(
            f"cannot connect to ZooKeeper at {url} (spark.deploy.zookeeper.url) "
            f"within {connect:g}s: {exc}"
        ) from None
    return client


class ZooKeeperPersistence(Persistence):
    """Recovery mode ZOOKEEPER: one znode per record under `<dir>/master_status`.

    Args:
        client: a started kazoo client (the Master's session, shared with its
            election: `client`).
        directory: `spark.deploy.zookeeper.dir`.

    Attributes:
        on_failure: called with a reason when a write fails (the Master revokes
            its leadership).
    """

    def __init__(self, client: KazooClient, directory: str) -> None:
        self.client = client
        self.directory = directory
        self.path = f"{directory}/master_status"
        self.on_failure: Callable[[str], None] = lambda _reason: None
        try:
            client.ensure_path(self.path)
        except KazooException as exc:
            client.stop()
            client.close()
            raise ValueError(f"cannot create {self.path} in ZooKeeper: {exc!r}") from None

    @classmethod
    def from_conf(cls, conf: Conf) -> ZooKeeperPersistence:
        """Connect to `spark.deploy.zookeeper.url` and use `spark.deploy.zookeeper.dir`.

        Raises:
            ValueError: a bad setting, or ZooKeeper cannot be reached.
        """
        directory = zookeeper_dir(conf)
        return cls(connect_zookeeper(conf), directory)

    @property
    def enabled(self) -> bool:
        return True

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def _node(self, kind: str, key: str) -> str:
        if "/" in key or not key:
            raise ValueError(f"bad record key {key!r}")
        return f"{self.path}/{kind}_{key}"

    def put(self, kind: str, key: str, record: Message) -> None:
        node = self._node(kind, key)
        data = record.SerializeToString()
        try:
            try:
                self.client.set(node, data)
            except NoNodeError:
                self.client.create(node, data)
        except KazooException as exc:
            self._failed(f"cannot write {node}: {exc!r}")

    def remove(self, kind: str, key: str) -> None:
        node = self._node(kind, key)
        try:
            self.client.delete(node)
        except NoNodeError:
            pass
        except KazooException as exc:
            self._failed(f"cannot delete {node}: {exc!r}")

    def read(self, kind: str, message_type: type[M]) -> list[M]:
        records: list[M] = []
        for name in sorted(self.client.get_children(self.path)):
            if not name.startswith(f"{kind}_"):
                continue
            node = f"{self.path}/{name}"
            try:
                data, _stat = self.client.get(node)
                records.append(message_type.FromString(data))
            except NoNodeError:
                continue
            except DecodeError as exc:
                # Spark deletes a record it cannot read, so that it is not tried again.
                log.warning("deleting unreadable recovery record %s: %s", node, exc)
                self.client.delete(node)
        return records

    def file_replica(self) -> ZooKeeperFiles:
        """Submitted files' bytes beside the records: a Master elected elsewhere reads them."""
        return ZooKeeperFiles(self.client, self.directory)

    def _failed(self, reason: str) -> None:
        log.error("ZooKeeper persistence failed: %s", reason)
        self.on_failure(reason)
