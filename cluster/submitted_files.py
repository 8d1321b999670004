"""The Master's store of files submitted with cluster-mode drivers.

A SubmitDriver carries the bytes of its --py-files, --files and --archives
(`DriverDescription.files`). The Master checks them, writes each once under
its SHA-256 in a directory of its own (beside the FILESYSTEM recovery
records, else in its work dir), and keeps only the name, hash and size in
the driver's description: recovery records, ZooKeeper nodes included, never
hold file contents. A LaunchDriver gets the bytes back from the store. A file
is deleted when no driver the Master still keeps needs it.

With `spark.deploy.recoveryMode=ZOOKEEPER` each file is also written to a
`FileReplica` (`zookeeper_files.ZooKeeperFiles`), so that a Master elected on
another host reads back what its predecessor stored; the files of one
submission are then also bounded by `spark.sparkctl.zookeeper.maxFilesSize`.
A file named by its hash alone (the Master holds it already) is copied there
too if the replica lacks it, and counts toward that bound.
A driver whose files no copy holds fails with a reason that says so. This
module reads and writes files only; it never sends a message.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import re
import tempfile
import threading
from collections.abc import Iterable
from typing import Protocol

from cluster.settings import MAX_FILES_SIZE
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb

__all__ = [
    "DEFAULT_MAX_FILES_BYTES",
    "MAX_FILES_KEY",
    "SUBMITTED_FILES_KEY",
    "FileReplica",
    "PlacedFiles",
    "SubmittedFileStore",
    "check_file_name",
    "place_submitted_files",
]

log = logging.getLogger(__name__)

#: Conf key: the most bytes the files of one submission may hold in all.
MAX_FILES_KEY = MAX_FILES_SIZE.key
#: Its default (64m): well below the default spark.rpc.message.maxSize (128 MiB).
DEFAULT_MAX_FILES_BYTES = Conf().get(MAX_FILES_SIZE)
#: Conf key of a cluster-mode driver: JSON {path on the submitting host: local copy}
#: (the scheduler's SparkContext reads it; the same name as scheduler.task.sparkfiles').
SUBMITTED_FILES_KEY = "spark.sparkctl.submittedFiles"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ARCHIVES = (".zip", ".jar", ".tar", ".tar.gz", ".tgz")
_KIND = pb.SubmittedFileKind


def check_file_name(name: str, what: str) -> None:
    """Raises ValueError unless `name` is a plain file name fit for a directory entry."""
    if not _NAME.match(name) or len(name) > 255:
        raise ValueError(
            f"{what} {name[:80]!r} must be a plain file name: letters, digits, '.', '_', '-'"
        )


class FileReplica(Protocol):
    """A second home for stored files that a Master on another host can read."""

    def put(self, digest: str, content: bytes) -> None:
        """Store `content` under its SHA-256 `digest`; OSError if it could not."""

    def get(self, digest: str) -> bytes | None:
        """The bytes of `digest`, checked against it; None if it holds no intact copy."""

    def remove(self, digest: str) -> None:
        """Delete `digest` (never raises)."""

    def digests(self) -> list[str]:
        """Every digest it holds."""


class SubmittedFileStore:
    """Content-addressed copies of submitted files, in `directory` (and `replica`).

    Args:
        directory: where the Master keeps them on its disk.
        max_bytes: `spark.sparkctl.submit.maxFilesSize`.
        replica: where a Master elected elsewhere finds them (ZOOKEEPER), if any.
        replica_max_bytes: the replica's own bound on one submission's files.
        replica_key: the conf key of that bound, for the error that names it.
    """

    def __init__(
        self,
        directory: pathlib.Path,
        max_bytes: int = DEFAULT_MAX_FILES_BYTES,
        replica: FileReplica | None = None,
        replica_max_bytes: int | None = None,
        replica_key: str = "",
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.replica = replica
        self.replica_max_bytes = replica_max_bytes
        self.replica_key = replica_key
        # Files stored for submissions not recorded yet (`store` runs off the Master's
        # thread, before the driver exists): release and sweep keep them (`stored`).
        self._pending: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def accept(self, desc: pb.DriverDescription) -> None:
        """Check `desc.files`, store their bytes and keep only name, hash and size in it.

        Raises:
            ValueError: a bad name, kind or alias, a duplicate, a hash mismatch, a
                file with neither bytes nor a stored copy, or too many bytes in all.
            OSError: the store cannot be written.
        """
        self.check(desc)
        self.store(desc)
        self.stored(desc)  # the caller keeps `desc` at once

    def check(self, desc: pb.DriverDescription) -> None:
        """The checks of `accept` that never read the bytes: names, kinds, aliases.

        Raises:
            ValueError: naming the file and what is wrong with it.
        """
        app_name = os.path.basename(desc.app_resource.removeprefix("file://"))
        seen: set[str] = set()
        for entry in desc.files:
            self._check(entry, app_name, seen)

    def store(self, desc: pb.DriverDescription) -> None:
        """Check the size limit, hash and store the bytes of checked `desc.files`.

        Afterwards each entry holds only name, kind, alias, hash and size. Reading
        a bytes field copies it (and so does ByteSize), so each is read once, here.

        Raises:
            ValueError: too many bytes in all, a hash mismatch, or a file with
                neither bytes nor a stored copy.
            OSError: the store cannot be written.
        """
        contents = [entry.content for entry in desc.files]
        sent = [len(c) for c in contents]
        limits = [(self.max_bytes, sent, MAX_FILES_KEY, "this Master accepts")]
        if self.replica is not None and self.replica_max_bytes is not None:
            # The replica must hold every file, those named by hash included.
            held = [
                self._held_size(f.sha256) if self._by_hash(f, c) else len(c)
                for f, c in zip(desc.files, contents, strict=True)
            ]
            limits.append(
                (self.replica_max_bytes, held, self.replica_key, "its standby Masters can recover")
            )
        for limit, sizes, key, what in limits:
            total = sum(sizes)
            if total > limit:
                listed = ", ".join(
                    f"{f.name} {n / 2**20:.1f} MiB" for f, n in zip(desc.files, sizes, strict=True)
                )
                raise ValueError(
                    f"the submitted files hold {total / 2**20:.1f} MiB ({listed}), more than "
                    f"the {limit / 2**20:.1f} MiB {what} ({key}); put large inputs where "
                    "the cluster can read them"
                )
        marked: list[str] = []
        try:
            for entry, content in zip(desc.files, contents, strict=True):
                self._store_one(entry, content, marked)
        except BaseException:
            self._unmark(marked)  # refused: nothing of it is pending
            raise

    def stored(self, desc: pb.DriverDescription) -> None:
        """The driver of `desc` (passed through `store`) is recorded or refused now: its
        files are kept, or released, by the Master's drivers from here on."""
        self._unmark([entry.sha256 for entry in desc.files])

    def _unmark(self, digests: list[str]) -> None:
        with self._lock:
            for digest in digests:
                if self._pending[digest] > 1:
                    self._pending[digest] -= 1
                else:
                    self._pending.pop(digest, None)

    @staticmethod
    def _by_hash(entry: pb.SubmittedFile, content: bytes) -> bool:
        """Whether the client named bytes it submitted before, by their hash alone."""
        return not content and bool(entry.sha256) and entry.sha256 != _EMPTY_SHA256

    def _store_one(self, entry: pb.SubmittedFile, content: bytes, marked: list[str]) -> None:
        digest = hashlib.sha256(content).hexdigest()
        by_hash = self._by_hash(entry, content)
        key = entry.sha256 if by_hash else digest
        with self._lock:  # before the bytes: a release from now on keeps them
            self._pending[key] += 1
        marked.append(key)
        if not by_hash:
            if entry.sha256 and entry.sha256 != digest:
                raise ValueError(
                    f"submitted file {entry.name!r}: its bytes hash to {digest}, "
                    f"not the sha256 {entry.sha256} given"
                )
            self._write(digest, content)
            if self.replica is not None:
                self.replica.put(digest, content)  # OSError: the submission is refused
            entry.sha256, entry.size = digest, len(content)
        else:  # a client naming bytes it submitted before, by their hash
            size = self._size_by_hash(entry.sha256)
            if size is None:
                raise ValueError(
                    f"submitted file {entry.name!r} has no content and this Master "
                    f"holds no file with sha256 {entry.sha256}"
                )
            entry.size = size
        entry.ClearField("content")

    def _size_by_hash(self, digest: str) -> int | None:
        """The size of our copy of `digest` (None: we hold none). With a replica the
        copy is checked and put there too: held here since before ZOOKEEPER recovery
        was on, or lost by ZooKeeper, it would be lost with this Master's host.

        Raises:
            OSError: the replica refused it (the submission is refused, as if sent whole).
        """
        if self.replica is None:
            path = self._path(digest)
            return path.stat().st_size if path.is_file() else None
        held = self._held(digest)
        if held is None:
            return None
        self.replica.put(digest, held)
        return len(held)

    def _held(self, digest: str) -> bytes | None:
        """Our intact copy of `digest`, from disk or else from the replica (None: none)."""
        path = self._path(digest)
        try:
            content = path.read_bytes()
            if hashlib.sha256(content).hexdigest() == digest:
                return content
            path.unlink(missing_ok=True)  # damaged: rewritten if the replica has it
        except OSError:
            pass
        return self._fetch(digest)

    def _held_size(self, digest: str) -> int:
        """The size of our copy of `digest`, fetched from the replica if need be (0: none)."""
        try:
            return self._path(digest).stat().st_size
        except OSError:
            content = self._fetch(digest)
            return 0 if content is None else len(content)

    def _fetch(self, digest: str) -> bytes | None:
        """The replica's copy of `digest`, kept on our disk from now on (None: it has none)."""
        if self.replica is None:
            return None
        content = self.replica.get(digest)
        if content is not None:
            try:
                self._write(digest, content)
            except OSError as exc:  # served from memory this time
                log.warning("cannot keep submitted file %s on disk: %s", digest, exc)
        return content

    @staticmethod
    def _check(entry: pb.SubmittedFile, app_name: str, seen: set[str]) -> None:
        check_file_name(entry.name, "submitted file name")
        if entry.kind not in (_KIND.SUBMITTED_FILE_KIND_PY_FILE, _KIND.SUBMITTED_FILE_KIND_FILE,
                              _KIND.SUBMITTED_FILE_KIND_ARCHIVE):  # fmt: skip
            raise ValueError(f"submitted file {entry.name!r} has no kind (PY_FILE, FILE, ARCHIVE)")
        if entry.sha256 and not _SHA256.match(entry.sha256):
            raise ValueError(
                f"submitted file {entry.name!r}: sha256 must be 64 lowercase hex digits"
            )
        if entry.kind == _KIND.SUBMITTED_FILE_KIND_ARCHIVE:
            if not entry.name.lower().endswith(_ARCHIVES):
                raise ValueError(
                    f"submitted archive {entry.name!r} must end with {', '.join(_ARCHIVES)}"
                )
            if entry.alias:
                check_file_name(entry.alias, f"alias of the archive {entry.name!r}")
        elif entry.alias:
            raise ValueError(f"submitted file {entry.name!r}: only archives take an alias")
        for name in {entry.name, entry.alias or entry.name}:
            if name in seen or name == app_name:
                raise ValueError(f"the name {name!r} is submitted twice (or is the app's own)")
            seen.add(name)

    def with_contents(self, desc: pb.DriverDescription) -> pb.DriverDescription:
        """A copy of `desc` whose files carry their bytes again (for a LaunchDriver).

        A file the store lacks is left empty: the Worker then fails the driver, saying so.
        """
        if not desc.files:
            return desc
        full = pb.DriverDescription()
        full.CopyFrom(desc)
        for entry in full.files:
            try:
                content = self._path(entry.sha256).read_bytes()
                if hashlib.sha256(content).hexdigest() != entry.sha256:
                    # Torn by a crash after the rename, or changed: never sent as intact.
                    raise ValueError("the copy on disk does not hash to it (damaged)")
                entry.content = content
            except (OSError, ValueError) as exc:
                content = None
                if _SHA256.match(entry.sha256):
                    with contextlib.suppress(OSError):
                        self._path(entry.sha256).unlink(missing_ok=True)  # rewritten if fetched
                    content = self._fetch(entry.sha256)
                if content is not None:  # stored by a Master elected before us
                    entry.content = content
                    continue
                log.error(
                    "no stored copy of submitted file %s (%s): %s", entry.name, entry.sha256, exc
                )
        return full

    def release(self, done: pb.DriverDescription, kept: Iterable[pb.DriverDescription]) -> None:
        """Delete the files of `done` that no description in `kept` needs (nor a
        submission still being stored: under the lock, so none starts meanwhile)."""
        needed = {f.sha256 for d in kept for f in d.files}
        with self._lock:
            for entry in done.files:
                if entry.sha256 and entry.sha256 not in needed | self._pending.keys():
                    with contextlib.suppress(OSError, ValueError):
                        self._path(entry.sha256).unlink(missing_ok=True)
                    if self.replica is not None and _SHA256.match(entry.sha256):
                        self.replica.remove(entry.sha256)

    def sweep(self, kept: Iterable[pb.DriverDescription]) -> int:
        """Delete stored files no description in `kept` needs (left by an earlier Master
        run: a restart without recovery, a crash between storing and recording); a count."""
        with self._lock:
            return self._sweep({f.sha256 for d in kept for f in d.files} | self._pending.keys())

    def _sweep(self, needed: set[str]) -> int:
        removed = 0
        with contextlib.suppress(OSError):
            for path in self.directory.iterdir():
                if path.name not in needed and (
                    _SHA256.match(path.name) or path.name.startswith(".incoming-")
                ):
                    with contextlib.suppress(OSError):
                        path.unlink()
                        removed += 1
        if self.replica is not None:
            for digest in self.replica.digests():
                if digest not in needed:
                    self.replica.remove(digest)
                    removed += 1
        return removed

    def _path(self, digest: str) -> pathlib.Path:
        if not _SHA256.match(digest):
            raise ValueError(f"bad sha256 {digest[:80]!r}")
        return self.directory / digest

    def _write(self, digest: str, content: bytes) -> None:
        target = self._path(digest)
        if target.is_file() and target.stat().st_size == len(content):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, target)
        except BaseException:
            pathlib.Path(tmp).unlink(missing_ok=True)
            raise


