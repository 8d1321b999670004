"""An executor's copies of the files its driver added (addFile/addPyFile/addArchive).

A Python worker calls `prepare_task_files` with a stage's files manifest before
it unpickles the stage's code (a task's function may come from an added
module). Each file is fetched from the driver in chunks through the worker's
executor, checked against the size and SHA-256 the manifest gives, and renamed
into `<executor local dir>/files` only once it matches; archives are unpacked
there under their alias (`scheduler.task.archives`, which refuses hostile members). One lock
file per executor makes its workers fetch each file once between them: the
first fetches, the others wait and find it there. Nothing is taken from a path
the driver named: the driver's host may be another one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from scheduler.task.archives import unpack_archive
from scheduler.task.sparkfiles import (
    FILES_MANIFEST_PROPERTY,
    FILES_ROOT_PROPERTY,
    archive_blob_name,
    blob_name,
)

__all__ = [
    "FETCH_CHUNK",
    "BlobReader",
    "FilesManifest",
    "fetch_into",
    "forget_prepared",
    "prepare_task_files",
]

#: Bytes asked of the driver per request when a worker fetches an added file.
FETCH_CHUNK = 8 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE_EXTENSIONS = (".zip", ".egg", ".jar")

#: Fetches a byte range of a driver blob: (blob name, offset, length) -> bytes.
BlobReader = Callable[[str, int, int], bytes]

#: Manifests this process has prepared, and the root its files are under here
#: ("" -> the root of tasks whose driver added nothing yet).
_PREPARED: dict[str, str] = {}


class FilesManifest:
    """A parsed, checked manifest: no path in it can leave the files directory.

    Raises:
        ValueError: a malformed manifest or an unsafe path or name in it.
    """

    def __init__(self, text: str) -> None:
        try:
            raw: dict[str, Any] = json.loads(text)
            self.files = [(str(r), int(s), str(h)) for r, s, h in raw.get("files", [])]
            self.py = [str(n) for n in raw.get("py", [])]
            self.archives = [
                (str(n), str(a), int(s), str(h)) for n, a, s, h in raw.get("archives", [])
            ]
        except (TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed files manifest: {exc}") from None
        for relative, size, digest in self.files:
            _check_relative(relative)
            _check_sum(relative, size, digest)
        for name, alias, size, digest in self.archives:
            _check_relative(alias, single=True)
            _check_sum(name, size, digest)
        for name in self.py:
            _check_relative(name, single=True)


def _check_relative(path: str, single: bool = False) -> None:
    parts = path.split("/")
    if (
        not path
        or os.path.isabs(path)
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
        or (single and len(parts) > 1)
    ):
        raise ValueError(f"refusing the added file {path!r}: not a plain relative path")


def _check_sum(name: str, size: int, digest: str) -> None:
    if size < 0 or not _SHA256.match(digest):
        raise ValueError(f"malformed size or sha256 for the added file {name!r}")


def prepare_task_files(
    properties: dict[str, str], local_dir: str, read_blob: BlobReader | None
) -> dict[str, str]:
    """Make a task's added files present (and its py files importable) in this worker.

    Returns the task's properties, with the files root rewritten to this executor's
    copy. Cheap when nothing was added or the manifest was seen before. Without a
    `read_blob` (no executor: in-process use) the driver's own copy is used.

    Raises:
        OSError: a file could not be fetched, failed its check, or could not be written.
        ValueError: a malformed manifest or an unsafe archive.
    """
    manifest_text = properties.get(FILES_MANIFEST_PROPERTY)
    if manifest_text is None:
        if read_blob is None:
            return properties
        # Nothing added yet: SparkFiles.getRootDirectory() is still this executor's dir.
        root = _PREPARED.get("")
        if root is None:
            root = os.path.join(local_dir, "files")
            os.makedirs(root, exist_ok=True)
            _PREPARED[""] = root
        return {**properties, FILES_ROOT_PROPERTY: root}
    root = _PREPARED.get(manifest_text)
    if root is None:
        manifest = FilesManifest(manifest_text)
        if read_blob is None:
            root = properties[FILES_ROOT_PROPERTY]
        else:
            root = os.path.join(local_dir, "files")
            with _executor_lock(local_dir):
                os.makedirs(root, exist_ok=True)  # also when the manifest lists nothing
                fetch_into(root, manifest, read_blob, os.path.join(local_dir, "incoming"))
        _put_on_path(root)
        for name in manifest.py:
            if name.lower().endswith(_PACKAGE_EXTENSIONS):
                _put_on_path(os.path.join(root, name))
        _PREPARED[manifest_text] = root
    if root == properties.get(FILES_ROOT_PROPERTY):
        return properties
    return {**properties, FILES_ROOT_PROPERTY: root}


@contextlib.contextmanager
def _executor_lock(local_dir: str) -> Iterator[None]:
    """Held while one of the executor's workers fetches: the others wait, then reuse."""
    os.makedirs(local_dir, exist_ok=True)
    with open(os.path.join(local_dir, ".files.lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fetch_into(root: str, manifest: FilesManifest, read_blob: BlobReader, staging: str) -> None:
    """Fetch what `root` lacks of `manifest`; unpack its archives (caller holds the lock).

    `staging` holds partial files and packed archives, outside `root`.

    A file already in `root` at its size was fetched and checked before (files are
    renamed in only after their check), so it is not fetched again.
    """
    for relative, size, digest in manifest.files:
        target = os.path.join(root, relative)
        if os.path.isfile(target) and os.path.getsize(target) == size:
            continue
        _fetch_checked(blob_name(relative), size, digest, target, read_blob, staging)
    for name, alias, size, digest in manifest.archives:
        dest = os.path.join(root, alias)
        if os.path.isdir(dest):
            continue  # unpacked whole (renamed into place) by an earlier task
        packed = os.path.join(staging, alias)
        _fetch_checked(archive_blob_name(alias), size, digest, packed, read_blob, staging)
        try:
            unpack_archive(packed, dest, name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(packed)


def _fetch_checked(
    blob: str, size: int, digest: str, target: str, read_blob: BlobReader, staging: str
) -> None:
    """Fetch `blob` in chunks to `target`, renamed in only if its size and hash match.

    The partial file lives in `staging` (beside the files root, on the same
    filesystem), so that a worker killed mid-fetch leaves nothing among the files.

    Raises:
        OSError: the driver sent too few or too many bytes, or other bytes than it added.
    """
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.makedirs(staging, exist_ok=True)
    tmp = os.path.join(staging, f"{digest}.{os.getpid()}.part")
    hasher = hashlib.sha256()
    received = 0
    try:
        with open(tmp, "wb") as out:
            while received < size:
                data = read_blob(blob, received, min(FETCH_CHUNK, size - received))
                if not data:
                    raise OSError(
                        f"the driver sent no bytes of {blob} at offset {received} of {size}"
                    )
                hasher.update(data)
                out.write(data)
                received += len(data)
        if received != size:
            raise OSError(f"{blob}: the driver sent {received} bytes, expected {size}")
        if hasher.hexdigest() != digest:
            raise OSError(
                f"{blob}: the fetched bytes' sha256 {hasher.hexdigest()} is not the "
                f"{digest} the driver added (changed or corrupted on the way): refused"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _put_on_path(entry: str) -> None:
    """Make modules in `entry` (a directory, or a zip/egg) importable in this process."""
    if entry not in sys.path:
        sys.path.insert(1, entry)
        importlib.invalidate_caches()


def forget_prepared() -> None:
    """Forget which manifests this process prepared (tests)."""
    _PREPARED.clear()
