"""Python worker limits and checks (issue 14), on one worker process and without one.

The driver's Python version is faked in the stage header (no other Python is
installed); the memory limit is read back from /proc; the faulthandler dump is
produced by sending the worker SIGSEGV.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from rpcenv import Conf
from scheduler.executor.runtime import _limit_workers
from scheduler.executor.workerlimits import (
    FAULTHANDLER_DIR_ENV,
    FAULTHANDLER_ENV,
    MEMORY_LIMIT_ENV,
    apply_memory_limit,
    crash_reason,
    profile_tasks_per_executor,
    profile_worker_limit_mb,
    read_crash_dump,
    task_profile_worker_limit_mb,
    version_mismatch,
    worker_limits_env,
    worker_memory_limit_mb,
)
from scheduler.task import stagecode as _stagecode
from scheduler.task.stagecode import (
    dumps_stage,
    read_stage_header,
    stage_header,
    stage_python_version,
)

REPO = Path(__file__).resolve().parents[3]
THIS_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
WAIT_S = 20.0


def test_the_version_check_passes_the_same_minor_version() -> None:
    assert version_mismatch(THIS_PYTHON) is None
    assert version_mismatch(None) is None  # a payload from before the check


def test_the_version_check_gives_pysparks_message() -> None:
    text = version_mismatch("2.7")
    assert text == (
        "[PYTHON_VERSION_MISMATCH] Python in worker has different version: "
        f"{sys.version_info[:2]} than that in driver: 2.7, PySpark cannot run with different "
        "minor versions.\nPlease check environment variables PYSPARK_PYTHON and "
        "PYSPARK_DRIVER_PYTHON are correctly set."
    )


def test_the_stage_header_carries_the_drivers_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert stage_python_version(dumps_stage([1])) == THIS_PYTHON
    monkeypatch.setattr(_stagecode, "DRIVER_PYTHON", "3.99")
    payload = dumps_stage([1])
    assert stage_python_version(payload) == "3.99"
    assert stage_header(payload) == {}  # not a property the tasks see
    assert read_stage_header(payload) == ({}, "3.99")  # both, parsed once


def test_worker_limits_env_from_the_apps_conf() -> None:
    assert worker_limits_env(Conf({})) == {}
    conf = Conf(
        {
            "spark.executor.pyspark.memory": "2g",
            "spark.python.worker.faulthandler.enabled": "true",
        }
    )
    assert worker_limits_env(conf) == {MEMORY_LIMIT_ENV: "2048", FAULTHANDLER_ENV: "1"}
    assert worker_limits_env(Conf({"spark.executor.pyspark.memory": "300"})) == {
        MEMORY_LIMIT_ENV: "300"  # a bare number is MiB, as in Spark
    }
    # Divided by spark.executor.cores, as PySpark does (not by the executor's workers).
    split = Conf({"spark.executor.pyspark.memory": "1g", "spark.executor.cores": "3"})
    assert worker_limits_env(split) == {MEMORY_LIMIT_ENV: "341"}
    # ... over spark.task.cpus, rounded up, as PySpark 4.3 (observed on local[4]).
    for cores, cpus, limit in (("2", "2", "1024"), ("3", "2", "512")):
        conf = Conf(
            {
                "spark.executor.pyspark.memory": "1g",
                "spark.executor.cores": cores,
                "spark.task.cpus": cpus,
            }
        )
        assert worker_limits_env(conf) == {MEMORY_LIMIT_ENV: limit}
    with pytest.raises(ValueError, match=r"spark\.executor\.pyspark\.memory"):
        worker_limits_env(Conf({"spark.executor.pyspark.memory": "lots"}))
    with pytest.raises(ValueError, match=r"spark\.executor\.pyspark\.memory"):
        worker_limits_env(Conf({"spark.executor.pyspark.memory": "10k"}))


def test_a_profiles_limit_is_its_memory_over_the_tasks_its_executor_runs() -> None:
    """As PySpark 4.3: cores over task cpus, bounded by custom resources; else app cores, 1."""
    from scheduler.resource import (
        ExecutorResourceRequests,
        ResourceProfileBuilder,
        TaskResourceRequests,
    )

    def tasks(executor: ExecutorResourceRequests, task: TaskResourceRequests | None = None) -> int:
        builder = ResourceProfileBuilder().require(executor)
        if task is not None:
            builder.require(task)
        return profile_tasks_per_executor(builder.build, 0, 1)

    assert tasks(ExecutorResourceRequests().cores(4)) == 4
    assert tasks(ExecutorResourceRequests().cores(4), TaskResourceRequests().cpus(2)) == 2
    assert tasks(ExecutorResourceRequests().cores(3), TaskResourceRequests().cpus(2)) == 1
    gpus = ExecutorResourceRequests().cores(4).resource("gpu", 1)
    assert tasks(gpus, TaskResourceRequests().resource("gpu", 1)) == 1
    assert tasks(gpus, TaskResourceRequests().resource("gpu", 0.5)) == 2
    no_cores = ResourceProfileBuilder().require(ExecutorResourceRequests().memory("1g")).build
    assert profile_tasks_per_executor(no_cores, 0, 1) == 1
    assert profile_tasks_per_executor(no_cores, 3, 1) == 3  # the app's spark.executor.cores
    assert profile_worker_limit_mb(600, 2) == 300
    assert profile_worker_limit_mb(None, 2) == 0  # neither the profile nor the app: no limit
    assert profile_worker_limit_mb(1, 4) == 1


def test_a_task_only_profiles_limit_is_the_apps_memory_over_its_tasks() -> None:
    """As observed on PySpark 4.3's local-cluster (spark.executor.cores 4, 800m; 3, 600m)."""
    from scheduler.resource import ResourceProfileBuilder, TaskResourceRequests

    def limit(memory: int, cores: int, cpus: int, dynamic: bool = False) -> int:
        profile = ResourceProfileBuilder().require(TaskResourceRequests().cpus(cpus)).build
        return task_profile_worker_limit_mb(profile, memory, cores, 1, dynamic)

    assert limit(800, 4, 2) == 400
    assert limit(800, 4, 3) == 400  # 4 / 3 rounded up: 2 tasks
    assert limit(800, 4, 4) == 800
    assert limit(600, 3, 2) == 300
    assert limit(600, 3, 2, dynamic=True) == 600  # as any profile's: rounded down
    assert limit(800, 0, 2) == 800  # cores unset: the whole setting
    assert limit(800, 0, 2, dynamic=True) == 800
    assert limit(0, 4, 2) == 0  # no spark.executor.pyspark.memory
    gpu_only = ResourceProfileBuilder().require(TaskResourceRequests().resource("gpu", 1)).build
    assert task_profile_worker_limit_mb(gpu_only, 600, 3, 2, False) == 300  # spark.task.cpus


