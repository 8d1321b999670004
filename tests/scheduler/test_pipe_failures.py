"""RDD.pipe when the command or the piped RDD does not run to the end.

The items are fed to the command from a thread. A failure of the parent RDD
there once ended the command's input early and the task succeeded with part
of its data; a command that stops reading printed a BrokenPipeError traceback;
a task stopped early (take) left the command running in the executor.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler import SparkConf, SparkContext

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sc() -> Iterator[SparkContext]:
    conf = SparkConf().setMaster("local[2]").setAppName("pipe").set("spark.ui.enabled", "false")
    with SparkContext(conf=conf) as context:
        yield context


def _fails_at_five(x: int) -> int:
    if x == 5:
        raise ValueError("boom at 5")
    return x


def test_a_failure_of_the_piped_rdd_fails_the_job(sc: SparkContext) -> None:
    rdd = sc.parallelize(range(10), 1).map(_fails_at_five).pipe("cat")
    with pytest.raises(Exception, match="boom at 5"):
        rdd.collect()  # not ['0', '1', '2', '3', '4']


def test_a_command_that_stops_reading_is_not_an_error(sc: SparkContext) -> None:
    lines = sc.parallelize(["a", "b"] * 50_000, 2).pipe("head -n 1", checkCode=True).collect()
    assert lines == ["a", "a"]
    assert sc.parallelize(range(1000), 2).pipe("false").collect() == []
    with pytest.raises(Exception, match="Pipe function `false' exited with error code 1"):
        sc.parallelize(range(1000), 2).pipe("false", checkCode=True).collect()


def test_a_command_that_stops_reading_prints_no_traceback() -> None:
    # Its own process: the local executor writes to the stderr it was started with.
    code = (
        "from scheduler import SparkConf, SparkContext\n"
        "conf = SparkConf().setMaster('local[1]').setAppName('p')\n"
        "conf.set('spark.ui.enabled', 'false')\n"
        "with SparkContext(conf=conf) as sc:\n"
        "    print(sc.parallelize(['a'] * 100_000, 1).pipe('head -c 1').collect())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == "['a']", done.stdout + done.stderr
    assert "BrokenPipeError" not in done.stderr, done.stderr


def test_a_task_stopped_early_leaves_no_command_running(sc: SparkContext, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = f"sh -c 'echo $$ >> {pids}; exec cat'"
    assert sc.parallelize(range(10**6), 1).pipe(command).take(2) == ["0", "1"]
    [pid] = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), f"the piped command {pid} still runs"


def _alive(pid: int) -> bool:
    """Running, or stopped but not reaped (a zombie is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
