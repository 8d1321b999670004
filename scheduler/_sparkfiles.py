"""sc.addFile / sc.addPyFile and SparkFiles: files every task can open or import.

The driver copies each added file into one directory per application and
serves the copies over the RpcEnv (as blobs of the task scheduler). Every job
carries that directory and a manifest of the files as local properties. A
Python worker whose host sees the directory (the driver's host) uses it as
is; elsewhere it fetches the files once, in chunks through its executor, into
the executor's local dir. Files added with addPyFile are also put on
`sys.path`, on the driver at once and in each worker before its next task, so
executors that were already running can import them too.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

__all__ = [
    "FILES_MANIFEST_PROPERTY",
    "FILES_ROOT_PROPERTY",
    "AddedFiles",
    "SparkFiles",
    "blob_name",
    "prepare_task_files",
]

#: Local property that carries the driver's files directory to tasks.
FILES_ROOT_PROPERTY = "spark.sparkctl.files.root"
#: Local property with the JSON manifest: {"files": [[relative path, size]], "py": [names]}.
FILES_MANIFEST_PROPERTY = "spark.sparkctl.files.manifest"
#: Bytes asked of the driver per request when a worker fetches an added file.
FETCH_CHUNK = 8 << 20
#: File extensions addPyFile puts on sys.path (as PySpark does).
_PY_EXTENSIONS = (".py", ".zip", ".egg", ".jar")


def blob_name(relative: str) -> str:
    """The name under which the driver serves an added file."""
    return f"file/{relative}"


class AddedFiles:
    """The SparkContext side: addFile, addPyFile, listFiles and cleanup at stop."""

    _files_root: str | None = None
    _added_files: dict[str, str]
    _files_manifest: str | None = None

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Copy `path` for tasks to open with `SparkFiles.get(basename)`.

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: a directory without `recursive=True`, or a second,
                different file of the same name.
        """
        self._add(path, recursive, "addFile")

    def addPyFile(self, path: str) -> None:
        """Add a .py/.zip/.egg dependency: importable in every later task and on the driver.

        Raises:
            FileNotFoundError: `path` does not exist.
        """
        name = self._add(path, False, "addPyFile")
        if name is None or not name.lower().endswith(_PY_EXTENSIONS):
            return
        py: list[str] = self.__dict__.setdefault("_py_names", [])
        if name not in py:
            py.append(name)
            self._files_manifest = None
        assert self._files_root is not None
        if not name.lower().endswith(".py"):  # a .py is importable from the root already
            _put_on_path(os.path.join(self._files_root, name))

    def _add(self, path: str, recursive: bool, caller: str) -> str | None:
        """Copy and serve `path`; its base name, or None if it was already added."""
        source = os.path.abspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"{caller}: {path} does not exist")
        if os.path.isdir(source) and not recursive:
            raise ValueError(f"{caller}: {path} is a directory; pass recursive=True to add it")
        added: dict[str, str] = self.__dict__.setdefault("_added_files", {})
        name = os.path.basename(source.rstrip(os.sep))
        if name in added:
            if added[name] != source:
                raise ValueError(
                    f"{caller}: a file named {name!r} was already added from {added[name]}"
                )
            return name
        root = self._files_root
        if root is None:
            base = self._local_dir_for_files()
            root = self._files_root = tempfile.mkdtemp(prefix="sparkctl-files-", dir=base)
            _put_on_path(root)  # as in PySpark: added .py files import by name
        target = os.path.join(root, name)
        if os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        added[name] = source
        serve: Callable[[str, str], None] | None = getattr(
            getattr(self, "_scheduler", None), "serve_file", None
        )
        entries: list[list[Any]] = self.__dict__.setdefault("_file_entries", [])
        for relative in _relative_files(root, name):
            full = os.path.join(root, relative)
            entries.append([relative, os.path.getsize(full)])
            if serve is not None:
                serve(blob_name(relative), full)
        self._files_manifest = None
        return name

    @property
    def listFiles(self) -> list[str]:
        """The `file:` URIs added with addFile, in the order they were added."""
        return [f"file:{path}" for path in self.__dict__.get("_added_files", {}).values()]

    @property
    def listArchives(self) -> list[str]:
        """Archives added with addArchive: always none, as addArchive is not supported."""
        return []

    def _local_dir_for_files(self) -> str | None:
        conf: Any = getattr(self, "_conf", None)
        local = conf.get("spark.local.dir") if conf is not None else None
        return str(local).split(",")[0] if local else None

    def _files_properties(self) -> dict[str, str]:
        if self._files_root is None:
            return {}
        if self._files_manifest is None:
            self._files_manifest = json.dumps(
                {
                    "files": self.__dict__.get("_file_entries", []),
                    "py": self.__dict__.get("_py_names", []),
                }
            )
        return {
            FILES_ROOT_PROPERTY: self._files_root,
            FILES_MANIFEST_PROPERTY: self._files_manifest,
        }

    def _remove_added_files(self) -> None:
        root = self._files_root
        if root is not None:
            stale = {root} | {os.path.join(root, n) for n in self.__dict__.get("_py_names", [])}
            sys.path[:] = [p for p in sys.path if p not in stale]
            shutil.rmtree(root, ignore_errors=True)


