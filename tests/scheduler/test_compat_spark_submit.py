"""PySpark compatibility: the ``spark-submit`` command runs a program as Spark's does.

``spark-submit`` is installed beside ``sparkctl`` (and ``bin/spark-submit``
gives a ``SPARK_HOME``-style layout); it takes spark-submit's flags and runs
``sparkctl submit``. In oracle mode the same commands run PySpark's own
``spark-submit`` (from the venv that has PySpark); every expected output was
printed by it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _compat_programs as programs
import _compat_support as support
import pytest

APP = """\
import sys

from scheduler import SparkContext
from scheduler import SparkFiles

import helper

sc = SparkContext()
print(sc.master, sc.appName, sc.getConf().get("spark.compat.x"), sys.argv[1:])


def read(_: int) -> str:
    with open(SparkFiles.get("words.txt")) as f:
        return helper.shout(f.read().strip())


print(sc.parallelize(range(2), 2).map(read).collect())
print(sc.parallelize(range(10), 2).sum())
sc.stop()
"""

HELPER = """\
def shout(text):
    return text.upper() + "!"
"""


def _spark_submit() -> Path:
    return Path(sys.executable).parent / "spark-submit"


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(support.REPO), "PYTHONHASHSEED": "0"}
    if support.IMPL == "pyspark":
        import pyspark

        env["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
        env["PYSPARK_PYTHON"] = sys.executable
    return env


def _submit(
    args: list[str], cwd: Path, command: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command or _spark_submit()), *args],
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(cwd),
        env=_env(),
        check=False,
    )


def _app(directory: Path) -> tuple[Path, list[str]]:
    """Write the program, its helper module and its data file; return the shipping flags."""
    script = programs.write_program(APP, directory)
    (directory / "lib").mkdir()
    (directory / "lib" / "helper.py").write_text(HELPER)
    (directory / "words.txt").write_text("hello files\n")
    shipping = ["--py-files", str(directory / "lib" / "helper.py")]
    shipping += ["--files", str(directory / "words.txt")]
    return script, shipping


def test_spark_submit_runs_a_program_with_sparks_flags(tmp_path: Path) -> None:
    script, shipping = _app(tmp_path)
    flags = ["--master", "local[2]", "--conf", "spark.compat.x=1", "-c", "spark.ui.enabled=false"]
    flags += ["--driver-memory", "1g", "--executor-memory", "1g", *shipping]
    done = _submit([*flags, str(script), "a", "--b"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == ("local[2] app.py 1 ['a', '--b']\n['HELLO FILES!', 'HELLO FILES!']\n45\n")
    flags = ["--master=local[1]", "--name", "named", "--conf=spark.ui.enabled=false", *shipping]
    done = _submit([*flags, str(script)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == "local[1] named None []"


def test_spark_submit_to_the_cluster(spark_cluster: str, tmp_path: Path) -> None:
    script, shipping = _app(tmp_path)
    flags = ["--master", spark_cluster, "--conf", "spark.ui.enabled=false", *shipping]
    flags += ["--total-executor-cores", "2", "--executor-cores", "1", "--verbose"]
    done = _submit([*flags, str(script), "x"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == (
        f"{spark_cluster} app.py None ['x']\n['HELLO FILES!', 'HELLO FILES!']\n45\n"
    )
    assert "Parsed arguments:" in done.stderr


@pytest.mark.skipif(support.IMPL == "pyspark", reason="sparkctl's own refusals")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--class", "org.example.Main", "app.jar"], "--class is not supported"),
        (["--jars", "a.jar", "app.py"], "--jars is not supported"),
        (["--packages", "g:a:1", "app.py"], "--packages is not supported"),
        (["--master", "local[2]", "app.jar"], "'app.jar' is not a Python file"),
        (["--bogus", "1", "app.py"], "unrecognized option '--bogus'"),
        (["--master"], "--master needs a value"),
        (["--master", "local[2]"], "missing the application"),
        (["--master", "yarn", "app.py"], "--master"),
    ],
)
def test_spark_submit_refuses_what_sparkctl_cannot_do(
    args: list[str], message: str, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text("print('never runs')\n")
    done = _submit(args, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "never runs" not in done.stdout


@pytest.mark.skipif(support.IMPL == "pyspark", reason="sparkctl's own layout and help")
def test_spark_home_layout_and_help(tmp_path: Path) -> None:
    script, shipping = _app(tmp_path)
    home_script = support.REPO / "bin" / "spark-submit"
    flags = ["--master", "local[1]", "--conf", "spark.ui.enabled=false", *shipping]
    done = _submit([*flags, str(script)], tmp_path, command=home_script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == "local[1] app.py None []"
    usage = _submit(["--help"], tmp_path)
    assert usage.returncode == 0 and "--total-executor-cores" in usage.stdout
    version = _submit(["--version"], tmp_path)
    assert version.returncode == 0 and "sparkctl" in version.stdout
