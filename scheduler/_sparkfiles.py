"""sc.addFile and SparkFiles: files a job's tasks can open by name.

The driver copies each added file into one directory per application and
every job carries that directory as a local property, so `SparkFiles.get`
resolves the same name on the driver and inside tasks. Like addPyFile, this
relies on executors seeing the driver's filesystem (one host, or a shared
mount); it never ships file bytes over the RpcEnv.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

__all__ = ["FILES_ROOT_PROPERTY", "AddedFiles", "SparkFiles"]

#: Local property that carries the files directory to tasks.
FILES_ROOT_PROPERTY = "spark.sparkctl.files.root"


class AddedFiles:
    """The SparkContext side: `addFile`, `listFiles` and cleanup at stop."""

    _files_root: str | None = None
    _added_files: dict[str, str]

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Copy `path` for tasks to open with `SparkFiles.get(basename)`.

        Raises:
            FileNotFoundError: `path` does not exist.
            ValueError: a directory without `recursive=True`, or a second,
                different file of the same name.
        """
        source = os.path.abspath(path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"addFile: {path} does not exist")
        if os.path.isdir(source) and not recursive:
            raise ValueError(f"addFile: {path} is a directory; pass recursive=True to add it")
        added: dict[str, str] = self.__dict__.setdefault("_added_files", {})
        name = os.path.basename(source.rstrip(os.sep))
        if name in added:
            if added[name] != source:
                raise ValueError(
                    f"addFile: a file named {name!r} was already added from {added[name]}"
                )
            return
        root = self._files_root
        if root is None:
            base = self._local_dir_for_files()
            root = self._files_root = tempfile.mkdtemp(prefix="sparkctl-files-", dir=base)
        target = os.path.join(root, name)
        if os.path.isdir(source):
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        added[name] = source

    @property
    def listFiles(self) -> list[str]:
        """The `file:` URIs added with addFile, in the order they were added."""
        return [f"file:{path}" for path in self.__dict__.get("_added_files", {}).values()]

    def _local_dir_for_files(self) -> str | None:
        conf: Any = getattr(self, "_conf", None)
        local = conf.get("spark.local.dir") if conf is not None else None
        return str(local).split(",")[0] if local else None

    def _files_properties(self) -> dict[str, str]:
        return {FILES_ROOT_PROPERTY: self._files_root} if self._files_root else {}

    def _remove_added_files(self) -> None:
        if self._files_root is not None:
            shutil.rmtree(self._files_root, ignore_errors=True)


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
