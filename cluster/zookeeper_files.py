"""`ZOOKEEPER` recovery: the bytes of submitted files, kept in ZooKeeper too.

A cluster-mode driver's --py-files, --files and --archives are stored by the
Master on its own disk (`submitted_files`). A standby Master on another host,
elected after a failover, has no such disk; without a copy it could not
relaunch a supervised driver. So the leader also writes each file's bytes
under `<spark.deploy.zookeeper.dir>/submitted_files/<sha256>`, in chunks
below ZooKeeper's 1 MB znode limit, and a Master that lacks a file reads it
back from there (and keeps it on its disk after that).

A file is complete once its parent node holds "size chunks": chunks are
written first, that marker last, so a leader killed mid-write leaves a file
that reads as absent, never a torn one; every read is checked against the
file's SHA-256. All sizes are bounded by `spark.sparkctl.zookeeper.maxFilesSize`
at submission. This module only reads and writes znodes; it never decides
anything about the cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

__all__ = ["CHUNK_BYTES", "ZooKeeperFiles"]

log = logging.getLogger(__name__)

#: Bytes per chunk znode: well below jute.maxbuffer (1 MB less a little by default).
CHUNK_BYTES = 512 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ZooKeeperFiles:
    """Submitted files' bytes as znodes, by SHA-256 (a `submitted_files.FileReplica`).

    Args:
        client: the Master's started kazoo session (its persistence's).
        directory: `spark.deploy.zookeeper.dir`.
    """

    def __init__(self, client: KazooClient, directory: str) -> None:
        self.client = client
        self.path = f"{directory}/submitted_files"

    def _node(self, digest: str) -> str:
        if not _SHA256.match(digest):
            raise ValueError(f"bad sha256 {digest[:80]!r}")
        return f"{self.path}/{digest}"

    def put(self, digest: str, content: bytes) -> None:
        """Store `content` under `digest` (nothing to do if it is there, complete).

        Raises:
            OSError: ZooKeeper refused or failed a write.
        """
        node = self._node(digest)
        chunks = [content[i : i + CHUNK_BYTES] for i in range(0, len(content), CHUNK_BYTES)]
        marker = f"{len(content)} {len(chunks)}".encode()
        try:
            try:
                done, _stat = self.client.get(node)
                # A marker proves nothing of chunks changed since: a copy that does
                # not read back whole is written again, not trusted.
                if done == marker and self.get(digest) == content:
                    return
            except NoNodeError:
                # Another writer (a deposed leader finishing) may create it first.
                with contextlib.suppress(NodeExistsError):
                    self.client.create(node, b"", makepath=True)
            for index, chunk in enumerate(chunks):
                child = f"{node}/{index:05d}"
                try:
                    self.client.create(child, chunk)
                except NodeExistsError:
                    self.client.set(child, chunk)
            self.client.set(node, marker)  # complete: written last
        except KazooException as exc:
            raise OSError(f"cannot write {node} in ZooKeeper: {exc!r}") from None

    def get(self, digest: str) -> bytes | None:
        """The bytes stored under `digest`, or None (absent, incomplete, corrupt, unreachable)."""
        node = self._node(digest)
        try:
            marker, _stat = self.client.get(node)
            size_text, _, count_text = marker.decode("ascii", "replace").partition(" ")
            if not size_text.isdigit() or not count_text.isdigit():
                return None  # not complete
            parts = [self.client.get(f"{node}/{i:05d}")[0] for i in range(int(count_text))]
        except NoNodeError:
            return None
        except KazooException as exc:
            log.error("cannot read submitted file %s from ZooKeeper: %r", digest, exc)
            return None
        content = b"".join(parts)
        if len(content) != int(size_text) or hashlib.sha256(content).hexdigest() != digest:
            log.error("submitted file %s in ZooKeeper is not what was stored", digest)
            return None
        return content

    def remove(self, digest: str) -> None:
        """Delete `digest`'s znodes (a failure is logged: a later sweep retries)."""
        node = self._node(digest)
        try:
            self.client.delete(node, recursive=True)
        except NoNodeError:
            pass
        except KazooException as exc:
            log.warning("cannot delete %s from ZooKeeper: %r", node, exc)

    def digests(self) -> list[str]:
        """Every file stored, complete or not."""
        try:
            return [d for d in self.client.get_children(self.path) if _SHA256.match(d)]
        except NoNodeError:
            return []
        except KazooException as exc:
            log.warning("cannot list %s in ZooKeeper: %r", self.path, exc)
            return []
