"""sc.addFile / addPyFile / addArchive on the driver: a mixin of SparkContext.

The driver copies each added file into one directory per application, notes
its size and SHA-256, and serves the copy over the RpcEnv (as a blob of the
task scheduler, to authenticated peers only); `scheduler.task.sparkfiles`
names the blobs and the manifest that jobs carry to the executors. Nothing here
assumes that an executor sees the driver's filesystem.

`spark.submit.pyFiles`, `spark.files` and `spark.archives` (what `sparkctl
submit --py-files/--files/--archives` set) are added the same way when the
SparkContext starts, as Spark does. In cluster deploy mode those files travelled
with the submission; `spark.sparkctl.submittedFiles` maps their paths on the
submitting host to the copies next to the driver, so that `sc.addFile(path)` of
such a path works there too.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from scheduler.task import sparkfiles
from scheduler.task.archives import archive_kind, unpack_archive
from scheduler.task.sparkfiles import (
    FILES_MANIFEST_PROPERTY,
    FILES_ROOT_PROPERTY,
    SUBMITTED_FILES_KEY,
    archive_blob_name,
    blob_name,
    file_digest,
    local_path,
    split_alias,
)

__all__ = ["AddedFiles"]

#: File extensions addPyFile puts on sys.path as they are (as PySpark does); a .py
#: file is importable from the files directory.
_PACKAGE_EXTENSIONS = (".zip", ".egg", ".jar")


@dataclasses.dataclass
class _Added:
    """What one SparkContext added, and where its copies are."""

    #: The per-application directory: `userFiles` (SparkFiles' root) and `archives`.
    base: str
    root: str
    #: Base name (or archive alias) -> the path it was added from.
    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    files: list[list[Any]] = dataclasses.field(default_factory=list)
    py: list[str] = dataclasses.field(default_factory=list)
    archives: list[list[Any]] = dataclasses.field(default_factory=list)
    #: addFile/addPyFile URIs and addArchive URIs, in the order they were added.
    file_uris: list[str] = dataclasses.field(default_factory=list)
    archive_uris: list[str] = dataclasses.field(default_factory=list)
    manifest: str | None = None


class AddedFiles:
    """The SparkContext side: addFile, addPyFile, addArchive, listings and cleanup."""

    _added: _Added | None = None

    @property
    def _files_root(self) -> str:
        """The driver's SparkFiles root, made on first use (PySpark has one from the start)."""
        return self._ensure_dir().root

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Copy `path` for tasks to open with `SparkFiles.get(basename)`.

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: a directory without `recursive=True`, a second, different
                file of the same name, or a URI of a scheme other than file:.
        """
        self._add(path, recursive, "addFile")

    def addPyFile(self, path: str) -> None:
        """Add a .py/.zip/.egg dependency: importable in every later task and on the driver.

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: a URI of a scheme other than file:.
        """
        name = self._add(path, False, "addPyFile")
        added = self._added
        assert added is not None
        if name in added.py:
            return
        added.py.append(name)
        added.manifest = None
        if name.lower().endswith(_PACKAGE_EXTENSIONS):  # a .py imports from the root
            _put_on_path(os.path.join(added.root, name))

    def addArchive(self, path: str) -> None:
        """Add a .zip/.jar/.tar/.tar.gz/.tgz archive, unpacked for every task.

        Tasks (and the driver) find the unpacked tree at `SparkFiles.get(name)`, or
        `SparkFiles.get(alias)` for `path#alias`. Adding the same path again is a no-op.

        Raises:
            FileNotFoundError: the archive does not exist.
            ValueError: an extension that cannot be unpacked, a bad alias, a name
                already taken, a URI of a scheme other than file:, or an unsafe
                archive (a member that would escape).
        """
        location, alias = split_alias(local_path(path, "addArchive"))
        source = self._resolve(location, "addArchive")
        if not os.path.isfile(source):
            raise ValueError(f"addArchive: {location} is not a file")
        name = os.path.basename(source)
        archive_kind(name)  # raises for what cannot be unpacked
        alias = alias or name
        added = self._ensure_dir()
        uri = f"file:{source}" + (f"#{alias}" if alias != name else "")
        if added.sources.get(alias) == uri:
            return
        known = [entry for entry in added.archives if entry[1] == alias]
        if known and known[0][3] == file_digest(source):
            return  # the same archive by another path (e.g. one that came with --archives)
        self._check_free(alias, "addArchive")
        packed = os.path.join(added.base, "archives", alias)
        os.makedirs(os.path.dirname(packed), exist_ok=True)
        shutil.copy2(source, packed)
        try:
            unpack_archive(packed, os.path.join(added.root, alias), name)
        except BaseException:
            os.unlink(packed)
            raise
        added.sources[alias] = uri
        added.archives.append([name, alias, os.path.getsize(packed), file_digest(packed)])
        added.archive_uris.append(uri)
        added.manifest = None
        self._serve(archive_blob_name(alias), packed)

    def _add(self, path: str, recursive: bool, caller: str) -> str:
        """Copy and serve `path`; its base name (also when it was added before)."""
        source = self._resolve(local_path(path, caller), caller)
        if os.path.isdir(source) and not recursive:
            raise ValueError(f"{caller}: {path} is a directory; pass recursive=True to add it")
        name = os.path.basename(source.rstrip(os.sep))
        added = self._ensure_dir()
        if added.sources.get(name) == source or _same_file(added, name, source):
            return name
        self._check_free(name, caller)
        target = os.path.join(added.root, name)
        if os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        added.sources[name] = source
        added.file_uris.append(f"file:{source}")
        for relative in _relative_files(added.root, name):
            full = os.path.join(added.root, relative)
            added.files.append([relative, os.path.getsize(full), file_digest(full)])
            self._serve(blob_name(relative), full)
        added.manifest = None
        return name

    def _check_free(self, name: str, caller: str) -> None:
        added = self._added
        assert added is not None
        if name in added.sources:
            raise ValueError(
                f"{caller}: the name {name!r} is already taken by {added.sources[name]}"
            )

    def _resolve(self, path: str, caller: str) -> str:
        """The local file for `path`: itself, or its copy if it came with the submission.

        Raises:
            FileNotFoundError: neither exists; in cluster deploy mode the message says
                how to make a file of the submitting host travel.
        """
        if os.path.exists(path):
            return os.path.abspath(path)
        conf: Any = getattr(self, "_conf", None)
        shipped = json.loads(conf.get(SUBMITTED_FILES_KEY) or "{}") if conf is not None else {}
        local = shipped.get(os.path.normpath(path)) if os.path.isabs(path) else None
        if local is None and not os.path.isabs(path):
            suffix = os.sep + os.path.normpath(path)
            matches = [copy for original, copy in shipped.items() if original.endswith(suffix)]
            local = matches[0] if len(matches) == 1 else None
        if local is not None and os.path.exists(local):
            return str(local)
        hint = ""
        if conf is not None and conf.get("spark.submit.deployMode") == "cluster":
            hint = (
                " on the driver's host (in cluster deploy mode the driver runs on a worker: "
                "pass the file with --files, --py-files or --archives so that it travels "
                "with the submission)"
            )
        raise FileNotFoundError(f"{caller}: {path} does not exist{hint}")

    def _ensure_dir(self) -> _Added:
        if self._added is None:
            base = tempfile.mkdtemp(prefix="sparkctl-files-", dir=self._local_dir_for_files())
            root = os.path.join(base, "userFiles")
            os.mkdir(root)
            self._added = _Added(base=base, root=root)
            _put_on_path(root)  # as in PySpark: added .py files import by name
        return self._added

    def _serve(self, name: str, path: str) -> None:
        serve: Callable[[str, str], None] | None = getattr(
            getattr(self, "_scheduler", None), "serve_file", None
        )
        if serve is not None:
            serve(name, path)

    def _add_configured_files(self, py_files: list[str]) -> None:
        """Add what spark.submit.pyFiles, spark.files and spark.archives (and pyFiles) name.

        Raises:
            FileNotFoundError / ValueError: naming the key whose entry is wrong.
        """
        conf: Any = getattr(self, "_conf", None)

        def entries(key: str) -> list[str]:
            value = conf.get(key) if conf is not None else None
            return [p.strip() for p in (value or "").split(",") if p.strip()]

        work: list[tuple[str, str, Callable[[str], None]]] = [
            *(("spark.submit.pyFiles", p, self.addPyFile) for p in entries("spark.submit.pyFiles")),
            *(("pyFiles", p, self.addPyFile) for p in py_files),
            *(("spark.files", p, self.addFile) for p in entries("spark.files")),
            *(("spark.archives", p, self.addArchive) for p in entries("spark.archives")),
        ]
        for key, path, add in work:
            try:
                add(path)
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"{key}: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None

    @property
    def listFiles(self) -> list[str]:
        """The `file:` URIs added with addFile (and addPyFile), in the order they were added."""
        return list(self._added.file_uris) if self._added is not None else []

    @property
    def listArchives(self) -> list[str]:
        """The `file:` URIs added with addArchive (with `#alias` when one was given)."""
        return list(self._added.archive_uris) if self._added is not None else []

    def _local_dir_for_files(self) -> str | None:
        """The first usable local dir: SPARK_LOCAL_DIRS (this host's), then spark.local.dir.

        A cluster-mode driver's conf comes from the submitting host, whose
        spark.local.dir may not exist here: then the system's temp dir it is.
        """
        conf: Any = getattr(self, "_conf", None)
        candidates = (os.environ.get("SPARK_LOCAL_DIRS") or "").split(",")
        candidates += str((conf.get("spark.local.dir") if conf is not None else None) or "").split(
            ","
        )
        for candidate in (c.strip() for c in candidates):
            if not candidate:
                continue
            try:
                os.makedirs(candidate, exist_ok=True)
            except OSError:
                continue
            if os.access(candidate, os.W_OK | os.X_OK):
                return candidate
        return None

    def _files_properties(self) -> dict[str, str]:
        added = self._added
        if added is None or not (added.files or added.py or added.archives):
            return {}  # nothing to fetch (the root may exist: SparkFiles made it)
        if added.manifest is None:
            added.manifest = json.dumps(
                {"files": added.files, "py": added.py, "archives": added.archives}
            )
        return {FILES_ROOT_PROPERTY: added.root, FILES_MANIFEST_PROPERTY: added.manifest}

    def _remove_added_files(self) -> None:
        added = self._added
        if added is None:
            return
        stale = {added.root} | {os.path.join(added.root, n) for n in added.py}
        sys.path[:] = [p for p in sys.path if p not in stale]
        shutil.rmtree(added.base, ignore_errors=True)


def _same_file(added: _Added, name: str, source: str) -> bool:
    """Whether `source` holds the very bytes already added as `name`.

    So re-adding an added file by another path, e.g. `addPyFile(SparkFiles.get(n))`
    for a file that came with --files, is a no-op rather than a name clash.
    """
    if name not in added.sources or not os.path.isfile(source):
        return False
    known = [entry for entry in added.files if entry[0] == name]
    return (
        bool(known)
        and os.path.getsize(source) == known[0][1]
        and file_digest(source) == known[0][2]
    )


def _relative_files(root: str, name: str) -> list[str]:
    """`name` under `root` as the relative paths of its files (a directory's, walked)."""
    top = os.path.join(root, name)
    if not os.path.isdir(top):
        return [name]
    found = []
    for folder, dirs, files in os.walk(top):
        dirs.sort()
        for file in sorted(files):
            found.append(os.path.relpath(os.path.join(folder, file), root))
    return found


def _put_on_path(entry: str) -> None:
    """Make modules in `entry` (a directory, or a zip/egg) importable in this process."""
    if entry not in sys.path:
        sys.path.insert(1, entry)
        importlib.invalidate_caches()


def _active_files_root() -> str | None:
    from scheduler.api.context import SparkContext

    sc = SparkContext._active_spark_context
    return sc._files_root if sc is not None else None


sparkfiles.driver_files_root = _active_files_root
