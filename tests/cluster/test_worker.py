"""The Worker endpoint with a real Master over the in-process backend, real processes.

Its accounting and executor states without processes (refusals, exit codes and
signals, kills, memory limits) are in test_worker_accounting.py, on a fake launcher.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from collections.abc import Callable

import psutil
import pytest

from cluster.testing import LocalCluster, wait_until
from cluster.worker_runners import SUBMIT_CONF_ENV
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]

# A stand-in executor: records its arguments and environment, then runs `action`.
EXECUTOR = """
import json, os, sys, time
json.dump({"argv": sys.argv[1:], "env": os.environ.get("FAKE_MARK", ""), "cwd": os.getcwd()},
          open("args.json", "w"))
print("executor", sys.argv[1], "up", flush=True)
action = os.environ.get("FAKE_ACTION", "sleep")
if action == "crash":
    print("something broke", file=sys.stderr, flush=True)
    sys.exit(3)
if action == "exit0":
    sys.exit(0)
time.sleep(120)
"""


def command(action: str = "sleep") -> pb.Command:
    return pb.Command(
        argv=[
            sys.executable,
            "-c",
            EXECUTOR,
            "{{EXECUTOR_ID}}",
            "{{APP_ID}}",
            "{{CORES}}",
            "{{HOSTNAME}}",
            "{{WORKER_URL}}",
        ],
        environment={"FAKE_MARK": "marked", "FAKE_ACTION": action},
    )


def updates(driver, state: int, count: int = 1, timeout: float = 10.0) -> list[pb.ExecutorUpdated]:  # type: ignore[no-untyped-def]
    return wait_until(
        lambda: (
            (u := [m for m in driver.of(pb.ExecutorUpdated) if m.state == state])
            and len(u) >= count
            and u
        ),
        timeout,
        f"{count} ExecutorUpdated {pb.ExecutorState.Name(state)}",
    )


def test_worker_registers_and_reports_state(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.real_worker(cores=3, memory_mb=1500)
    state = c.state()
    assert [(x.id, x.cores, x.memory_mb) for x in state.workers] == [(w.worker_id, 3, 1500)]
    reply = w.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
    assert isinstance(reply, pb.GetWorkerStateResponse)
    assert reply.worker_id == w.worker_id and reply.master_url == c.master.url
    assert reply.cores == 3 and reply.cores_used == 0


def test_executor_launch_substitutes_and_runs(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.real_worker(cores=2)
    driver = c.driver(cores_per_executor=2, command=command(), memory_per_executor_mb=256)
    added = driver.wait_of(pb.ExecutorAdded)[0]
    updates(driver, pb.EXECUTOR_STATE_RUNNING)
    exec_dir = w.endpoint.work_dir / driver.app_id / str(added.executor_id)
    args_file = exec_dir / "args.json"
    record = wait_until(
        lambda: (
            args_file.exists() and args_file.stat().st_size and json.loads(args_file.read_text())
        )
    )
    assert record["argv"] == [
        str(added.executor_id),
        driver.app_id,
        "2",
        "127.0.0.1",
        w.url,
    ]
    assert record["env"] == "marked"
    assert pathlib.Path(record["cwd"]) == exec_dir
    wait_until(lambda: "up" in (exec_dir / "stdout").read_text())
    assert (exec_dir / "stderr").exists()
    reply = w.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
    assert isinstance(reply, pb.GetWorkerStateResponse)
    assert reply.cores_used == 2 and reply.executors[0].pid > 0


def test_max_retries_with_real_processes(local_cluster: MakeCluster) -> None:
    c = local_cluster(
        {"spark.deploy.maxExecutorRetries": "3", "spark.sparkctl.worker.executorStartupGrace": "5s"}
    )
    c.real_worker(cores=2)
    driver = c.driver(cores_per_executor=1, command=command("crash"), memory_per_executor_mb=128)
    removed = driver.wait_of(pb.ApplicationRemoved, timeout=20)[0]
    assert removed.state == pb.APPLICATION_STATE_FAILED
    assert "maxExecutorRetries=3" in removed.message
    assert c.state().completed_apps[0].state == pb.APPLICATION_STATE_FAILED


def test_app_end_kills_executors_and_keeps_their_logs(local_cluster: MakeCluster) -> None:
    """Only the executors' scratch goes (test_worker_logs_kept.py); stdout/stderr stay."""
    c = local_cluster()
    w = c.real_worker(cores=2)
    driver = c.driver(cores_per_executor=1, command=command(), memory_per_executor_mb=128)
    updates(driver, pb.EXECUTOR_STATE_RUNNING, 2)
    pids = [e.pid for e in w.ref.ask_sync(pb.GetWorkerStateRequest(), 5).executors]  # type: ignore[attr-defined]
    app_dir = w.endpoint.work_dir / driver.app_id
    assert app_dir.is_dir()
    driver.master.send(pb.UnregisterApplication(app_id=driver.app_id))
    wait_until(
        lambda: (
            not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)
        )
    )
    wait_until(lambda: len(w.endpoint.finished_executors) == 2, what="both executors ended")
    reply = w.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
    assert isinstance(reply, pb.GetWorkerStateResponse)
    assert reply.cores_used == 0
    assert {e.state for e in reply.finished_executors} == {pb.EXECUTOR_STATE_KILLED}
    for e in reply.finished_executors:
        assert (pathlib.Path(e.work_dir) / "stdout").read_text().startswith("executor")


