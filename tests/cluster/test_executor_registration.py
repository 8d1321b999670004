"""An executor is RUNNING once it registered with its driver, not once it survived (issue 9).

Real Worker processes on the in-process backend, with stand-in executor commands:
ApplicationDescription.executors_report_registration makes the Worker wait for
ExecutorRegistered before it reports RUNNING, so that executors which live a few
seconds without ever reaching their driver count towards maxExecutorRetries.
The rule itself (grace over and registered) is unit-tested on a fake launcher in
test_worker_accounting.py. Also the launch environment a Worker gives executors
and drivers (Python, local dirs, host), without processes.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable

from cluster.testing import LocalCluster
from cluster.worker_runners import (
    SUBMIT_CONF_ENV,
    driver_launch_spec,
    driver_python,
    executor_launch_spec,
    worker_local_dirs,
    worker_python,
)
from sparkctl.v1 import deploy_pb2 as pb

MakeCluster = Callable[..., LocalCluster]

#: Lives `seconds` (past any startup grace), then fails as an executor that cannot
#: reach its driver does: status 1, the reason as its last stderr line.
LINGERER = """
import sys, time
time.sleep(float(sys.argv[1]))
print("executor failed: cannot reach the driver at spark://x@192.0.2.9:1", file=sys.stderr)
sys.exit(1)
"""


def lingerer(seconds: float) -> pb.Command:
    return pb.Command(argv=[sys.executable, "-c", LINGERER, str(seconds)])


def _states(driver, state: int) -> list[pb.ExecutorUpdated]:  # type: ignore[no-untyped-def]
    return [m for m in driver.of(pb.ExecutorUpdated) if m.state == state]


def test_executors_alive_but_never_registered_exhaust_the_retries(
    local_cluster: MakeCluster,
) -> None:
    # Each lives 1 s, ten times the startup grace. Reported RUNNING after the grace,
    # each reset spark.deploy.maxExecutorRetries and the app crash-looped forever.
    c = local_cluster(
        {
            "spark.deploy.maxExecutorRetries": "3",
            "spark.sparkctl.worker.executorStartupGrace": "0.1s",
        }
    )
    c.real_worker(cores=2)
    driver = c.driver(
        cores_per_executor=1,
        command=lingerer(1.0),
        memory_per_executor_mb=128,
        executors_report_registration=True,
    )
    removed = driver.wait_of(pb.ApplicationRemoved, timeout=30)[0]
    assert removed.state == pb.APPLICATION_STATE_FAILED
    assert "maxExecutorRetries=3" in removed.message
    assert "cannot reach the driver at spark://x@192.0.2.9:1" in removed.message
    assert not _states(driver, pb.EXECUTOR_STATE_RUNNING)
    app = c.state().completed_apps[0]
    assert app.state == pb.APPLICATION_STATE_FAILED


def test_executor_launch_environment(tmp_path: pathlib.Path) -> None:
    msg = pb.LaunchExecutor(
        app_id="app-1",
        executor_id=3,
        cores=1,
        memory_mb=64,
        app_description=pb.ApplicationDescription(
            command=pb.Command(
                argv=["{{PYTHON}}", "-m", "scheduler.executor", "--hostname", "{{HOSTNAME}}"],
                environment={"SPARK_EXECUTOR_DIRS": "/app/says", "SPARKCTL_LOCAL_DIR": "/app"},
            )
        ),
    )
    spec = executor_launch_spec(msg, tmp_path, "10.0.0.7", "spark://Worker@w:1", "/disk1,/disk2")
    assert spec.argv == [
        worker_python(os.environ),
        "-m",
        "scheduler.executor",
        "--hostname",
        "10.0.0.7",
    ]
    # The Worker's local dirs win over whatever the application set.
    assert spec.env["SPARK_EXECUTOR_DIRS"] == "/disk1,/disk2"
    assert spec.env["SPARKCTL_LOCAL_DIR"] == "/app"
    bare = executor_launch_spec(msg, tmp_path, "h", "u")
    assert "SPARK_EXECUTOR_DIRS" not in bare.env


def test_worker_python_and_local_dirs_in_sparks_order() -> None:
    assert worker_python({}) == sys.executable
    assert worker_python({"PYSPARK_PYTHON": "/opt/py"}) == "/opt/py"
    assert worker_local_dirs({"SPARK_LOCAL_DIRS": "/a,/b"}, "/conf") == "/a,/b"
    assert worker_local_dirs({}, "/conf") == "/conf"
    assert worker_local_dirs({}, None) == ""
    conf = {"spark.pyspark.python": "/p", "spark.pyspark.driver.python": "/d"}
    assert driver_python(conf, {"PYSPARK_DRIVER_PYTHON": "/e"}) == "/d"
    assert driver_python({"spark.pyspark.python": "/p"}, {"PYSPARK_DRIVER_PYTHON": "/e"}) == "/p"
    assert driver_python({}, {"PYSPARK_DRIVER_PYTHON": "/e", "PYSPARK_PYTHON": "/f"}) == "/e"
    assert driver_python({}, {}) == sys.executable


def test_a_cluster_mode_driver_advertises_its_workers_host(tmp_path: pathlib.Path) -> None:
    import json

    app = tmp_path / "app.py"
    app.write_text("print(1)\n")
    msg = pb.LaunchDriver(
        driver_id="driver-1",
        description=pb.DriverDescription(
            app_resource=str(app),
            conf={"spark.driver.host": "submitter", "spark.driver.bindAddress": "0.0.0.0"},
        ),
    )
    spec = driver_launch_spec(msg, tmp_path, "spark://m:7077", "10.0.0.7")
    conf = json.loads(spec.env[SUBMIT_CONF_ENV])
    assert conf["spark.driver.host"] == "10.0.0.7" and "spark.driver.bindAddress" not in conf
    assert spec.argv[0] == driver_python({}, os.environ)