def test_the_stage_of_a_task_only_profile_carries_its_limit() -> None:
    """The driver tells the default executors the limit of such a stage's workers."""
    from scheduler.backend.standalone import StandaloneBackend
    from scheduler.core.taskscheduler import SchedulerSettings, TaskScheduler
    from scheduler.resource import ResourceProfileBuilder, TaskResourceRequests
    from sparkctl.v1 import deploy_pb2 as dpb

    scheduler = TaskScheduler(SchedulerSettings(), lambda _: b"", lambda _: None)
    assert scheduler.task_profile_worker_limit(ResourceProfileBuilder().build) == 0
    backend = StandaloneBackend(
        scheduler, None, None, [], dpb.ApplicationDescription(cores_per_executor=4), None, print
    )  # type: ignore[arg-type]
    backend.pyspark_memory_mb = 800
    cpus = ResourceProfileBuilder().require(TaskResourceRequests().cpus(2)).build
    assert scheduler.task_profile_worker_limit(cpus) == 400


def test_the_cluster_sets_the_variable_the_workers_read() -> None:
    """cluster/ may not import scheduler/: the Worker spells the name itself."""
    from cluster.worker_runners import PYTHON_WORKER_LIMIT_ENV

    assert PYTHON_WORKER_LIMIT_ENV == MEMORY_LIMIT_ENV


def test_the_profile_request_carries_each_profiles_limit() -> None:
    from scheduler.backend.standalone import profile_request
    from scheduler.resource import ExecutorResourceRequests, ResourceProfileBuilder

    sized = ExecutorResourceRequests().cores(2).pysparkMemory("600m")
    with_memory = ResourceProfileBuilder().require(sized).build
    without = ResourceProfileBuilder().require(ExecutorResourceRequests().cores(1)).build
    only_memory = (
        ResourceProfileBuilder().require(ExecutorResourceRequests().pysparkMemory("1g")).build
    )
    profiles = [with_memory, without, only_memory]
    request = profile_request("app-1", 0, {}, profiles, (512, 4, 1))
    limits = {p.id: p.python_worker_limit_mb for p in request.profiles}
    # Without pysparkMemory, the app's spark.executor.pyspark.memory (PySpark 4.3).
    assert limits == {with_memory.id: 300, without.id: 512, only_memory.id: 256}
    request = profile_request("app-1", 0, {}, profiles, (0, 0, 1))
    limits = {p.id: p.python_worker_limit_mb for p in request.profiles}
    assert limits == {with_memory.id: 300, without.id: 0, only_memory.id: 1024}