def test_cluster_mode_driver_runs_to_finished(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    c = local_cluster()
    c.real_worker(cores=2, memory_mb=2048)
    app = tmp_path / "app.py"
    app.write_text(
        "import os, sys, json\n"
        f"json.dump(json.loads(os.environ[{SUBMIT_CONF_ENV!r}]), open('conf.json', 'w'))\n"
        "print('args', sys.argv[1:])\n"
    )
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(
                app_resource=str(app),
                app_args=["a", "b"],
                memory_mb=256,
                conf={"spark.app.name": "t"},
            )
        ),
        5,
    )
    assert isinstance(submit, api.SubmitDriverResponse)

    def status() -> api.DriverSummary:
        reply = c.master.ref.ask_sync(api.GetDriverStatusRequest(driver_id=submit.driver_id), 5)
        assert isinstance(reply, api.GetDriverStatusResponse)
        return reply.driver

    wait_until(lambda: status().state == pb.DRIVER_STATE_FINISHED, 15)
    work = c.workers[0].endpoint.work_dir / submit.driver_id
    conf = json.loads((work / "conf.json").read_text())
    # The driver advertises its worker's host (issue 9: it advertised 127.0.0.1 anywhere).
    assert conf == {
        "spark.app.name": "t",
        "spark.master": c.master.url,
        "spark.submit.deployMode": "cluster",
        "spark.driver.host": c.workers[0].rpc_env.address.host,
    }
    assert "args ['a', 'b']" in (work / "stdout").read_text()


def test_failing_driver_and_kill(local_cluster: MakeCluster, tmp_path: pathlib.Path) -> None:
    c = local_cluster()
    c.real_worker(cores=2, memory_mb=2048)
    bad = tmp_path / "bad.py"
    bad.write_text("raise SystemExit('bad things')\n")
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(120)\n")

    def submit(path: pathlib.Path) -> str:
        reply = c.master.ref.ask_sync(
            api.SubmitDriverRequest(
                description=pb.DriverDescription(app_resource=str(path), memory_mb=128)
            ),
            5,
        )
        assert isinstance(reply, api.SubmitDriverResponse)
        return reply.driver_id

    def driver(driver_id: str) -> api.DriverSummary:
        reply = c.master.ref.ask_sync(api.GetDriverStatusRequest(driver_id=driver_id), 5)
        assert isinstance(reply, api.GetDriverStatusResponse)
        return reply.driver

    failing = submit(bad)
    wait_until(lambda: driver(failing).state == pb.DRIVER_STATE_FAILED, 15)
    assert "bad things" in driver(failing).exception
    running = submit(slow)
    wait_until(lambda: driver(running).state == pb.DRIVER_STATE_RUNNING, 15)
    c.master.ref.ask_sync(api.KillDriverRequest(driver_id=running), 5)
    wait_until(lambda: driver(running).state == pb.DRIVER_STATE_KILLED, 15)
    missing = submit(tmp_path / "missing.py")
    wait_until(lambda: driver(missing).state == pb.DRIVER_STATE_ERROR, 15)
    assert "not a file" in driver(missing).exception


