"""PySpark compatibility: sc.addFile, sc.listFiles and SparkFiles.

Expected values were checked on PySpark 4.3 (local[2]) first: tasks open an
added file by its base name, listFiles holds `file:` URIs, adding the same
path twice is a no-op, and a directory needs recursive=True.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest


def test_tasks_open_an_added_file_by_name(sc: Any, tmp_path: Path) -> None:
    from scheduler import SparkFiles

    data = tmp_path / "words.txt"
    data.write_text("hello\nworld\n")
    sc.addFile(str(data))
    sc.addFile(str(data))  # the same path again changes nothing
    assert f"file:{data}" in sc.listFiles
    assert len([f for f in sc.listFiles if f.endswith("/words.txt")]) == 1

    def read(_: int) -> list[str]:
        with open(SparkFiles.get("words.txt")) as handle:
            return handle.read().split()

    assert sc.parallelize([1, 2], 2).map(read).collect() == [["hello", "world"]] * 2
    assert os.path.basename(SparkFiles.get("words.txt")) == "words.txt"
    assert os.path.exists(SparkFiles.get("words.txt"))


@pytest.mark.skipif(support.IMPL == "pyspark", reason="PySpark raises Py4JJavaError here")
def test_add_file_errors_name_the_path(sc: Any, tmp_path: Path) -> None:
    from scheduler import SparkFiles

    with pytest.raises(FileNotFoundError, match=r"missing\.txt"):
        sc.addFile(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="recursive=True"):
        sc.addFile(str(tmp_path))
    folder = tmp_path / "conf.d"
    folder.mkdir()
    (folder / "a.conf").write_text("x=1\n")
    sc.addFile(str(folder), recursive=True)

    def listing(_: int) -> list[str]:
        return sorted(os.listdir(SparkFiles.get("conf.d")))

    assert sc.parallelize([0], 1).map(listing).collect() == [["a.conf"]]


def test_add_py_file_reaches_executors_that_are_already_running(sc: Any, tmp_path: Path) -> None:
    import zipfile

    assert sc.parallelize(range(4), 2).count() == 4  # the executors are up before the add
    module = tmp_path / "compat_added_module.py"
    module.write_text("def triple(x):\n    return 3 * x\n")
    archive = tmp_path / "compat_added_pkg.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("compat_added_pkg/__init__.py", "def greet(x):\n    return f'hi {x}'\n")
    sc.addPyFile(str(module))
    sc.addPyFile(str(archive))
    import compat_added_module  # type: ignore[import-not-found]
    import compat_added_pkg  # type: ignore[import-not-found]

    assert compat_added_module.triple(2) == 6 and compat_added_pkg.greet(1) == "hi 1"

    def use(x: int) -> tuple[int, str]:
        import compat_added_module
        import compat_added_pkg

        return compat_added_module.triple(x), compat_added_pkg.greet(x)

    assert sc.parallelize(range(4), 2).map(use).collect() == [
        (0, "hi 0"), (3, "hi 1"), (6, "hi 2"), (9, "hi 3")
    ]  # fmt: skip
    if support.IMPL != "pyspark":  # PySpark raises Py4JJavaError here
        with pytest.raises(FileNotFoundError, match=r"missing\.py"):
            sc.addPyFile(str(tmp_path / "missing.py"))


@pytest.mark.skipif(support.IMPL == "pyspark", reason="PySpark fetches through Hadoop")
def test_a_remote_scheme_is_named_not_called_missing(sc: Any) -> None:
    for add in (sc.addFile, sc.addPyFile, sc.addArchive):
        with pytest.raises(ValueError, match=r"'s3a'.*only local files") as caught:
            add("s3a://bucket/deps.zip")
        assert "does not exist" not in str(caught.value)
    sc.addFile("file:" + __file__)  # a file: URI stays a local path
    assert os.path.basename(__file__) in [os.path.basename(f) for f in sc.listFiles]


def test_the_root_directory_exists_before_any_file_is_added(sc: Any) -> None:
    # PySpark: the driver's SparkFiles root is made with the context; a task's is
    # its executor's directory. Neither waits for an addFile.
    from scheduler import SparkFiles

    driver_root = SparkFiles.getRootDirectory()
    assert os.path.isdir(driver_root)

    def root(_: int) -> tuple[str, bool]:
        where = SparkFiles.getRootDirectory()
        return where, os.path.isdir(where)

    roots = sc.parallelize([0, 1], 2).map(root).collect()
    assert all(exists for _, exists in roots), roots
    assert all(where != driver_root for where, _ in roots), (driver_root, roots)
