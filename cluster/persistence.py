"""Where the Master keeps what it must remember across a restart.

`spark.deploy.recoveryMode=FILESYSTEM` stores one small protobuf file per
application, worker and driver in `spark.deploy.recoveryDirectory`; ZOOKEEPER
stores the same records as znodes (`cluster.zookeeper_persistence`); NONE
keeps nothing. Files are written atomically (temp file + rename) so that a
Master killed mid-write never leaves a torn record. This module only reads and
writes files; it never decides anything about the cluster.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from cluster import settings
from rpcenv import Conf, RpcError
from sparkctl.v1 import deploy_pb2

if TYPE_CHECKING:
    from cluster.submitted_files import FileReplica

__all__ = [
    "FileSystemPersistence",
    "NoPersistence",
    "Persistence",
    "PersistenceError",
    "persistence_from_conf",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


class PersistenceError(RpcError):
    """A recovery record could not be written or deleted (a full or read-only disk).

    A client refused for it may try again later, hence UNAVAILABLE.
    """

    GRPC_STATUS = "UNAVAILABLE"


class Persistence:
    """Records nothing: recovery mode NONE."""

    def put(self, kind: str, key: str, record: Message) -> None:
        """Store `record` under (`kind`, `key`), replacing any earlier one."""

    def remove(self, kind: str, key: str) -> None:
        """Forget the record under (`kind`, `key`), if any."""

    def read(self, kind: str, message_type: type[M]) -> list[M]:
        """Every stored record of `kind`."""
        return []

    def file_replica(self) -> FileReplica | None:
        """Where submitted files must be copied for a Master on another host (ZOOKEEPER)."""
        return None

    @property
    def enabled(self) -> bool:
        """Whether anything is stored (and a restart should recover)."""
        return False

    def close(self) -> None:
        """Release what the engine holds open (a ZooKeeper session); idempotent."""


class NoPersistence(Persistence):
    """Recovery mode NONE."""


class FileSystemPersistence(Persistence):
    """Recovery mode FILESYSTEM: one file per record under `directory`.

    Raises:
        ValueError: the directory cannot be created or written.
    """

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"spark.deploy.recoveryDirectory {directory}: {exc}") from None
        if not os.access(directory, os.W_OK):
            raise ValueError(f"spark.deploy.recoveryDirectory {directory} is not writable")

    @property
    def enabled(self) -> bool:
        return True

    def _path(self, kind: str, key: str) -> pathlib.Path:
        if "/" in key or key.startswith("."):
            raise ValueError(f"bad record key {key!r}")
        return self.directory / f"{kind}_{key}"

    def put(self, kind: str, key: str, record: Message) -> None:
        """Raises PersistenceError when the file cannot be written (the old one stays)."""
        target = self._path(kind, key)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{kind}_", dir=self.directory)
        except OSError as exc:
            raise PersistenceError(f"cannot write {target}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(record.SerializeToString())
            os.replace(tmp, target)
        except BaseException as exc:
            pathlib.Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise PersistenceError(f"cannot write {target}: {exc.strerror or exc}") from None
            raise

    def remove(self, kind: str, key: str) -> None:
        """Raises PersistenceError when the file cannot be deleted."""
        target = self._path(kind, key)
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise PersistenceError(f"cannot delete {target}: {exc.strerror or exc}") from None

    def read(self, kind: str, message_type: type[M]) -> list[M]:
        records: list[M] = []
        for path in sorted(self.directory.glob(f"{kind}_*")):
            try:
                records.append(message_type.FromString(path.read_bytes()))
            except (OSError, DecodeError) as exc:
                log.warning("skipping unreadable recovery record %s: %s", path, exc)
        return records


def persistence_from_conf(conf: Conf, work_dir: pathlib.Path) -> Persistence:
    """The persistence engine `spark.deploy.recoveryMode` asks for.

    Raises:
        ValueError: an unknown recovery mode, a bad setting, or (ZOOKEEPER)
            no ZooKeeper server reachable.
    """
    mode = conf.get(settings.RECOVERY_MODE)
    if mode == "NONE":
        return NoPersistence()
    if mode == "FILESYSTEM":
        directory = conf.get(settings.RECOVERY_DIRECTORY)
        path = pathlib.Path(directory) if directory else work_dir / "recovery"
        return FileSystemPersistence(path)
    # ZOOKEEPER, the entry's last choice. Imported here: only Masters that use it load kazoo.
    from cluster.zookeeper_persistence import ZooKeeperPersistence

    return ZooKeeperPersistence.from_conf(conf)


# Record kinds and their message types, for readers of this module.
RECORD_TYPES: dict[str, type[Message]] = {
    "app": deploy_pb2.PersistedApplication,
    "worker": deploy_pb2.PersistedWorker,
    "driver": deploy_pb2.PersistedDriver,
}