def test_worker_stop_kills_its_processes(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.real_worker(cores=2)
    driver = c.driver(cores_per_executor=1, command=command(), memory_per_executor_mb=128)
    updates(driver, pb.EXECUTOR_STATE_RUNNING, 2)
    reply = w.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
    assert isinstance(reply, pb.GetWorkerStateResponse)
    pids = [e.pid for e in reply.executors]
    w.stop()
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_master_restart_workers_reregister(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.real_worker(cores=2)
    c.restart_master()
    wait_until(lambda: [x.id for x in c.state().workers] == [w.worker_id], 10, "re-registration")


def test_filesystem_recovery_keeps_executors(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    c = local_cluster(
        {
            "spark.deploy.recoveryMode": "FILESYSTEM",
            "spark.deploy.recoveryDirectory": str(tmp_path / "rec"),
        }
    )
    w = c.real_worker(cores=2)
    driver = c.driver(cores_per_executor=1, command=command(), memory_per_executor_mb=128)
    updates(driver, pb.EXECUTOR_STATE_RUNNING, 2)
    app_id = driver.app_id
    c.restart_master()
    state = c.state()
    assert state.status in (pb.MASTER_STATUS_RECOVERING, pb.MASTER_STATUS_ALIVE)
    wait_until(
        lambda: c.state().workers and c.state().workers[0].state == pb.WORKER_STATE_ALIVE, 10
    )
    state = wait_until(
        lambda: (s := c.state()).active_apps and s.active_apps[0].executors and s, 10
    )
    assert state.active_apps[0].id == app_id
    assert {e.worker_id for e in state.active_apps[0].executors} == {w.worker_id}
    # The driver never re-registers (its connection died with the old Master):
    # recovery completes after spark.worker.timeout and the app is finished.
    wait_until(lambda: c.state().status == pb.MASTER_STATUS_ALIVE and not c.state().active_apps, 10)
    wait_until(lambda: not w.endpoint.executors, 10, "executors of the unrecovered app stopped")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_bad_master_url_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    from cluster.launch import start_worker
    from rpcenv import Conf

    with pytest.raises(ValueError, match="expected spark://host:port"):
        start_worker(
            Conf({"spark.rpc.backend": "local"}), ["http://x:1"], 1, 1, "127.0.0.1", 0, tmp_path
        )
    with pytest.raises(ValueError, match="--cores"):
        start_worker(
            Conf({"spark.rpc.backend": "local"}), ["spark://x:1"], 0, 1, "127.0.0.1", 0, tmp_path
        )
    # Beyond int32 the registration never serialized: the worker just never registered.
    for cores, memory_mb, flag in ((2**31, 1, "--cores"), (1, 2**31, "--memory")):
        with pytest.raises(ValueError, match=flag):
            start_worker(
                Conf({"spark.rpc.backend": "local"}),
                ["spark://x:1"],
                cores,
                memory_mb,
                "127.0.0.1",
                0,
                tmp_path,
            )
    assert os.path.isdir(tmp_path)


def test_worker_waits_for_a_master_that_comes_later(tmp_path: pathlib.Path) -> None:
    from cluster.launch import start_master, start_worker
    from rpcenv import Conf

    conf = Conf({"spark.rpc.backend": "local", "spark.worker.timeout": "1"})
    port = 59_321
    worker = start_worker(
        conf, [f"spark://127.0.0.1:{port}"], 1, 256, "127.0.0.1", 0, tmp_path / "w"
    )
    master = None
    try:
        assert not worker.wait_registered(0.5)  # nobody there yet: it keeps retrying
        master = start_master(conf, "127.0.0.1", port, tmp_path / "m")
        assert worker.wait_registered(10)
    finally:
        worker.stop()
        if master is not None:
            master.stop()


def test_driver_ending_while_master_is_down_is_recovered(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    c = local_cluster(
        {
            "spark.deploy.recoveryMode": "FILESYSTEM",
            "spark.deploy.recoveryDirectory": str(tmp_path / "rec"),
        }
    )
    w = c.real_worker(cores=2)
    gate = tmp_path / "gate"
    app = tmp_path / "app.py"
    app.write_text(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)\n"
    )
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource=str(app), memory_mb=128)
        ),
        5,
    )
    assert isinstance(submit, api.SubmitDriverResponse)
    wait_until(lambda: w.endpoint.drivers, 10, "driver running")
    port = c.master.rpc_env.address.port
    c.master.stop()
    gate.write_text("go")  # the driver finishes while no Master runs
    wait_until(lambda: not w.endpoint.drivers, 10, "driver exited")
    from cluster.launch import start_master

    c.master = start_master(c.conf, "127.0.0.1", port, c.tmp_path / "master")
    done = wait_until(lambda: c.state().completed_drivers, 10, "driver completed after recovery")
    assert [(d.id, d.state) for d in done] == [(submit.driver_id, pb.DRIVER_STATE_FINISHED)]