@dataclasses.dataclass
class PlacedFiles:
    """Where a driver's submitted files were written, as the driver's conf names them."""

    conf: dict[str, str]
    python_path: list[str]


def place_submitted_files(
    files: Iterable[pb.SubmittedFile], directory: pathlib.Path, conf: dict[str, str]
) -> PlacedFiles:
    """Write a LaunchDriver's files into `directory`, checked; the conf that adds them.

    The driver's SparkContext then adds them as Spark adds spark.submit.pyFiles,
    spark.files and spark.archives (entries `conf` already has come after ours);
    `spark.sparkctl.submittedFiles` maps their paths on the submitting host to
    these copies.

    Raises:
        ValueError: a bad name, or bytes that are missing or are not what was submitted.
        OSError: a file cannot be written.
    """
    keys = {
        _KIND.SUBMITTED_FILE_KIND_PY_FILE: "spark.submit.pyFiles",
        _KIND.SUBMITTED_FILE_KIND_FILE: "spark.files",
        _KIND.SUBMITTED_FILE_KIND_ARCHIVE: "spark.archives",
    }
    added: dict[str, list[str]] = {key: [] for key in keys.values()}
    python_path: list[str] = []
    sources: dict[str, str] = {}
    for entry in files:
        check_file_name(entry.name, "submitted file name")
        if entry.kind not in keys:
            raise ValueError(f"submitted file {entry.name!r} has no kind")
        content = entry.content  # each read of the field copies the bytes: read once
        digest = hashlib.sha256(content).hexdigest()
        if len(content) != entry.size or digest != entry.sha256:
            raise ValueError(
                f"submitted file {entry.name!r} ({entry.size} bytes, sha256 {entry.sha256}) "
                f"arrived as {len(content)} bytes hashing to {digest}: the Master has "
                "no intact copy (a Master elected after the submission never had one); "
                "submit the driver again"
            )
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / entry.name
        target.write_bytes(content)
        local = str(target)
        if entry.kind == _KIND.SUBMITTED_FILE_KIND_PY_FILE:
            # The app imports them before its SparkContext exists: on its PYTHONPATH too.
            entry_path = str(directory) if entry.name.endswith(".py") else local
            if entry_path not in python_path:
                python_path.append(entry_path)
        if entry.kind == _KIND.SUBMITTED_FILE_KIND_ARCHIVE and entry.alias:
            local = f"{local}#{entry.alias}"
        added[keys[entry.kind]].append(local)
        if entry.source_path:
            sources[os.path.normpath(entry.source_path)] = str(target)
    updates: dict[str, str] = {}
    for key, paths in added.items():
        if paths:
            updates[key] = ",".join([*paths, *[p for p in conf.get(key, "").split(",") if p]])
    if sources:
        updates[SUBMITTED_FILES_KEY] = json.dumps(sources, sort_keys=True)
    return PlacedFiles(updates, python_path)
