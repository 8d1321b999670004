"""PySpark compatibility: addPyFile modules as task functions, addArchive, --py-files-like conf.

Checked on PySpark 4.x first (local[2]): a function that lives in a module added
with addPyFile can be the task's function itself; an archive added with
addArchive is unpacked under its name (or `#alias`) for SparkFiles.get on the
executors and on the driver; listArchives lists it once.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest


def test_a_task_function_can_come_from_an_added_module(sc: Any, tmp_path: Path) -> None:
    module = tmp_path / "compat_shipped_funcs.py"
    module.write_text(
        "def square(x):\n    return x * x\n\n"
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
    )
    sc.addPyFile(str(module))
    import compat_shipped_funcs  # type: ignore[import-not-found]

    # The function is pickled by reference: a worker unpickling the stage must find it.
    assert sc.parallelize(range(5), 2).map(compat_shipped_funcs.square).collect() == [
        0,
        1,
        4,
        9,
        16,
    ]
    # Also objects of its classes inside parallelized data.
    boxes = [compat_shipped_funcs.Box(i) for i in range(4)]
    assert sc.parallelize(boxes, 2).map(lambda b: b.v + 1).collect() == [1, 2, 3, 4]


def test_add_archive_unpacks_for_tasks_and_the_driver(sc: Any, tmp_path: Path) -> None:
    from scheduler import SparkFiles

    archive = tmp_path / "compat_shipped.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("conf/value.txt", "100")
    sc.addArchive(str(archive))
    sc.addArchive(str(archive))  # the same path again changes nothing
    assert [a for a in sc.listArchives if a.endswith("compat_shipped.zip")] != []
    assert len([a for a in sc.listArchives if "compat_shipped.zip" in a]) == 1
    with open(os.path.join(SparkFiles.get("compat_shipped.zip"), "conf", "value.txt")) as f:
        assert f.read() == "100"

    def scaled(x: int) -> int:
        with open(os.path.join(SparkFiles.get("compat_shipped.zip"), "conf", "value.txt")) as f:
            return x * int(f.read())

    assert sc.parallelize([1, 2, 3], 3).map(scaled).collect() == [100, 200, 300]


@pytest.mark.skipif(support.IMPL == "pyspark", reason="sparkctl's executor layout")
def test_added_files_are_the_executors_own_copies(sc: Any, tmp_path: Path) -> None:
    from scheduler import SparkFiles

    folder = tmp_path / "only_here"
    folder.mkdir()
    (folder / "compat_shipped_where.py").write_text("WHERE = __file__\n")
    tarball = tmp_path / "compat_env.tgz"
    import tarfile

    (folder / "marker.txt").write_text("m")
    with tarfile.open(tarball, "w:gz") as t:
        t.add(folder / "marker.txt", arcname="marker.txt")
    sc.addPyFile(str(folder / "compat_shipped_where.py"))
    sc.addArchive(f"{tarball}#compat_env_alias")
    driver_root = SparkFiles.getRootDirectory()

    def where(_: int) -> tuple[str, str, bool, bool]:
        import sys

        import compat_shipped_where  # type: ignore[import-not-found]

        marker = os.path.join(SparkFiles.get("compat_env_alias"), "marker.txt")
        return (
            compat_shipped_where.WHERE,
            SparkFiles.getRootDirectory(),
            os.path.exists(marker),
            any(str(folder) in p for p in sys.path),
        )

    for module_file, root, has_marker, sees_user_dir in (
        sc.parallelize([0, 1], 2).map(where).collect()
    ):
        assert root != driver_root and module_file.startswith(root + os.sep)
        assert has_marker
        assert not sees_user_dir


@pytest.mark.skipif(support.IMPL == "pyspark", reason="Spark refuses a second path of one name")
def test_re_adding_an_added_file_by_its_copy_is_a_no_op(sc: Any, tmp_path: Path) -> None:
    from scheduler import SparkFiles

    module = tmp_path / "compat_readded.py"
    module.write_text("VALUE = 5\n")
    sc.addFile(str(module))  # e.g. it came with --files
    sc.addPyFile(SparkFiles.get("compat_readded.py"))  # the driver's copy: the same bytes
    assert sc.parallelize([0], 1).map(lambda _: __import__("compat_readded").VALUE).collect() == [5]
    other = tmp_path / "other"
    other.mkdir()
    (other / "compat_readded.py").write_text("VALUE = 6\n")
    with pytest.raises(ValueError, match="already taken"):
        sc.addFile(str(other / "compat_readded.py"))
