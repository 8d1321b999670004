"""End to end: --py-files, --files, --archives and addPyFile travel by content, client and cluster.

The files live only in a directory of their own, neither next to app.py nor on
any path the cluster's processes are given; it is renamed away once the
application is under way. Tasks report where their modules came from: the
executor's own copies, never the submitting host's directory. A word count
whose map function lives in a --py-files module checks a shuffle on top.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from _cli_harness import CliCluster, run_cli

from cluster.testing import wait_until

APP = """
import json, os, sys
import helper_shipped  # --py-files: the driver imports it before its SparkContext exists
from scheduler import SparkContext, SparkFiles

shipped_dir, extra, rename = sys.argv[1], sys.argv[2], sys.argv[3] == "rename"
sc = SparkContext()
sc.addPyFile(extra)  # a path of the submitting host (cluster mode: it came with --files)
if rename:
    os.rename(shipped_dir, shipped_dir + ".gone")

def probe(_):
    import helper_shipped, pkg_shipped, extra_shipped
    with open(SparkFiles.get("words_shipped.txt")) as f:
        words = f.read().split()
    with open(os.path.join(SparkFiles.get("env_alias"), "conf", "value.txt")) as f:
        value = f.read()
    return {
        "helper": helper_shipped.__file__, "pkg": pkg_shipped.__file__,
        "extra": extra_shipped.VALUE, "root": SparkFiles.getRootDirectory(),
        "path": sys.path, "words": words, "value": value,
    }

lines = ["a b a", "c a b"]
counts = sorted(
    sc.parallelize(lines, 2).flatMap(str.split).map(helper_shipped.pair)
    .reduceByKey(helper_shipped.add, 2).collect()
)
print("RESULT " + json.dumps({
    "probes": sc.parallelize(range(2), 2).map(probe).collect(),
    "counts": counts,
    "driver_root": SparkFiles.getRootDirectory(),
}))
sc.stop()
"""


def _make_files(root: Path) -> tuple[Path, Path, str]:
    """app.py in root/app, the shipped files in root/shipped: (app, shipped dir, flags)."""
    app_dir, shipped = root / "app", root / "shipped"
    app_dir.mkdir()
    shipped.mkdir()
    (app_dir / "app_shipped.py").write_text(APP)
    (shipped / "helper_shipped.py").write_text(
        "def pair(w):\n    return (w, 1)\n\ndef add(a, b):\n    return a + b\n"
    )
    (shipped / "extra_shipped.py").write_text("VALUE = 'extra'\n")
    with zipfile.ZipFile(shipped / "deps_shipped.zip", "w") as z:
        z.writestr("pkg_shipped/__init__.py", "")
    (shipped / "words_shipped.txt").write_text("alpha beta\n")
    (shipped / "value.txt").write_text("42")
    with tarfile.open(shipped / "env_shipped.tgz", "w:gz") as t:
        t.add(shipped / "value.txt", arcname="conf/value.txt")
    return app_dir / "app_shipped.py", shipped, str(shipped / "extra_shipped.py")


def _flags(shipped: Path, extra_as_file: bool) -> list[str]:
    files = [str(shipped / "words_shipped.txt")] + (
        [str(shipped / "extra_shipped.py")] if extra_as_file else []
    )
    return [
        "--py-files", f"{shipped / 'helper_shipped.py'},{shipped / 'deps_shipped.zip'}",
        "--files", ",".join(files),
        "--archives", f"{shipped / 'env_shipped.tgz'}#env_alias",
    ]  # fmt: skip


def _check(output: str, shipped: Path) -> None:
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["counts"] == [["a", 3], ["b", 2], ["c", 1]]
    for probe in result["probes"]:
        root = probe["root"]
        assert root != result["driver_root"]  # the executor's own copy
        assert probe["helper"] == f"{root}/helper_shipped.py"
        assert probe["pkg"] == f"{root}/deps_shipped.zip/pkg_shipped/__init__.py"
        assert (probe["extra"], probe["words"], probe["value"]) == (
            "extra",
            ["alpha", "beta"],
            "42",
        )
        assert not [p for p in probe["path"] if str(shipped) in p], probe["path"]


@pytest.mark.timeout(180)
def test_client_mode_ships_files_to_executors(cli_cluster: CliCluster, tmp_path: Path) -> None:
    app, shipped, extra = _make_files(tmp_path)
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, "--executor-memory", "256m",
        *_flags(shipped, extra_as_file=False), str(app), str(shipped), extra, "rename",
        cwd=tmp_path, timeout=150,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert not shipped.exists()  # renamed while the app ran: nobody read it afterwards
    _check(result.stdout, shipped)


@pytest.mark.timeout(180)
def test_cluster_mode_ships_files_from_the_submitting_host(
    cli_cluster: CliCluster, tmp_path: Path
) -> None:
    app, shipped, extra = _make_files(tmp_path)
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, "--deploy-mode", "cluster",
        "--driver-memory", "128m", "--executor-memory", "256m",
        *_flags(shipped, extra_as_file=True), str(app), str(shipped), extra, "keep",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shipped.rename(tmp_path / "moved-away")  # the files travelled with the submission
    driver_id = result.stdout.strip()

    def state() -> str:
        status = run_cli("status", driver_id, "--master", cli_cluster.master.url, "--json")
        return str(json.loads(status.stdout)["state"])

    wait_until(lambda: state() in ("FINISHED", "FAILED", "ERROR"), 150, "the driver to end")
    driver_dir = cli_cluster.work_dir / driver_id
    stderr = (driver_dir / "stderr").read_text() if (driver_dir / "stderr").exists() else ""
    assert state() == "FINISHED", stderr[-3000:]
    _check((driver_dir / "stdout").read_text(), shipped)


def test_too_many_bytes_for_cluster_mode_is_a_usage_error(
    cli_cluster: CliCluster, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text("print(1)\n")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 4096)
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, "--deploy-mode", "cluster",
        "--conf", "spark.sparkctl.submit.maxFilesSize=1k", "--files", str(big), str(app),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--files" in result.stderr and "big.bin" in result.stderr
    assert "spark.sparkctl.submit.maxFilesSize" in result.stderr
    bad = run_cli("submit", "--archives", f"{big}#x", str(app))
    assert bad.returncode == 2 and "archives must end with" in bad.stderr


def test_a_remote_scheme_is_named_not_called_missing(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("print(1)\n")
    for flag in ("--files", "--py-files", "--archives"):
        result = run_cli("submit", flag, "hdfs://nn:8020/data/x.zip", str(app))
        assert result.returncode == 2, result.stderr
        assert flag in result.stderr and "'hdfs'" in result.stderr, result.stderr
        assert "only local files" in result.stderr and "not a file" not in result.stderr
