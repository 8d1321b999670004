"""PySpark compatibility: what a whole program sees when it starts its own context.

A bare ``SparkContext()`` run with ``python app.py`` gets PySpark's launcher
defaults (``local[*]``, app name ``pyspark-shell``); ``sparkctl submit`` sets
the master instead. Each program runs in its own process (see
_compat_programs.py); every expected output was observed on PySpark 4.3 first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import _compat_programs as programs
import _compat_support as support
import pytest

BARE_CONTEXT = """\
import os
from scheduler import SparkContext

sc = SparkContext()
print(sc.master, sc.appName)
print(sc.getConf().get("spark.master"), sc.getConf().get("spark.app.name"))
print(sc.defaultParallelism == (os.cpu_count() if sc.master == "local[*]" else 2))
print(sc.parallelize(range(10)).sum())
sc.stop()
sc = SparkContext(appName="named")
print(sc.master, sc.appName)
sc.stop()
with SparkContext("local[2]") as sc:
    print(sc.master, sc.appName, sc.defaultParallelism)
"""


def test_a_bare_context_runs_on_every_local_core_as_pyspark_shell(tmp_path: Path) -> None:
    out = programs.run_program(BARE_CONTEXT, tmp_path).stdout
    assert out == (
        "local[*] pyspark-shell\n"
        "local[*] pyspark-shell\n"
        "True\n"
        "45\n"
        "local[*] named\n"
        "local[2] pyspark-shell 2\n"
    )


def test_a_submitted_bare_context_takes_the_launchers_master(
    spark_cluster: str, tmp_path: Path
) -> None:
    script = programs.write_program(BARE_CONTEXT, tmp_path)
    sparkctl = Path(sys.executable).parent / "sparkctl"
    flags = ["--master", spark_cluster, "--name", "bare", "--conf", "spark.ui.enabled=false"]
    done = subprocess.run(
        [str(sparkctl), "submit", *flags, str(script)],
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(support.REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        f"{spark_cluster} bare",
        f"{spark_cluster} bare",
        "True",
        "45",
    ]
    # Arguments given in code win over the launcher's, as in PySpark.
    assert lines[4:] == [f"{spark_cluster} named", "local[2] bare 2"]


# -- SparkSession for RDD programs ------------------------------------------------------------


def _builder(master: str, app_name: str) -> Any:
    from scheduler import SparkSession

    return (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", False)
    )


def test_session_builder_starts_a_context_with_its_settings(master: str) -> None:
    from scheduler import SparkContext, SparkSession

    assert SparkSession.getActiveSession() is None
    spark = _builder(master, "compat-session").config("spark.compat.x", 5).getOrCreate()
    try:
        sc = spark.sparkContext
        assert isinstance(sc, SparkContext)
        assert (sc.appName, sc.master) == ("compat-session", master)
        assert SparkContext.getOrCreate() is sc
        assert spark.conf.get("spark.app.name") == "compat-session"
        assert spark.conf.get("spark.compat.x") == "5"
        assert sc.getConf().get("spark.compat.x") == "5"
        assert sc.getConf().get("spark.ui.showConsoleProgress") == "false"
        assert sc.parallelize(range(10), 2).map(lambda x: x * x).sum() == 285
        # A second builder gets the same session; its settings reach the session only.
        again = SparkSession.builder.appName("other").config("spark.compat.y", "1").getOrCreate()
        assert again is spark
        assert spark.conf.get("spark.compat.y") == "1"
        assert sc.appName == "compat-session"
        assert SparkSession.getActiveSession() is spark
        assert SparkSession.active() is spark
        other = spark.newSession()
        assert other is not spark and other.sparkContext is sc
    finally:
        spark.stop()
    assert SparkSession.getActiveSession() is None
    with pytest.raises(Exception):  # noqa: B017 - PySpark raises AttributeError here
        sc.parallelize([1]).count()


def test_session_conf_get_set_unset(master: str) -> None:
    spark = _builder(master, "compat-session-conf").getOrCreate()
    try:
        conf = spark.conf
        assert conf.get("spark.compat.missing", "fallback") == "fallback"
        assert conf.get("spark.compat.missing", None) is None
        with pytest.raises(Exception, match=r"spark\.compat\.missing"):
            conf.get("spark.compat.missing")
        conf.set("spark.compat.set", "7")
        assert conf.get("spark.compat.set") == "7"
        # Session settings stay in the session: the context's conf is fixed at start.
        assert spark.sparkContext.getConf().get("spark.compat.set") is None
        conf.set("spark.compat.int", 3)
        conf.set("spark.compat.bool", True)
        assert (conf.get("spark.compat.int"), conf.get("spark.compat.bool")) == ("3", "true")
        conf.unset("spark.compat.set")
        assert conf.get("spark.compat.set", None) is None
        with pytest.raises(Exception, match=r"spark\.executor\.memory"):
            conf.set("spark.executor.memory", "2g")
        assert not conf.isModifiable("spark.executor.memory")
        assert not conf.isModifiable("spark.compat.int")
    finally:
        spark.stop()


def test_session_as_context_manager_and_over_an_existing_context(master: str) -> None:
    from scheduler import SparkSession

    with _builder(master, "compat-session-with").getOrCreate() as spark:
        assert spark.sparkContext.parallelize([1, 2, 3]).sum() == 6
    assert SparkSession.getActiveSession() is None
    sc = support.new_context(master, "compat-session-existing")
    try:
        spark = SparkSession.builder.appName("ignored").getOrCreate()
        assert spark.sparkContext is sc
        assert sc.appName == "compat-session-existing"
        assert spark.conf.get("spark.app.name") == "ignored"
        assert SparkSession(sc) is not spark
        spark.stop()
        assert SparkSession.getActiveSession() is None
    finally:
        sc.stop()


def test_builder_enables_hive_support_as_a_setting(master: str) -> None:
    spark = _builder(master, "compat-session-hive").enableHiveSupport().getOrCreate()
    try:
        assert spark.conf.get("spark.sql.catalogImplementation") == "hive"
        assert spark.sparkContext.range(5).count() == 5
    finally:
        spark.stop()


@pytest.mark.skipif(support.IMPL == "pyspark", reason="PySpark has Spark SQL")
def test_spark_sql_raises_one_clear_error(master: str) -> None:
    from scheduler.api.session import SparkSQLNotSupportedError

    spark = _builder(master, "compat-session-sql").getOrCreate()
    try:
        calls = [
            lambda: spark.sql("select 1"),
            lambda: spark.createDataFrame([(1,)]),
            lambda: spark.table("t"),
            lambda: spark.range(3),
            lambda: spark.udf,
            lambda: spark.catalog,
            lambda: spark.readStream,
            lambda: spark.read.csv("x.csv"),
            lambda: spark.read.format("json"),
            lambda: spark.read.text("x.txt").toPandas(),
            lambda: spark.read.text("x.txt", wholetext=True),
            lambda: spark.sparkContext.parallelize([(1, "a")]).toDF(["n", "s"]),
        ]
        for call in calls:
            with pytest.raises(
                SparkSQLNotSupportedError, match="Spark SQL is not part of sparkctl"
            ):
                call()
        with pytest.raises(NotImplementedError, match=r"^SparkSession\.sql: "):
            spark.sql("select 1")
        with pytest.raises(AttributeError, match="no_such_thing"):
            spark.no_such_thing  # noqa: B018
    finally:
        spark.stop()


def _write(path: Path, lines: int, width: int) -> None:
    path.write_text("".join(f"{path.stem}-{i:0{width}d}\n" for i in range(lines)))


def test_read_text_rdd_gives_rows_in_spark_sqls_file_partitions(
    master: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _write(data / "a.txt", 3, 1)
    _write(data / "b.txt", 5, 1)
    _write(data / "c.txt", 3, 3)
    (data / "d.txt").write_text("x\r\ny\rz")
    spark = _builder(master, "compat-read-text").getOrCreate()
    try:
        rows = spark.read.text(str(data / "c.txt")).rdd.collect()
        assert [tuple(r) for r in rows] == [("c-000",), ("c-001",), ("c-002",)]
        assert rows[0][0] == rows[0].value == "c-000"
        assert repr(rows[0]) == "Row(value='c-000')"
        # Pieces largest first (20, 18, 12, 6 bytes), each costing 4 MiB more, packed
        # into partitions of (input + 4 MiB per file) / 2 cores.
        lines = spark.read.text(str(data)).rdd.map(lambda r: r[0])
        assert lines.glom().collect() == [
            ["b-0", "b-1", "b-2", "b-3", "b-4", "c-000", "c-001", "c-002"],
            ["a-0", "a-1", "a-2", "x", "y", "z"],
        ]
        both = spark.read.text([str(data / "a.txt"), str(data / "d.txt")]).rdd
        assert both.map(lambda r: r.value).collect() == ["a-0", "a-1", "a-2", "x", "y", "z"]
    finally:
        spark.stop()