def test_the_executor_passes_the_limit_to_its_workers(tmp_path: Path) -> None:
    assert worker_memory_limit_mb(1024, 3) == 341
    assert worker_memory_limit_mb(1, 8) == 1
    env = {MEMORY_LIMIT_ENV: "1024", FAULTHANDLER_ENV: "1"}
    fault_dir = _limit_workers(env, str(tmp_path))
    assert fault_dir == str(tmp_path / "faulthandler") and os.path.isdir(fault_dir)
    assert env == {MEMORY_LIMIT_ENV: "1024", FAULTHANDLER_DIR_ENV: fault_dir}
    env = {FAULTHANDLER_DIR_ENV: "/stale"}
    assert _limit_workers(env, str(tmp_path)) == ""
    assert env == {}


def test_no_limit_is_applied_for_zero() -> None:
    assert apply_memory_limit(0) is False


class _Worker:
    """One real Python worker process, on a socket pair, stopped by PID."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        parent, child = socket.socketpair()
        args = [str(child.fileno()), str(tmp_path), "0", "127.0.0.1", "64"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.executor.pyworker", *args],
            pass_fds=[child.fileno()],
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn = Connection(parent.detach())

    def ask(self, message: tuple[object, ...]) -> tuple[object, ...]:
        self.conn.send_bytes(pickle.dumps(message))
        assert self.conn.poll(WAIT_S), "the worker did not answer"
        reply: tuple[object, ...] = pickle.loads(self.conn.recv_bytes())
        return reply

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=WAIT_S)
        self.conn.close()


def test_a_worker_fails_every_task_of_a_driver_on_another_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stagecode, "DRIVER_PYTHON", "2.7")
    payload = dumps_stage([1])
    worker = _Worker(tmp_path, {})
    try:
        for task_id, sent in ((1, payload), (2, None)):
            reply = worker.ask(("task", task_id, "s0", 0, 0, sent))
            assert reply[:3] == ("done", task_id, "FAILED")
            assert reply[6] == "PySparkRuntimeError"
            assert "than that in driver: 2.7" in str(reply[5])
        assert worker.proc.poll() is None  # the worker lives on
    finally:
        worker.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_caps_its_address_space_and_dumps_its_stack(tmp_path: Path) -> None:
    fault_dir = tmp_path / "faulthandler"
    worker = _Worker(tmp_path, {MEMORY_LIMIT_ENV: "300", FAULTHANDLER_DIR_ENV: str(fault_dir)})
    try:
        pid = worker.proc.pid
        # Any answer comes from the worker's loop, after its limits and faulthandler are set.
        assert worker.ask(("task", 1, "unknown", 0, 0, None))[:3] == ("done", 1, "FAILED")
        assert (fault_dir / str(pid)).exists(), "the worker made no faulthandler file"
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
        assert line.split()[3:5] == [str(300 << 20), str(300 << 20)], line
        os.kill(pid, signal.SIGSEGV)
        assert worker.proc.wait(timeout=WAIT_S) == -signal.SIGSEGV
        dump = read_crash_dump(str(fault_dir), pid)
        assert dump.startswith("Fatal Python error: Segmentation fault"), dump
        assert not (fault_dir / str(pid)).exists()  # read once
        assert read_crash_dump(str(fault_dir), pid) == ""
    finally:
        worker.stop()


def test_a_crash_without_a_dump_says_how_to_get_one(tmp_path: Path) -> None:
    hint = "Consider setting 'spark.python.worker.faulthandler.enabled' to 'true'"
    assert hint in crash_reason(-signal.SIGSEGV, "", 123)
    assert crash_reason(-signal.SIGKILL, "", 123) == (
        "Python worker exited unexpectedly (crashed) with exit code -9"  # no dump could help
    )
    assert crash_reason(13, "", 123) == (
        "Python worker exited unexpectedly (crashed) with exit code 13"
    )
    (tmp_path / "123").write_text("Fatal Python error: Segmentation fault\n\n  File x\n")
    assert crash_reason(-signal.SIGSEGV, str(tmp_path), 123) == (
        "Python worker exited unexpectedly (crashed): "
        "Fatal Python error: Segmentation fault\n\n  File x\nThe worker's exit code: -11"
    )
    assert crash_reason(-signal.SIGSEGV, str(tmp_path), 123) == (
        "Python worker exited unexpectedly (crashed) with exit code -11"  # on, nothing written
    )
