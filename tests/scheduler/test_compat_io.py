"""PySpark compatibility: files in and out, pipe, cache/persist and checkpoint.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_rdd.py and the doctests of python/pyspark/core/rdd.py
and core/context.py. Expected values were checked on PySpark 4.x (local[2])
first. Paths are local directories shared by driver and executors (all run on
this machine), as with PySpark on a single host.
"""

from __future__ import annotations

import os
import shutil
from glob import glob
from pathlib import Path
from typing import Any

import pytest


def _part_files(directory: Path) -> list[str]:
    return sorted(os.path.basename(p) for p in glob(str(directory / "part-*")))


def _strip_scheme(path: str) -> str:
    return path[len("file:") :] if path.startswith("file:") else path


def test_save_as_text_file_writes_one_part_file_per_partition(sc: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc.parallelize(["x", "y", "z"], 3).saveAsTextFile(str(out))
    assert _part_files(out) == ["part-00000", "part-00001", "part-00002"]
    assert (out / "part-00001").read_text() == "y\n"
    assert (out / "_SUCCESS").exists()
    assert sorted(sc.textFile(str(out), 3).collect()) == ["x", "y", "z"]


def test_save_as_text_file_converts_elements_with_str(sc: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc.parallelize([1, (2, "b"), None, "\u00a1Hola, mundo!"], 1).saveAsTextFile(str(out))
    assert (out / "part-00000").read_text(
        encoding="utf-8"
    ) == "1\n(2, 'b')\nNone\n\u00a1Hola, mundo!\n"
    raw = tmp_path / "raw"
    sc.parallelize(["\u00a1Hola".encode()], 1).saveAsTextFile(str(raw))
    assert (raw / "part-00000").read_bytes().decode("utf-8").strip() == "\u00a1Hola"


def test_save_as_text_file_refuses_an_existing_directory(sc: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sc.parallelize(["a"]).saveAsTextFile(str(out))
    with pytest.raises(Exception, match="already exists"):
        sc.parallelize(["b"]).saveAsTextFile(str(out))


def test_text_file_round_trip_and_several_inputs(sc: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "text1", tmp_path / "text2"
    sc.parallelize(["x", "y", "z"]).saveAsTextFile(str(first))
    sc.parallelize(["aa", "bb", "cc"]).saveAsTextFile(str(second))
    assert sorted(sc.textFile(str(first), 3).collect()) == ["x", "y", "z"]
    assert sorted(sc.textFile(str(second), 4).collect()) == ["aa", "bb", "cc"]
    both = sc.textFile(f"{first},{second}", 5).collect()
    assert sorted(both) == ["aa", "bb", "cc", "x", "y", "z"]


def test_text_file_reads_lines_of_a_file_and_a_glob(sc: Any, tmp_path: Path) -> None:
    hello = tmp_path / "hello.txt"
    hello.write_text("Hello World!\nsecond line\n\nlast line without newline")
    rdd = sc.textFile(str(hello))
    assert rdd.collect() == ["Hello World!", "second line", "", "last line without newline"]
    assert rdd.count() == 4
    assert rdd.repartition(1).collect()[0] == "Hello World!"
    pair = rdd.cartesian(rdd).first()
    assert pair == ("Hello World!", "Hello World!")
    (tmp_path / "other.txt").write_text("a\nb\n")
    assert sorted(sc.textFile(str(tmp_path / "*.txt")).collect()) == sorted(
        ["Hello World!", "second line", "", "last line without newline", "a", "b"]
    )


def test_text_file_splits_a_large_file_into_min_partitions(sc: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    lines = [f"line {i} " + "x" * (i % 50) for i in range(20000)]
    big.write_text("\n".join(lines) + "\n")
    rdd = sc.textFile(str(big), 8)
    assert rdd.getNumPartitions() >= 8
    assert rdd.collect() == lines
    assert rdd.zip(rdd.map(str)).count() == len(lines)


def test_text_file_of_a_missing_path_fails(sc: Any, tmp_path: Path) -> None:
    doomed = tmp_path / "doomed.txt"
    doomed.write_text("Hello World!")
    data = sc.textFile(str(doomed)).filter(lambda x: True)
    assert data.count() == 1
    doomed.unlink()
    with pytest.raises(Exception):  # noqa: B017 - PySpark raises a Py4J error here
        data.count()


def test_whole_text_files(sc: Any, tmp_path: Path) -> None:
    (tmp_path / "1.txt").write_text("123")
    (tmp_path / "2.txt").write_text("xyz\nsecond")
    pairs = sorted(sc.wholeTextFiles(str(tmp_path)).collect())
    assert [os.path.basename(_strip_scheme(k)) for k, _ in pairs] == ["1.txt", "2.txt"]
    assert [Path(_strip_scheme(k)).resolve() for k, _ in pairs] == [
        (tmp_path / "1.txt").resolve(),
        (tmp_path / "2.txt").resolve(),
    ]
    assert [v for _, v in pairs] == ["123", "xyz\nsecond"]


def test_whole_text_files_keys_are_file_uris(sc: Any, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\ny\n")
    assert sc.wholeTextFiles(str(tmp_path)).collect() == [(f"file:{tmp_path}/a.txt", "x\ny\n")]


def test_text_file_reads_gzip_bytes_and_file_uris(sc: Any, tmp_path: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "z.txt.gz", "wt") as f:
        f.write("g1\ng2\ng3\n")
    assert sc.textFile(str(tmp_path / "z.txt.gz")).collect() == ["g1", "g2", "g3"]
    assert sc.textFile(str(tmp_path / "z.txt.gz"), 4).getNumPartitions() == 1  # not splittable
    plain = tmp_path / "a.txt"
    plain.write_text("x\ny\n")
    assert sc.textFile(str(plain), use_unicode=False).collect() == [b"x", b"y"]
    assert sc.textFile(f"file://{plain}").collect() == ["x", "y"]
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"a\r\nb\r\n")
    assert sc.textFile(str(crlf)).collect() == ["a", "b"]
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\nq")
    assert sc.textFile(str(blank)).collect() == ["", "", "q"]


def _hidden_and_seen_files(folder: Path) -> None:
    (folder / "seen.txt").write_text("s\n")
    (folder / "_hidden.txt").write_text("h\n")
    (folder / ".dot.txt").write_text("d\n")


def test_text_file_of_a_directory_skips_hidden_files(sc: Any, tmp_path: Path) -> None:
    _hidden_and_seen_files(tmp_path)
    assert sc.textFile(str(tmp_path)).collect() == ["s"]


def test_text_file_glob_skips_hidden_files(sc: Any, tmp_path: Path) -> None:
    _hidden_and_seen_files(tmp_path)
    assert sc.textFile(str(tmp_path / "*.txt")).collect() == ["s"]


def test_text_file_glob_alternation_in_braces_as_hadoop(sc: Any, tmp_path: Path) -> None:
    # Hadoop's {a,b}: the comma inside braces is the glob's, not a path separator.
    for name in ("2019-01", "2019-02", "2020-01", "2021-01"):
        (tmp_path / f"{name}.log").write_text(f"{name}\n")
    assert sorted(sc.textFile(str(tmp_path / "{2019,2020}-01.log")).collect()) == [
        "2019-01",
        "2020-01",
    ]
    nested = f"{tmp_path}/20{{19-0{{1,2}},21-01}}.log,{tmp_path}/2020-01.log"
    assert sorted(sc.textFile(nested).collect()) == ["2019-01", "2019-02", "2020-01", "2021-01"]
    assert sorted(sc.wholeTextFiles(str(tmp_path / "*-{02,03}.log")).values().collect()) == [
        "2019-02\n"
    ]


def test_save_as_text_file_with_gzip_codec(sc: Any, tmp_path: Path) -> None:
    out = tmp_path / "gz"
    sc.parallelize(["a", "b"], 2).saveAsTextFile(
        str(out), "org.apache.hadoop.io.compress.GzipCodec"
    )
    assert _part_files(out) == ["part-00000.gz", "part-00001.gz"]
    assert sorted(sc.textFile(str(out)).collect()) == ["a", "b"]


def test_text_file_of_a_directory_and_union_with_parallelize(sc: Any, tmp_path: Path) -> None:
    (tmp_path / "union-text.txt").write_text("Hello")
    unioned = sc.union([sc.textFile(str(tmp_path)), sc.parallelize(["World!"])])
    assert sorted(unioned.collect()) == ["Hello", "World!"]


def test_pickle_file_round_trip(sc: Any, tmp_path: Path) -> None:
    first, second = tmp_path / "pickled1", tmp_path / "pickled2"
    sc.parallelize(range(10)).saveAsPickleFile(str(first), 3)
    sc.parallelize(range(-10, -5)).saveAsPickleFile(str(second), 3)
    assert sorted(sc.pickleFile(str(first), 3).collect()) == list(range(10))
    assert sorted(sc.pickleFile(str(second), 4).collect()) == [-10, -9, -8, -7, -6]
    assert sorted(sc.pickleFile(f"{first},{second}", 5).collect()) == [*range(-10, -5), *range(10)]
    words = tmp_path / "words"
    sc.parallelize(["Hello", "World!"]).saveAsPickleFile(str(words))
    assert sc.pickleFile(str(words)).map(lambda x: x).collect() == ["Hello", "World!"]
    objects = tmp_path / "objects"
    rows = [{"k": i, "v": [i, str(i)]} for i in range(50)]
    sc.parallelize(rows, 4).saveAsPickleFile(str(objects))
    # Like Hadoop's, the order in which part files are listed is not guaranteed.
    assert sorted(sc.pickleFile(str(objects)).collect(), key=lambda r: r["k"]) == rows


def test_pipe(sc: Any) -> None:
    assert sc.parallelize(["1", "2", "", "3"]).pipe("cat").collect() == ["1", "2", "", "3"]
    data = ["1", "2", "3"]
    assert sorted(sc.parallelize(data).pipe("cat").collect()) == data
    assert sc.parallelize(data).pipe("grep 4").collect() == []
    assert sc.parallelize(["\u6d4b\u8bd5", "1"]).pipe("cat").collect() == ["\u6d4b\u8bd5", "1"]
    assert sc.parallelize([1, 2, 3], 1).pipe("wc -l").map(str.strip).collect() == ["3"]


def test_pipe_with_check_code_fails_on_nonzero_exit(sc: Any) -> None:
    with pytest.raises(Exception):  # noqa: B017 - PySpark raises a Py4J error here
        sc.parallelize(["1", "2", "3"]).pipe("grep 4", checkCode=True).collect()


def test_pipe_passes_environment(sc: Any) -> None:
    out = sc.parallelize(["x"], 1).pipe(
        "sh -c 'cat >/dev/null; echo $COMPAT_VAR'", env={"COMPAT_VAR": "hi"}
    )
    assert out.collect() == ["hi"]


def test_cache_persist_unpersist(sc: Any) -> None:
    from scheduler import StorageLevel

    rdd = sc.parallelize(range(100), 4).map(lambda x: x * 2)
    assert not rdd.is_cached
    assert rdd.cache() is rdd
    assert rdd.is_cached
    assert rdd.getStorageLevel() == StorageLevel.MEMORY_ONLY
    assert rdd.sum() == 9900
    assert rdd.count() == 100
    assert rdd.unpersist() is rdd
    assert not rdd.is_cached
    on_disk = sc.parallelize(range(10), 2).persist(StorageLevel.MEMORY_AND_DISK)
    assert on_disk.getStorageLevel() == StorageLevel.MEMORY_AND_DISK
    assert on_disk.collect() == list(range(10))
    assert on_disk.collect() == list(range(10))
    on_disk.unpersist()


def test_storage_levels(sc: Any) -> None:
    from scheduler import StorageLevel

    assert str(StorageLevel.DISK_ONLY) == "Disk Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_ONLY) == "Memory Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_AND_DISK) == "Disk Memory Serialized 1x Replicated"
    assert str(StorageLevel.MEMORY_AND_DISK_2) == "Disk Memory Serialized 2x Replicated"
    assert str(StorageLevel(True, True, False, False, 1)) == "Disk Memory Serialized 1x Replicated"
    rdd = sc.parallelize(range(10), 2)
    assert rdd.getStorageLevel() == StorageLevel.NONE
    assert rdd.persist(StorageLevel.DISK_ONLY).collect() == list(range(10))
    assert rdd.getStorageLevel() == StorageLevel.DISK_ONLY
    assert rdd.persist(StorageLevel.DISK_ONLY) is rdd
    assert rdd.unpersist().persist(StorageLevel.MEMORY_ONLY).getStorageLevel() == (
        StorageLevel.MEMORY_ONLY
    )
    assert sc.parallelize(range(100), 4).persist(StorageLevel.MEMORY_AND_DISK_2).count() == 100
    rdd.unpersist()


def test_changing_the_storage_level_of_a_persisted_rdd_is_refused(sc: Any) -> None:
    from scheduler import StorageLevel

    rdd = sc.parallelize(range(10), 2).persist(StorageLevel.DISK_ONLY)
    with pytest.raises(Exception, match="Cannot change storage level"):
        rdd.persist(StorageLevel.MEMORY_ONLY)
    rdd.unpersist()


def test_cached_partitions_are_not_recomputed(sc: Any) -> None:
    computed = sc.accumulator(0)

    def tally(x: int) -> int:
        computed.add(1)
        return x

    rdd = sc.parallelize(range(20), 4).map(tally).cache()
    assert rdd.sum() == 190
    assert computed.value == 20
    assert rdd.count() == 20
    assert rdd.map(lambda x: x + 1).sum() == 210
    assert computed.value == 20
    rdd.unpersist()


def test_checkpoint(sc: Any, tmp_path: Path) -> None:
    sc.setCheckpointDir(str(tmp_path / "checkpoints"))
    rdd = sc.range(5)
    assert not rdd.isCheckpointed()
    assert rdd.getCheckpointFile() is None
    rdd.checkpoint()
    assert not rdd.isCheckpointed()
    assert rdd.count() == 5
    assert rdd.isCheckpointed()
    checkpoint_file = rdd.getCheckpointFile()
    assert checkpoint_file is not None
    assert Path(_strip_scheme(checkpoint_file)).exists()
    assert rdd.map(lambda x: x * 10).collect() == [0, 10, 20, 30, 40]
    flat = sc.parallelize(range(1, 4)).flatMap(lambda x: range(1, x))
    flat.checkpoint()
    assert flat.collect() == [1, 1, 2]
    assert flat.isCheckpointed()
    assert flat.collect() == [1, 1, 2]
    shutil.rmtree(tmp_path / "checkpoints", ignore_errors=True)


@pytest.mark.skipif(
    os.environ.get("SPARKCTL_TEST_IMPL", "sparkctl") == "pyspark",
    reason="PySpark runs Hadoop formats in its JVM",
)
def test_hadoop_formats_raise_one_clear_error(sc: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "seq")
    pairs = sc.parallelize([(1, "a")])
    calls = [
        lambda: sc.sequenceFile(path),
        lambda: sc.hadoopFile(path, "org.apache.hadoop.mapred.TextInputFormat", "k", "v"),
        lambda: sc.hadoopRDD("org.apache.hadoop.mapred.TextInputFormat", "k", "v"),
        lambda: sc.newAPIHadoopFile(path, "InputFormat", "k", "v"),
        lambda: sc.newAPIHadoopRDD("InputFormat", "k", "v", conf={}),
        lambda: pairs.saveAsSequenceFile(path),
        lambda: pairs.saveAsHadoopFile(path, "org.apache.hadoop.mapred.TextOutputFormat"),
        lambda: pairs.saveAsHadoopDataset({"mapreduce.output.fileoutputformat.outputdir": path}),
        lambda: pairs.saveAsNewAPIHadoopFile(path, "OutputFormat"),
        lambda: pairs.saveAsNewAPIHadoopDataset({}),
    ]
    for call in calls:
        with pytest.raises(NotImplementedError, match="Hadoop input and output formats"):
            call()
    assert not os.path.exists(path)
