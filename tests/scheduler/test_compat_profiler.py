"""PySpark compatibility: the Python profiler (``spark.python.profile``).

With the setting on, each RDD that runs Python code is profiled on the
executors and the statistics summed on the driver: ``sc.show_profiles()``
prints them once, ``sc.dump_profiles(dir)`` writes ``rdd_<id>.pstats`` files,
and ``SparkContext(profiler_cls=...)`` replaces the profiler (``udf_profiler_cls``
and ``memory_profiler_cls``, for SQL UDFs, are accepted). Checked on
PySpark 4.3 first; the statistics themselves differ (ours profile our worker's
code), so only their shape and the user's function are compared.
"""

from __future__ import annotations

import pstats
import re
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest


def heavy(x: int) -> int:
    return sum(i * i for i in range(x % 50))


def test_profiles_need_the_setting(master: str) -> None:
    """First in the module: in PySpark a context with the setting leaks it to later ones."""
    sc = support.new_context(master, "compat-profile-off")
    try:
        assert sc.parallelize(range(10), 2).map(heavy).count() == 10
        from scheduler.errors import PySparkRuntimeError

        for refused in (sc.show_profiles, lambda: sc.dump_profiles("/nonexistent")):
            with pytest.raises(PySparkRuntimeError, match=r"spark\.python\.profile") as info:
                refused()
            assert info.value.getErrorClass() == "INCORRECT_CONF_FOR_PROFILE"
            assert info.value.getMessageParameters() == {}
    finally:
        sc.stop()


def test_show_and_dump_profiles(master: str, tmp_path: Path, capsys: Any) -> None:
    sc = support.new_context(master, "compat-profile", **{"spark.python.profile": "true"})
    try:
        rdd = sc.parallelize(range(2000), 2).map(heavy)
        assert rdd.count() == 2000
        capsys.readouterr()
        sc.show_profiles()
        out = capsys.readouterr().out
        assert re.search(r"^Profile of RDD<id=\d+>$", out, re.MULTILINE), out
        assert "function calls" in out and "(heavy)" in out
        sc.show_profiles()  # each profile is shown once
        assert "Profile of RDD" not in capsys.readouterr().out
        assert rdd.map(heavy).sum() > 0
        sc.dump_profiles(str(tmp_path))
        dumped = sorted(p.name for p in tmp_path.iterdir())
        assert dumped and all(re.fullmatch(r"rdd_\d+\.pstats", name) for name in dumped)
        functions = {
            func[2] for name in dumped for func in pstats.Stats(str(tmp_path / name)).stats
        }
        assert "heavy" in functions
    finally:
        sc.stop()


def _profiler_cls() -> Any:
    """A BasicProfiler whose show() prints a marker first."""
    from scheduler import BasicProfiler

    class ShoutingProfiler(BasicProfiler):  # type: ignore[misc]
        def show(self, id: int) -> None:
            print(f"custom profiler for RDD {id}")
            super().show(id)

    return ShoutingProfiler


def test_a_custom_profiler_class(master: str, capsys: Any) -> None:
    from scheduler import SparkContext

    conf = support.compat_conf("compat-profile-cls").setMaster(master)
    conf.set("spark.python.profile", "true")
    # The UDF and memory profiler classes profile Spark SQL UDFs: RDD jobs never use them.
    sc = SparkContext(
        conf=conf,
        profiler_cls=_profiler_cls(),
        udf_profiler_cls=_profiler_cls(),
        memory_profiler_cls=_profiler_cls(),
    )
    try:
        assert sc.parallelize(range(100), 2).map(heavy).count() == 100
        capsys.readouterr()
        sc.show_profiles()
        out = capsys.readouterr().out
        assert re.search(r"^custom profiler for RDD \d+$", out, re.MULTILINE), out
        assert "(heavy)" in out
    finally:
        sc.stop()


def _touch(x: int) -> None:
    heavy(x)


def test_one_profiler_per_python_rdd_that_runs(master: str, tmp_path: Path, capsys: Any) -> None:
    """PySpark profiles each fused Python RDD a job runs, keyed by its id, not each step."""
    sc = support.new_context(master, "compat-profile-count", **{"spark.python.profile": "true"})
    try:
        collector = sc.profiler_collector
        built = sc.parallelize(range(100), 2).map(heavy).filter(bool)
        assert collector.profilers == []  # nothing ran yet
        # foreach is mapPartitions, count, sum and fold over it: one fused Python RDD.
        sc.parallelize(range(100), 2).foreach(_touch)
        assert len(collector.profilers) == 1
        rdd_id, profiler, _ = collector.profilers[0]
        assert isinstance(rdd_id, int)
        assert profiler.stats() is not None
        capsys.readouterr()
        sc.show_profiles()
        out = capsys.readouterr().out
        assert re.findall(r"^Profile of RDD<id=(\d+)>$", out, re.MULTILINE) == [str(rdd_id)]
        sc.dump_profiles(str(tmp_path))
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"rdd_{rdd_id}.pstats"]
        # dump_profiles forgot the first. A cached Python RDD stays its own RDD: it and
        # the one after it are two.
        cached = built.cache()
        assert cached.map(str).count() > 0
        assert len(collector.profilers) == 2
    finally:
        sc.stop()
