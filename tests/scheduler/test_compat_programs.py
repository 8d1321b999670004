"""PySpark compatibility: what realistic RDD programs observe, beyond single methods.

Each test is a slice of a program a user runs (page rank, transitive closure,
gradient descent, sessionization, log analysis...) that once gave a result
different from PySpark's. Every expected value was checked on PySpark 4.3
(local[2], ``make test-oracle``); partition layouts (glom) are part of the
contract.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from operator import add
from pathlib import Path
from typing import Any

import pytest

# -- repartition / coalesce(shuffle=True): Spark's start positions -----------------------


@pytest.mark.parametrize(
    ("size", "before", "after", "layout"),
    [
        (20, 3, 4, [[13, 14, 15, 16, 17, 18, 19], list(range(13)), [], []]),
        (20, 3, 5, [[], [], [], [], list(range(20))]),
        (
            100,
            4,
            3,
            [
                [*range(10), *range(45, 50), *range(60, 70), *range(75, 85)],
                [*range(10, 20), *range(25, 35), *range(70, 75), *range(85, 95)],
                [*range(20, 25), *range(35, 45), *range(50, 60), *range(95, 100)],
            ],
        ),
    ],
)
def test_repartition_deals_batches_from_sparks_start_positions(
    sc: Any, size: int, before: int, after: int, layout: list[list[int]]
) -> None:
    """PySpark deals batches of 10 round robin from XORShiftRandom(index).nextInt(n)."""
    rdd = sc.parallelize(range(size), before)
    assert rdd.repartition(after).glom().collect() == layout
    assert rdd.coalesce(after, shuffle=True).glom().collect() == layout


def test_repartition_sizes_of_a_larger_shuffle(sc: Any) -> None:
    sizes = sc.parallelize(range(1000), 5).repartition(16).glom().map(len).collect()
    assert sizes == [60, 60, 60, 60, 70, 70, 70, 70, 50, 50, 60, 60, 70, 70, 60, 60]
    letters = sc.parallelize(list("abcdefghijklmnopqrstuvwxyz"), 3).repartition(2)
    assert letters.glom().collect() == [list("qrstuvwxyz"), list("abcdefghijklmnop")]


# -- fold / aggregate / treeAggregate with mutable zero values ----------------------------


def _append(acc: list[int], value: int) -> list[int]:
    acc.append(value)
    return acc


def _extend(acc: list[int], other: list[int]) -> list[int]:
    acc.extend(other)
    return acc


def test_aggregate_and_fold_give_every_partition_a_fresh_mutable_zero(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 1, 3, 1, 2, 4, 1], 4)
    assert rdd.aggregate([], _append, _extend) == [1, 2, 1, 3, 1, 2, 4, 1]
    assert rdd.treeAggregate([], _append, _extend) == [1, 2, 1, 3, 1, 2, 4, 1]
    lists = rdd.map(lambda x: [x])
    assert lists.fold([], _extend) == [1, 2, 1, 3, 1, 2, 4, 1]
    rdd20 = sc.parallelize(range(20), 3)
    assert rdd20.aggregate([], _append, _extend) == list(range(20))


def test_tree_aggregate_does_not_fold_the_zero_in_on_the_driver(sc: Any) -> None:
    rdd = sc.parallelize([1, 2, 1, 3, 1, 2, 4, 1], 4)
    assert rdd.treeAggregate(1, add, add) == 19
    assert rdd.aggregate(1, add, add) == 20
    assert sc.parallelize([], 3).treeAggregate(5, add, add) == 15
    assert sc.emptyRDD().treeAggregate(5, add, add) == 5


def test_tree_reduce_and_tree_aggregate_combine_in_a_tree(sc: Any) -> None:
    """The order of combination shows in strings and in float rounding."""
    letters = sc.parallelize(list("abcdefg"), 7)
    assert letters.treeReduce(add, 2) == "acegbdf"
    assert letters.treeAggregate("", add, add, 2) == "acegbdf"
    assert letters.treeReduce(add, 1) == "abcdefg"
    floats = [0.1, 0.2, 0.3, 1e16, -1e16, 0.7, 0.11, 0.12, 1e-3, 5.0]
    assert sc.parallelize(floats, 10).treeAggregate(0.0, add, add, 2) == 4.0
    assert sc.parallelize(floats * 3, 30).treeReduce(add, 3) == 18.0
    with pytest.raises(ValueError, match="Cannot reduce empty RDD"):
        sc.parallelize([], 2).treeReduce(add)
    with pytest.raises(ValueError, match="Depth cannot be smaller than 1"):
        letters.treeAggregate("", add, add, 0)


# -- binaryFiles / binaryRecords, and wholeTextFiles' packing by size ---------------------


def _write_equal_files(directory: Path, count: int, size: int) -> None:
    for i in range(count):
        (directory / f"f{i}.bin").write_bytes(bytes((i + j) % 256 for j in range(size)))
    (directory / "_SUCCESS").write_bytes(b"")


def test_binary_files_pairs_each_file_with_its_bytes(sc: Any, tmp_path: Path) -> None:
    _write_equal_files(tmp_path, 5, 12)
    files = sc.binaryFiles(str(tmp_path))
    # Small files share one partition (spark.files.openCostInBytes is 4 MiB).
    assert files.getNumPartitions() == 1
    assert sc.binaryFiles(str(tmp_path), 3).getNumPartitions() == 1
    pairs = sorted(files.collect())
    assert [os.path.basename(k) for k, _ in pairs] == [f"f{i}.bin" for i in range(5)]
    assert all(k.startswith("file:") for k, _ in pairs)
    assert pairs[2][1] == bytes(range(2, 14))


def test_binary_records_cut_fixed_length_records(sc: Any, tmp_path: Path) -> None:
    _write_equal_files(tmp_path, 3, 12)
    records = sc.binaryRecords(str(tmp_path), 4)
    assert records.getNumPartitions() == 3
    assert sorted(records.glom().collect()) == [
        [bytes(range(s, s + 4)), bytes(range(s + 4, s + 8)), bytes(range(s + 8, s + 12))]
        for s in range(3)
    ]
    one = sc.binaryRecords(str(tmp_path / "f1.bin"), 6)
    assert one.collect() == [bytes(range(1, 7)), bytes(range(7, 13))]
    with pytest.raises(Exception):  # noqa: B017 - PySpark's is a Py4JJavaError (EOFException)
        sc.binaryRecords(str(tmp_path / "f1.bin"), 5).collect()


def test_whole_text_files_pack_files_by_size(sc: Any, tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"doc{i}.txt").write_text("x" * 10)
    assert sc.wholeTextFiles(str(tmp_path), 3).glom().map(len).collect() == [2, 2, 2]
    assert sc.wholeTextFiles(str(tmp_path), 4).glom().map(len).collect() == [2, 2, 2]
    assert sc.wholeTextFiles(str(tmp_path), 5).glom().map(len).collect() == [2, 2, 2]
    assert sc.wholeTextFiles(str(tmp_path), 6).glom().map(len).collect() == [1] * 6
    assert sc.wholeTextFiles(str(tmp_path), 1).getNumPartitions() == 1


# -- bad arguments raise what PySpark raises ------------------------------------------


def test_bad_arguments_raise_pysparks_exceptions(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2)
    with pytest.raises(ValueError, match=r"^Number of partitions must be positive\.$"):
        rdd.coalesce(0)
    with pytest.raises(ValueError, match=r"^Number of partitions must be positive\.$"):
        rdd.repartition(-1)
    with pytest.raises(ValueError, match=r"^Fraction must be nonnegative\.$"):
        rdd.sample(False, -0.5)
    with pytest.raises(ValueError, match="Weights must be nonnegative"):
        rdd.randomSplit([1.0, -1.0])
    with pytest.raises(AssertionError, match="Negative fraction value"):
        rdd.map(lambda x: (x % 2, x)).sampleByKey(False, {0: 0.5, 1: -0.1})


# -- job tags (Spark 3.5+) ----------------------------------------------------------------

CANCEL_DEADLINE_S = 30.0


def _slow_item(x: int) -> int:
    time.sleep(0.2)
    return x


def test_job_tags_are_a_per_thread_set_and_cancel_tagged_jobs(sc: Any) -> None:
    assert set(sc.getJobTags()) == set()
    sc.addJobTag("etl")
    sc.addJobTag("nightly")
    sc.addJobTag("etl")
    assert set(sc.getJobTags()) == {"etl", "nightly"}
    sc.removeJobTag("nightly")
    assert set(sc.getJobTags()) == {"etl"}
    sc.clearJobTags()
    assert set(sc.getJobTags()) == set()
    sc.setInterruptOnCancel(True)
    assert sc.getLocalProperty("spark.job.interruptOnCancel") == "true"
    sc.setInterruptOnCancel(False)

    outcome: dict[str, Any] = {}

    def run_tagged() -> None:
        sc.addJobTag("to-cancel")
        try:
            outcome["result"] = sc.parallelize(range(200), 2).map(_slow_item).count()
        except Exception as exc:
            outcome["error"] = exc
        finally:
            sc.clearJobTags()

    worker = threading.Thread(target=run_tagged, daemon=True)
    worker.start()
    tracker = sc.statusTracker()
    deadline = time.monotonic() + CANCEL_DEADLINE_S
    while not tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tracker.getActiveJobsIds(), "the tagged job never started"
    sc.cancelJobsWithTag("other-tag")
    sc.cancelJobsWithTag("to-cancel")
    worker.join(timeout=CANCEL_DEADLINE_S)
    assert not worker.is_alive(), "the cancelled job did not return"
    assert "result" not in outcome and "error" in outcome
    assert sc.parallelize(range(10), 2).count() == 10


# -- StatCounter picks numpy's max/min/sqrt when numpy is installed, as PySpark's does --------


def test_stats_of_ints_follow_numpy_availability(sc: Any) -> None:
    import importlib.util

    stats = sc.parallelize([3, 1, 4, 1, 5], 2).stats()
    numpy_installed = importlib.util.find_spec("numpy") is not None
    assert type(stats.max()).__name__ == ("float64" if numpy_installed else "int")
    shown = "max: 5.0, min: 1.0" if numpy_installed else "max: 5, min: 1"
    assert repr(stats) == f"(count: 5, mean: 2.8, stdev: 1.6, {shown})"


# -- SparkContext system properties and collectWithJobGroup ---------------------------------


def test_system_properties_are_defaults_of_new_confs(sc: Any) -> None:
    from scheduler import SparkConf, SparkContext

    # A key every compat context sets to the same value, so later contexts are unaffected.
    SparkContext.setSystemProperty("spark.ui.showConsoleProgress", "false")
    assert SparkContext.getSystemProperty("spark.ui.showConsoleProgress") == "false"
    assert SparkConf().get("spark.ui.showConsoleProgress") == "false"
    assert SparkConf(loadDefaults=False).get("spark.ui.showConsoleProgress") is None
    assert SparkContext.PACKAGE_EXTENSIONS == (".zip", ".egg", ".jar")


def test_collect_with_job_group_is_deprecated_but_runs_in_the_group(sc: Any) -> None:
    try:
        with pytest.warns(FutureWarning, match="Deprecated in 3.1"):
            got = sc.parallelize(range(6), 2).collectWithJobGroup("compat-cwjg", "described")
        assert got == list(range(6))
        assert len(sc.statusTracker().getJobIdsForGroup("compat-cwjg")) == 1
    finally:
        sc.setJobGroup("compat-after-cwjg", "reset")


# -- countApproxDistinct: Spark's HyperLogLog++ registers -----------------------------------


def test_count_approx_distinct_estimates_as_spark_does(sc: Any) -> None:
    """Exact matches where stream-lib uses linear counting or the raw estimate."""
    assert sc.parallelize(range(20), 3).countApproxDistinct() == 19
    assert sc.parallelize(range(300), 3).countApproxDistinct() == 300
    assert sc.parallelize([str(i) for i in range(250)] * 3, 4).countApproxDistinct() == 239
    assert sc.parallelize([(i, "x") for i in range(50)], 2).countApproxDistinct(0.01) == 50
    assert sc.parallelize(range(5000), 4).countApproxDistinct(0.1) == 4523
    assert sc.parallelize(range(10), 2).countApproxDistinct(0.5) == 11
    assert sc.parallelize([], 2).countApproxDistinct() == 0
    with pytest.raises(ValueError, match=r"relativeSD should be greater than 0\.000017"):
        sc.parallelize([1]).countApproxDistinct(0.00001)


# -- text files: Hadoop's line ends, and bytes through a Java String ----------------------


def test_text_file_lines_end_at_cr_too_and_bad_utf8_is_replaced(sc: Any, tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes(b"a\r\nb\r\n\r\nc\rd\n\xff\xfeoops\nlast")
    replaced = "\ufffd\ufffdoops"
    assert sc.textFile(str(path)).collect() == ["a", "b", "", "c", "d", replaced, "last"]
    raw = sc.textFile(str(path), use_unicode=False).collect()
    assert raw == [b"a", b"b", b"", b"c", b"d", replaced.encode(), b"last"]
    assert sc.textFile(str(path), 3).glom().collect() == [
        ["a", "b", ""],
        ["c", "d", replaced],
        ["last"],
        [],
    ]


def test_save_as_text_file_writes_bytes_as_utf8_text(sc: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc.parallelize([b"raw\xffbytes", "\u00fcn\u00ef", 7, None], 1).saveAsTextFile(str(out))
    written = (out / "part-00000").read_bytes()
    assert written == b"raw\xef\xbf\xbdbytes\n\xc3\xbcn\xc3\xaf\n7\nNone\n"


# -- how a context and an RDD show themselves ------------------------------------------------


def test_context_and_rdd_reprs(sc: Any) -> None:
    assert repr(sc) == f"<SparkContext master={sc.master} appName={sc.appName}>"
    rdd = sc.parallelize(range(4), 2).map(lambda x: x + 1)
    assert f"RDD[{rdd.id()}]" in repr(rdd)
    rdd.setName("squares")
    assert repr(rdd).startswith("squares ") and f"RDD[{rdd.id()}]" in repr(rdd)


# -- checkpoint locations are file: URIs -------------------------------------------------------


def test_checkpoint_dir_and_file_are_file_uris(sc: Any, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path / "ck"))
    directory = sc.getCheckpointDir()
    assert directory.startswith(f"file:{tmp_path}/ck/")
    rdd = sc.parallelize(range(10), 3).map(lambda x: x * 2)
    assert not rdd.is_checkpointed and not rdd.has_resource_profile
    rdd.checkpoint()
    assert rdd.is_checkpointed and not rdd.isCheckpointed()
    assert rdd.sum() == 90
    assert rdd.is_checkpointed and rdd.isCheckpointed()
    checkpoint_file = rdd.getCheckpointFile()
    assert checkpoint_file.startswith(directory + "/rdd-")
    assert os.path.isdir(checkpoint_file[len("file:") :])
    assert rdd.glom().collect() == [[0, 2, 4], [6, 8, 10], [12, 14, 16, 18]]
    sc.setCheckpointDir(f"file:{tmp_path}/ck2")
    assert sc.getCheckpointDir().startswith(f"file:{tmp_path}/ck2/")


# -- a directory inside an input directory ----------------------------------------------------


def test_text_file_of_a_directory_with_a_subdirectory_fails(sc: Any, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "_temporary").mkdir()  # hidden, as Hadoop's filter hides it
    (tmp_path / "a.txt").write_text("top\n")
    (tmp_path / "sub" / "b.txt").write_text("nested\n")
    with pytest.raises(Exception, match="is a directory, which is not supported"):
        sc.textFile(str(tmp_path)).collect()
    assert sorted(sc.textFile(str(tmp_path / "*")).collect()) == ["nested", "top"]
    assert [v for _, v in sc.wholeTextFiles(str(tmp_path)).collect()] == ["top\n"]
    assert sc.binaryFiles(str(tmp_path)).count() == 1


# -- executor environment ------------------------------------------------------------------


def test_context_lists_the_executor_environment(sc: Any) -> None:
    assert sc.environment == {"PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}
    seed = sc.parallelize([0], 1).map(lambda _: os.environ.get("PYTHONHASHSEED")).first()
    assert seed == sc.environment["PYTHONHASHSEED"]
    assert sc.pythonVer == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert isinstance(sc.pythonExec, str) and sc.profiler_collector is None


def test_task_context_reports_its_cpu_amount(sc: Any) -> None:
    from decimal import Decimal

    from scheduler import TaskContext

    amounts = sc.parallelize([0, 1], 2).map(lambda _: TaskContext.get().cpuAmount()).collect()
    assert amounts == [Decimal(1), Decimal(1)]
    assert all(isinstance(a, Decimal) for a in amounts)


def test_public_serializers_round_trip(sc: Any) -> None:
    import inspect

    from scheduler import CPickleSerializer, MarshalSerializer, SparkContext

    value = {"k": [1, 2.5, "x", (3, None)]}
    for serializer in (CPickleSerializer(), MarshalSerializer()):
        assert serializer.loads(serializer.dumps(value)) == value
    with pytest.raises(ValueError):
        MarshalSerializer().dumps(object())
    assert "serializer" in inspect.signature(SparkContext).parameters


# -- compressed text: Hadoop's codecs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "extension", "partitions"),
    [("GzipCodec", ".gz", 2), ("BZip2Codec", ".bz2", 4), ("DefaultCodec", ".deflate", 2)],
)
def test_save_as_text_file_with_a_codec_and_read_it_back(
    sc: Any, tmp_path: Path, codec: str, extension: str, partitions: int
) -> None:
    out = tmp_path / codec
    words = ["alpha", "beta", "gamma", "\u00fc"]
    sc.parallelize(words, 2).saveAsTextFile(str(out), f"org.apache.hadoop.io.compress.{codec}")
    names = sorted(f for f in os.listdir(out) if not f.startswith("."))
    assert names == ["_SUCCESS", f"part-00000{extension}", f"part-00001{extension}"]
    assert sorted(sc.textFile(str(out)).collect()) == sorted(words)
    back = sc.textFile(str(out), 4)
    assert back.getNumPartitions() == partitions
    assert sorted(back.collect()) == sorted(words)


def test_text_file_reads_bzip2_and_deflate_files(sc: Any, tmp_path: Path) -> None:
    import bz2
    import zlib

    (tmp_path / "x.bz2").write_bytes(bz2.compress(b"one\ntwo\nthree\n"))
    (tmp_path / "y.deflate").write_bytes(zlib.compress(b"four\nfive\n"))
    assert sc.textFile(str(tmp_path / "x.bz2")).collect() == ["one", "two", "three"]
    assert sc.textFile(str(tmp_path / "y.deflate")).collect() == ["four", "five"]


def test_broadcasting_an_rdd_is_refused(sc: Any) -> None:
    import pickle

    with pytest.raises(pickle.PicklingError, match="broadcast an RDD"):
        sc.broadcast(sc.parallelize([1, 2]))


# -- state a user's function captures starts afresh in every task --------------------------

_SEEN_IN_THIS_TASK: set[int] = set()


def _first_sighting(x: int) -> bool:
    if x in _SEEN_IN_THIS_TASK:
        return False
    _SEEN_IN_THIS_TASK.add(x)
    return True


class _NumberingCounter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, x: int) -> tuple[int, int]:
        self.n += 1
        return (x, self.n)


def test_state_captured_by_a_function_starts_afresh_in_every_task(sc: Any) -> None:
    """PySpark deserializes the task's function per task: a global set or a callable
    object's counter never carries over from one task to the next in a worker."""
    rdd = sc.parallelize([1, 2, 1, 3, 1, 2, 4, 1], 4)
    assert rdd.filter(_first_sighting).glom().collect() == [[1, 2], [1, 3], [1, 2], [4, 1]]
    numbered = sc.parallelize(range(6), 3).map(_NumberingCounter()).collect()
    assert numbered == [(0, 1), (1, 2), (2, 1), (3, 2), (4, 1), (5, 2)]
    lookup = {1: "one", 2: "two"}  # read-only state: the same answer either way
    assert sc.parallelize([1, 2, 1, 2], 4).map(lambda k: lookup[k]).collect() == [
        "one", "two", "one", "two"
    ]  # fmt: skip