def _relative_files(root: str, name: str) -> list[str]:
    """`name` under `root` as the relative paths of its files (a directory's, walked)."""
    top = os.path.join(root, name)
    if not os.path.isdir(top):
        return [name]
    found = []
    for folder, _, files in os.walk(top):
        for file in sorted(files):
            found.append(os.path.relpath(os.path.join(folder, file), root))
    return found


def _put_on_path(entry: str) -> None:
    """Make modules in `entry` (a directory, or a zip/egg) importable in this process."""
    if entry not in sys.path:
        sys.path.insert(1, entry)
        importlib.invalidate_caches()


#: Fetches a byte range of a driver blob: (blob name, offset, length) -> bytes.
BlobReader = Callable[[str, int, int], bytes]

#: Manifests this process has prepared, and the root its files are under here.
_PREPARED: dict[str, str] = {}


def prepare_task_files(
    properties: dict[str, str],
    local_dir: str,
    read_blob: BlobReader | None,
    force_fetch: bool = False,
) -> dict[str, str]:
    """Make a task's added files present (and its py files importable) in this worker.

    Returns the task's properties, with the files root rewritten to where the files
    are on this host. Cheap when nothing was added or the manifest was seen before.
    `force_fetch` fetches even when the driver's copy is visible (tests of other hosts).

    Raises:
        OSError: a file could not be fetched or written (the task fails and is retried).
    """
    manifest_text = properties.get(FILES_MANIFEST_PROPERTY)
    if manifest_text is None:
        return properties
    root = _PREPARED.get(manifest_text)
    if root is None:
        manifest = json.loads(manifest_text)
        files: list[tuple[str, int]] = [(str(r), int(s)) for r, s in manifest["files"]]
        root = properties[FILES_ROOT_PROPERTY]
        if force_fetch or not _all_present(root, files):
            if read_blob is None:
                raise OSError(f"the added files are not at {root} and cannot be fetched here")
            root = os.path.join(local_dir, "files")
            _fetch_missing(root, files, read_blob)
        _put_on_path(root)
        for name in manifest["py"]:
            if not str(name).lower().endswith(".py"):
                _put_on_path(os.path.join(root, str(name)))
        _PREPARED[manifest_text] = root
    if root == properties.get(FILES_ROOT_PROPERTY):
        return properties
    return {**properties, FILES_ROOT_PROPERTY: root}


def _all_present(root: str, files: list[tuple[str, int]]) -> bool:
    try:
        return all(os.path.getsize(os.path.join(root, rel)) == size for rel, size in files)
    except OSError:
        return False


def _fetch_missing(root: str, files: list[tuple[str, int]], read_blob: BlobReader) -> None:
    for relative, size in files:
        if os.path.isabs(relative) or ".." in relative.split(os.sep):
            raise OSError(f"refusing to write the added file {relative!r} outside {root}")
        target = os.path.join(root, relative)
        try:
            if os.path.getsize(target) == size:
                continue  # another worker of this executor fetched it already
        except OSError:
            pass
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        with open(tmp, "wb") as out:
            for offset in range(0, size, FETCH_CHUNK):
                data = read_blob(blob_name(relative), offset, min(FETCH_CHUNK, size - offset))
                if not data:
                    raise OSError(f"the driver sent no bytes of {relative} at offset {offset}")
                out.write(data)
        os.replace(tmp, target)


class SparkFiles:
    """Resolves files added with `SparkContext.addFile`, on the driver or in a task."""

    def __init__(self) -> None:
        raise NotImplementedError("SparkFiles only has class methods")

    @classmethod
    def getRootDirectory(cls) -> str:
        """The directory that holds the added files.

        Raises:
            RuntimeError: no file was added (or no SparkContext is active).
        """
        from scheduler._context import SparkContext
        from scheduler._taskcontext import TaskContext

        task = TaskContext.get()
        root = task.getLocalProperty(FILES_ROOT_PROPERTY) if task is not None else None
        if root is None:
            sc = SparkContext._active_spark_context
            root = getattr(sc, "_files_root", None) if sc is not None else None
        if root is None:
            raise RuntimeError("SparkFiles: no file was added with SparkContext.addFile")
        return str(root)

    @classmethod
    def get(cls, filename: str) -> str:
        """The absolute path of an added file, by its base name."""
        return os.path.join(cls.getRootDirectory(), filename)
