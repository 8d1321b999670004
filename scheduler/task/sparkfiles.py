"""SparkFiles, and the names under which added files travel to executors.

The driver adds files (`scheduler.api.addedfiles`) and serves each one as a
blob named here; every job carries a manifest of them as local properties, and
each stage's payload carries it in its header (`scheduler.task.stagecode`), so
that an executor's Python worker fetches and installs them
(`scheduler.executor.filefetch`) before it unpickles any of the stage's code.
`SparkFiles` finds the directory that holds them, in a task or on the driver.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable

__all__ = [
    "FILES_MANIFEST_PROPERTY",
    "FILES_ROOT_PROPERTY",
    "SUBMITTED_FILES_KEY",
    "SparkFiles",
    "archive_blob_name",
    "blob_name",
    "check_name",
    "file_digest",
    "local_path",
    "split_alias",
]

#: Local property that carries the driver's files directory to tasks.
FILES_ROOT_PROPERTY = "spark.sparkctl.files.root"
#: Local property with the JSON manifest: {"files": [[relative path, size, sha256]],
#: "py": [names], "archives": [[name, alias, size, sha256]]}.
FILES_MANIFEST_PROPERTY = "spark.sparkctl.files.manifest"
#: Conf key of a cluster-mode driver: JSON {path on the submitting host: local copy}.
SUBMITTED_FILES_KEY = "spark.sparkctl.submittedFiles"


def check_name(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{what} must be a plain file name, not {name!r}")


def blob_name(relative: str) -> str:
    """The name under which the driver serves an added file."""
    return f"file/{relative}"


def archive_blob_name(alias: str) -> str:
    """The name under which the driver serves an added archive (packed)."""
    return f"archive/{alias}"


def file_digest(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: `scheme://` at the start of a URI (a Windows drive letter has no `//`).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def local_path(uri: str, what: str) -> str:
    """`uri` as a local path: `file:/x` and `file:///x` -> `/x`, a plain path as it is.

    Raises:
        ValueError: another scheme (hdfs://, s3a://, http://...), named with what is
            supported: sparkctl ships only files of the submitting host's filesystem.
    """
    if uri.startswith("file://"):
        return uri[len("file://") :]
    if uri.startswith("file:"):
        return uri[len("file:") :]
    match = _SCHEME.match(uri)
    if match is not None:
        raise ValueError(
            f"{what}: {uri!r} has the scheme {match.group(1)!r}, which sparkctl cannot fetch; "
            "only local files are supported (a path or a file: URI): copy it to this host first"
        )
    return uri


def split_alias(path: str) -> tuple[str, str | None]:
    """`a.zip#env` -> ("a.zip", "env"); a path without '#' has no alias.

    Raises:
        ValueError: an alias that is not a plain name (it becomes a directory name).
    """
    if "#" not in path:
        return path, None
    source, alias = path.rsplit("#", 1)
    check_name(alias, f"the alias of {path!r}")
    return source, alias


def _no_driver_root() -> str | None:
    return None


#: On the driver: the active SparkContext's files directory, or None. Installed by
#: `scheduler.api.addedfiles`, which knows the context; this module does not.
driver_files_root: Callable[[], str | None] = _no_driver_root


class SparkFiles:
    """Resolves files added with `SparkContext.addFile`, on the driver or in a task."""

    def __init__(self) -> None:
        raise NotImplementedError("SparkFiles only has class methods")

    @classmethod
    def getRootDirectory(cls) -> str:
        """The directory that holds the added files (and unpacked archives).

        On the driver it is the active SparkContext's, in a task its executor's,
        whether or not a file was added yet (as in PySpark).

        Raises:
            RuntimeError: neither in a task nor on a driver with an active SparkContext.
        """
        from scheduler.task.taskcontext import TaskContext

        task = TaskContext.get()
        root = task.getLocalProperty(FILES_ROOT_PROPERTY) if task is not None else None
        if root is None:
            root = driver_files_root()
        if root is None:
            raise RuntimeError("SparkFiles: no active SparkContext and not in a task")
        return str(root)

    @classmethod
    def get(cls, filename: str) -> str:
        """The absolute path of an added file or unpacked archive, by its name (or alias)."""
        return os.path.join(cls.getRootDirectory(), filename)
