"""Command building, process running, persistence and URL parsing, without a cluster."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sys
import threading

import pytest

import cluster
from cluster.master_finder import master_endpoint_uri, split_master_urls
from cluster.persistence import FileSystemPersistence, persistence_from_conf
from cluster.process_runner import ManagedProcess, describe_exit, tail
from cluster.worker_runners import (
    PYTHON_WORKER_LIMIT_ENV,
    SUBMIT_CONF_ENV,
    driver_launch_spec,
    executor_launch_spec,
    substitute,
)
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb


def test_public_surface() -> None:
    assert sorted(cluster.__all__) == [
        "MasterHandle",
        "WorkerHandle",
        "start_master",
        "start_worker",
    ]
    for name in cluster.__all__:
        assert getattr(cluster, name) is not None


def test_substitute() -> None:
    assert substitute(["a{{X}}b", "{{Y}}", "z"], {"X": "1", "Y": "2"}) == ["a1b", "2", "z"]


def test_executor_spec(tmp_path: pathlib.Path) -> None:
    msg = pb.LaunchExecutor(
        app_id="app-1",
        executor_id=3,
        cores=2,
        memory_mb=512,
        app_description=pb.ApplicationDescription(
            command=pb.Command(
                argv=["run", "{{EXECUTOR_ID}}@{{HOSTNAME}}:{{CORES}}"], environment={"K": "V"}
            )
        ),
    )
    spec = executor_launch_spec(msg, tmp_path, "host1", "spark://Worker@host1:1")
    assert spec.argv == ["run", "3@host1:2"]
    assert spec.env["K"] == "V" and spec.env["SPARK_EXECUTOR_MEMORY"] == "512m"
    assert spec.cwd == tmp_path / "app-1" / "3"
    with pytest.raises(ValueError, match="application id"):
        bad = pb.LaunchExecutor()
        bad.CopyFrom(msg)
        bad.app_id = "../etc"
        executor_launch_spec(bad, tmp_path, "h", "u")
    with pytest.raises(ValueError, match="no executor command"):
        executor_launch_spec(pb.LaunchExecutor(app_id="app-2"), tmp_path, "h", "u")


def test_executor_pythonpath_merges_the_apps_then_the_workers(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Spark merges them: spark.executorEnv.PYTHONPATH, then the worker's own."""
    monkeypatch.setenv("PYTHONPATH", "/worker/site")
    msg = pb.LaunchExecutor(
        app_id="app-1",
        executor_id=1,
        app_description=pb.ApplicationDescription(command=pb.Command(argv=["run"])),
    )
    spec = executor_launch_spec(msg, tmp_path, "h", "u")
    assert spec.env["PYTHONPATH"] == "/worker/site"
    msg.app_description.command.environment["PYTHONPATH"] = "/app/libs"
    spec = executor_launch_spec(msg, tmp_path, "h", "u")
    assert spec.env["PYTHONPATH"] == f"/app/libs{os.pathsep}/worker/site"
    monkeypatch.delenv("PYTHONPATH")
    assert executor_launch_spec(msg, tmp_path, "h", "u").env["PYTHONPATH"] == "/app/libs"


