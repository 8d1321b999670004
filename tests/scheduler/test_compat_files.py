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
