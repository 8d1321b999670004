"""Pure pieces of status and submit: default master, tables, PYTHONPATH."""

from __future__ import annotations

from pathlib import Path

from cli._status import default_master, render_table
from cli._submit import _python_path
from rpcenv import Conf


def test_default_master() -> None:
    assert default_master(Conf({}), {}) == "spark://127.0.0.1:7077"
    env = {"SPARK_MASTER_HOST": "h", "SPARK_MASTER_PORT": "7000"}
    assert default_master(Conf({}), env) == "spark://h:7000"
    assert default_master(Conf({"spark.master": "spark://m:1"}), env) == "spark://m:1"
    assert default_master(Conf({"spark.master": "local[2]"}), {}) == "spark://127.0.0.1:7077"


def test_render_table_aligns_columns() -> None:
    text = render_table(["A", "LONGER"], [["xxxx", 1], ["y", 22]])
    assert text.splitlines() == ["A     LONGER", "xxxx  1", "y     22"]


def test_python_path_puts_py_files_first(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "mod.py"
    archive = tmp_path / "deps.zip"
    path = _python_path([lib, archive, tmp_path / "lib" / "other.py"]).split(":")
    assert path[:2] == [str(tmp_path / "lib"), str(archive)]


def test_printable_escapes_control_characters() -> None:
    from cli._status import printable

    assert printable("a\x1b[31mb\x9bc\x7f") == "a\\x1b[31mb\\x9bc\\x7f"
    assert printable("line1\n\tline2") == "line1\n\tline2"
    assert printable("line1\n\tline2", one_line=True) == "line1\\n\\tline2"
    assert render_table(["H"], [["x\x1by"]]).splitlines()[1] == "x\\x1by"