def test_a_profiles_executor_gets_its_profiles_python_worker_limit(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's limit is its default executors'; a profile's executor has its own, or none."""
    monkeypatch.delenv(PYTHON_WORKER_LIMIT_ENV, raising=False)
    app_env = {PYTHON_WORKER_LIMIT_ENV: "512"}
    msg = pb.LaunchExecutor(
        app_id="app-1",
        executor_id=1,
        app_description=pb.ApplicationDescription(
            command=pb.Command(argv=["run"], environment=app_env)
        ),
    )
    assert executor_launch_spec(msg, tmp_path, "h", "u").env[PYTHON_WORKER_LIMIT_ENV] == "512"
    msg.resource_profile_id = 2
    msg.python_worker_limit_mb = 300
    assert executor_launch_spec(msg, tmp_path, "h", "u").env[PYTHON_WORKER_LIMIT_ENV] == "300"
    msg.python_worker_limit_mb = 0  # no pysparkMemory in the profile nor the app: no limit
    assert PYTHON_WORKER_LIMIT_ENV not in executor_launch_spec(msg, tmp_path, "h", "u").env


def test_executor_log_urls_point_at_the_workers_log_page(tmp_path: pathlib.Path) -> None:
    msg = pb.LaunchExecutor(
        app_id="app-7",
        executor_id=2,
        app_description=pb.ApplicationDescription(command=pb.Command(argv=["run"])),
    )
    spec = executor_launch_spec(msg, tmp_path, "h", "u", webui_address="http://10.0.0.2:8081")
    assert spec.env["SPARK_LOG_URL_STDERR"] == (
        "http://10.0.0.2:8081/logPage/?appId=app-7&executorId=2&logType=stderr"
    )
    assert spec.env["SPARK_LOG_URL_STDOUT"].endswith("logType=stdout")
    no_ui = executor_launch_spec(msg, tmp_path, "h", "u")
    assert not [k for k in no_ui.env if k.startswith("SPARK_LOG_URL_")]


def test_driver_spec_inline_content_and_py_files(tmp_path: pathlib.Path) -> None:
    msg = pb.LaunchDriver(
        driver_id="driver-1",
        description=pb.DriverDescription(
            app_resource="file:///elsewhere/job.py",
            app_args=["x"],
            app_content=b"print('hi')\n",
            py_files=["file:///libs/a.zip"],
            conf={"spark.executor.cores": "1"},
        ),
    )
    spec = driver_launch_spec(msg, tmp_path, "spark://m:7077")
    assert spec.argv == [sys.executable, str(tmp_path / "driver-1" / "job.py"), "x"]
    assert (tmp_path / "driver-1" / "job.py").read_bytes() == b"print('hi')\n"
    assert json.loads(spec.env[SUBMIT_CONF_ENV]) == {
        "spark.executor.cores": "1",
        "spark.master": "spark://m:7077",
        "spark.submit.deployMode": "cluster",
        # Paths on the worker: the driver adds them, so its executors get them too.
        "spark.submit.pyFiles": "/libs/a.zip",
    }
    assert spec.env["PYTHONPATH"].split(":")[0] == "/libs/a.zip"
    with pytest.raises(ValueError, match="not a file"):
        driver_launch_spec(
            pb.LaunchDriver(
                driver_id="driver-2", description=pb.DriverDescription(app_resource="/nope.py")
            ),
            tmp_path,
            "spark://m:7077",
        )


def test_managed_process_reports_exit_and_signal(tmp_path: pathlib.Path) -> None:
    codes: list[int] = []
    done = threading.Event()

    def on_exit(code: int) -> None:
        codes.append(code)
        done.set()

    proc = ManagedProcess(
        "t",
        [sys.executable, "-c", "print('out'); import sys; sys.exit(4)"],
        tmp_path / "p",
        {},
        on_exit,
    )
    proc.start()
    assert done.wait(10) and codes == [4]
    assert (tmp_path / "p" / "stdout").read_text() == "out\n"
    done.clear()
    sleeper = ManagedProcess(
        "s", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s", {}, on_exit
    )
    sleeper.start()
    sleeper.stop(grace=0)
    assert done.wait(10) and codes[-1] == -signal.SIGKILL
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(2) == "exited with code 2"


def test_tail(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "log"
    path.write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail(path, max_lines=2) == "line 98\nline 99"
    assert tail(tmp_path / "missing") == ""


def test_master_urls() -> None:
    assert split_master_urls(["spark://a:1,b:2", "spark://c:3"]) == [
        "spark://a:1",
        "spark://b:2",
        "spark://c:3",
    ]
    assert master_endpoint_uri("spark://a:1") == "spark://Master@a:1"
    for bad in ("a:1", "spark://a", "http://a:1", "spark://a:99999"):
        with pytest.raises(ValueError):
            split_master_urls([bad])


def test_persistence(tmp_path: pathlib.Path) -> None:
    engine = persistence_from_conf(
        Conf(
            {
                "spark.deploy.recoveryMode": "FILESYSTEM",
                "spark.deploy.recoveryDirectory": str(tmp_path),
            }
        ),
        tmp_path,
    )
    assert isinstance(engine, FileSystemPersistence) and engine.enabled
    engine.put("worker", "w1", pb.PersistedWorker(worker_id="w1", cores=2))
    engine.put("worker", "w1", pb.PersistedWorker(worker_id="w1", cores=3))
    engine.put("app", "a1", pb.PersistedApplication(app_id="a1"))
    assert [w.cores for w in engine.read("worker", pb.PersistedWorker)] == [3]
    engine.remove("worker", "w1")
    assert engine.read("worker", pb.PersistedWorker) == []
    assert not persistence_from_conf(Conf({}), tmp_path).enabled
    with pytest.raises(ValueError, match=r"needs spark\.deploy\.zookeeper\.url"):
        persistence_from_conf(Conf({"spark.deploy.recoveryMode": "ZOOKEEPER"}), tmp_path)
    with pytest.raises(
        ValueError, match=r"^spark\.deploy\.recoveryMode: expected one of NONE, FILESYSTEM, "
    ):
        persistence_from_conf(Conf({"spark.deploy.recoveryMode": "S3"}), tmp_path)


def test_expired_dirs_only_ours_and_old(tmp_path: pathlib.Path) -> None:
    import os
    import time

    from cluster.work_dirs import expired_dirs, remove_later

    for name in ("app-old", "app-new", "driver-old", "app-active", "logs"):
        (tmp_path / name).mkdir()
    (tmp_path / "worker.pid").write_text("1")
    old = time.time() - 1000
    for name in ("app-old", "driver-old", "app-active", "logs"):
        os.utime(tmp_path / name, (old, old))
    found = sorted(p.name for p in expired_dirs(tmp_path, {"app-active"}, ttl=500))
    assert found == ["app-old", "driver-old"]
    assert not remove_later(tmp_path, "logs") and not remove_later(tmp_path, "../x")
    assert remove_later(tmp_path, "app-old")
    deadline = time.monotonic() + 5
    while (tmp_path / "app-old").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not (tmp_path / "app-old").exists() and (tmp_path / "worker.pid").exists()