def test_ttl_cleanup_removes_old_driver_dirs(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    c = local_cluster(
        {"spark.worker.cleanup.interval": "0.2s", "spark.worker.cleanup.appDataTtl": "0.5s"}
    )
    w = c.real_worker(cores=1)
    app = tmp_path / "quick.py"
    app.write_text("print('done')\n")
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource=str(app), memory_mb=64)
        ),
        5,
    )
    assert isinstance(submit, api.SubmitDriverResponse)
    driver_dir = w.endpoint.work_dir / submit.driver_id
    wait_until(lambda: c.state().completed_drivers, 10, "driver finished")
    assert driver_dir.is_dir()
    (w.endpoint.work_dir / "worker.log").write_text("kept")
    wait_until(lambda: not driver_dir.exists(), 10, "driver dir removed after its TTL")
    assert (w.endpoint.work_dir / "worker.log").exists()


def test_finished_drivers_do_not_keep_their_app_files_in_memory(local_cluster: MakeCluster) -> None:
    # The Master and the Worker each retain 200 finished drivers: with the inline app
    # content kept, 20 drivers of 20 MiB took a master from 53 MiB to 758 MiB of RSS.
    c = local_cluster()
    c.real_worker(cores=2, memory_mb=2048)
    content = b"print('big app')\n#" + b"x" * (1 << 20) + b"\n"
    ids = []
    for name in ("ok.py", "fails.py"):
        body = content if name == "ok.py" else b"raise SystemExit(3)\n#" + b"x" * (1 << 20)
        reply = c.master.ref.ask_sync(
            api.SubmitDriverRequest(
                description=pb.DriverDescription(app_resource=name, app_content=body, memory_mb=64)
            ),
            5,
        )
        assert isinstance(reply, api.SubmitDriverResponse)
        ids.append(reply.driver_id)
    wait_until(lambda: len(c.state().completed_drivers) == 2, 20, "both drivers to end")
    master_done = {d.driver_id: d for d in c.master.endpoint.completed_drivers}
    worker_done = {d.driver_id: d for d in c.workers[0].endpoint.finished_drivers}
    for driver_id in ids:
        assert master_done[driver_id].description.app_content == b""
        assert worker_done[driver_id].description.app_content == b""
    work = c.workers[0].endpoint.work_dir
    assert (work / ids[0] / "ok.py").read_bytes() == content  # the file itself stays


def test_executors_over_their_memory_from_the_start_fail_the_app(
    local_cluster: MakeCluster,
) -> None:
    # Reported RUNNING after the startup grace, then killed by the memory monitor a moment
    # later: each RUNNING reset spark.deploy.maxExecutorRetries, so an app whose executors
    # cannot fit (--executor-memory below Python's footprint) relaunched them forever.
    c = local_cluster({"spark.deploy.maxExecutorRetries": "3"})
    c.real_worker(cores=1)
    driver = c.driver(cores_per_executor=1, command=command(), memory_per_executor_mb=1)
    removed = driver.wait_of(pb.ApplicationRemoved, timeout=30)[0]
    assert removed.state == pb.APPLICATION_STATE_FAILED
    assert "exceeded 1 MiB" in removed.message
    assert not [m for m in driver.of(pb.ExecutorUpdated) if m.state == pb.EXECUTOR_STATE_RUNNING]
