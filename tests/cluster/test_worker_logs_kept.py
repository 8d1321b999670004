"""An application's executor logs outlive it on the worker; its scratch does not.

As Spark's Worker: `ApplicationFinished` deletes the executors' local dirs (shuffle
files, blocks, temp files), while `<work_dir>/<app-id>/<executor-id>/` with stdout
and stderr stays readable in the worker UI until `spark.worker.cleanup.appDataTtl`
removes it. A real Master and Worker on 127.0.0.1, real executor processes, and the
worker's web UI over its live state.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from cluster.launch import WorkerHandle
from cluster.testing import LocalCluster, wait_until
from cluster.ui import WorkerWebUI
from sparkctl.v1 import deploy_pb2 as pb

MakeCluster = Callable[..., LocalCluster]

# A stand-in executor: makes its local dir as the real one does (same roots, same name),
# writes a shuffle file there, says why it is about to fail on stderr, and waits to be
# killed (SIGTERM ends it at once: its scratch is left for the worker).
EXECUTOR = """
import os, sys, time
from scheduler.executor.runtime import local_root_dirs, make_local_dir
app_id, executor_id = sys.argv[1], sys.argv[2]
roots, source = local_root_dirs(os.environ)
if not roots:
    roots, source = [os.getcwd()], "the worker's work dir"
local = make_local_dir(roots, source, f"executor-{app_id}-{executor_id}-")
open(os.path.join(local, "shuffle_0_0_0.data"), "wb").write(b"x" * 4096)
open("fetched.txt", "w").write("a file the app shipped")
print("executor", executor_id, "up", flush=True)
print("boom: the reason this app failed", file=sys.stderr, flush=True)
open("ready", "w").close()
time.sleep(120)
"""


def command() -> pb.Command:
    return pb.Command(
        argv=[sys.executable, "-c", EXECUTOR, "{{APP_ID}}", "{{EXECUTOR_ID}}"],
        environment={"PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
    )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def ui_for() -> Iterator[Callable[[WorkerHandle], WorkerWebUI]]:
    made: list[WorkerWebUI] = []

    def make(worker: WorkerHandle) -> WorkerWebUI:
        def state() -> pb.GetWorkerStateResponse:
            reply = worker.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
            assert isinstance(reply, pb.GetWorkerStateResponse)
            return reply

        ui = WorkerWebUI(worker.endpoint.work_dir, "127.0.0.1", 0, state)
        ui.start()
        made.append(ui)
        return ui

    yield make
    for ui in made:
        ui.stop()


def run_app_to_its_end(c: LocalCluster, w: WorkerHandle) -> tuple[str, int, list[pathlib.Path]]:
    """One app with one executor that made its scratch; the app ends; (app, executor, scratch)."""
    driver = c.driver(cores_per_executor=1, command=command(), memory_per_executor_mb=128)
    added = driver.wait_of(pb.ExecutorAdded)[0]
    exec_dir = w.endpoint.work_dir / driver.app_id / str(added.executor_id)
    wait_until(lambda: (exec_dir / "ready").exists(), 10, "executor made its local dir")
    roots = [pathlib.Path(d) for d in w.endpoint.local_dirs.split(",") if d] or [exec_dir]
    pattern = f"executor-{driver.app_id}-{added.executor_id}-*"
    scratch = [p for root in roots for p in root.glob(pattern)]
    assert len(scratch) == 1 and (scratch[0] / "shuffle_0_0_0.data").is_file()
    driver.master.send(pb.UnregisterApplication(app_id=driver.app_id))
    wait_until(lambda: not w.endpoint.executors, 10, "executor stopped")
    return driver.app_id, added.executor_id, scratch


@pytest.mark.parametrize("local_dir", [False, True], ids=["in-work-dir", "spark.local.dir"])
def test_app_end_removes_scratch_and_keeps_logs_readable(
    local_cluster: MakeCluster,
    ui_for: Callable[[WorkerHandle], WorkerWebUI],
    tmp_path: pathlib.Path,
    local_dir: bool,
) -> None:
    conf = {"spark.local.dir": str(tmp_path / "scratch")} if local_dir else {}
    c = local_cluster(conf)
    w = c.real_worker(cores=1)
    ui = ui_for(w)
    app_id, executor_id, scratch = run_app_to_its_end(c, w)
    wait_until(lambda: not scratch[0].exists(), 10, "the executor's local dir removed")
    exec_dir = w.endpoint.work_dir / app_id / str(executor_id)
    assert (exec_dir / "fetched.txt").is_file()  # what Spark keeps in the work dir stays
    assert "the reason this app failed" in (exec_dir / "stderr").read_text()

    index = get(ui.url + "/")[1]
    assert "Finished Executors (1)" in index and app_id in index
    query = f"appId={app_id}&executorId={executor_id}&logType=stderr"
    status, page = get(f"{ui.url}/logPage/?{query}")
    assert status == 200 and "boom: the reason this app failed" in page
    status, raw = get(f"{ui.url}/log/?{query}")
    assert status == 200 and raw == "boom: the reason this app failed\n"
    status, out = get(f"{ui.url}/log/?{query.replace('stderr', 'stdout')}")
    assert status == 200 and f"executor {executor_id} up" in out


def test_ttl_cleanup_removes_the_logs_and_the_link_says_so(
    local_cluster: MakeCluster, ui_for: Callable[[WorkerHandle], WorkerWebUI]
) -> None:
    c = local_cluster(
        {"spark.worker.cleanup.interval": "0.2s", "spark.worker.cleanup.appDataTtl": "3s"}
    )
    w = c.real_worker(cores=1)
    ui = ui_for(w)
    app_id, executor_id, _scratch = run_app_to_its_end(c, w)
    app_dir = w.endpoint.work_dir / app_id
    assert (app_dir / str(executor_id) / "stderr").is_file()
    wait_until(lambda: not app_dir.exists(), 10, "app dir removed after its TTL")
    reply = w.ref.ask_sync(pb.GetWorkerStateRequest(), 5)
    assert isinstance(reply, pb.GetWorkerStateResponse)
    assert [(e.app_id, e.executor_id) for e in reply.finished_executors] == [(app_id, executor_id)]
    for page in ("logPage", "log"):
        status, body = get(f"{ui.url}/{page}/?appId={app_id}&executorId={executor_id}")
        assert status == 404, body
        assert "spark.worker.cleanup.appDataTtl" in body and "Traceback" not in body


def test_ttl_keeps_an_old_app_dir_whose_log_changed_lately(tmp_path: pathlib.Path) -> None:
    """A dir's own mtime does not move when a file in it is written: Spark looks inside."""
    from cluster.work_dirs import expired_dirs

    log = tmp_path / "app-1" / "0" / "stderr"
    log.parent.mkdir(parents=True)
    log.write_text("still writing")
    old = time.time() - 1000
    for path in (tmp_path / "app-1", log.parent):
        os.utime(path, (old, old))
    assert expired_dirs(tmp_path, set(), ttl=500) == []
    os.utime(log, (old, old))
    assert expired_dirs(tmp_path, set(), ttl=500) == [tmp_path / "app-1"]


def test_scratch_dirs_are_the_apps_own(tmp_path: pathlib.Path) -> None:
    from cluster.work_dirs import scratch_dirs

    work, local = tmp_path / "work", tmp_path / "local"
    mine = [
        local / "executor-app-1-0-ab_cd123",
        work / "app-1" / "3" / "executor-app-1-3-zz9x8y7w",
    ]
    others = [
        local / "executor-app-1-1-0-abcdefgh",  # app "app-1-1", executor 0
        local / "blockmgr-app-1",
        work / "app-1" / "3" / "stdout-dir",
        work / "app-2" / "0" / "executor-app-2-0-abcdefgh",
    ]
    for path in [*mine, *others]:
        path.mkdir(parents=True)
    (local / "executor-app-1-2-file0000").write_text("a file, not a dir")
    found = sorted(scratch_dirs("app-1", work, f" {local} ,, "))
    assert found == sorted(mine)


def test_a_finished_drivers_log_stays_readable_until_its_ttl(
    local_cluster: MakeCluster,
    ui_for: Callable[[WorkerHandle], WorkerWebUI],
    tmp_path: pathlib.Path,
) -> None:
    from sparkctl.v1 import master_service_pb2 as api

    c = local_cluster(
        {"spark.worker.cleanup.interval": "0.2s", "spark.worker.cleanup.appDataTtl": "3s"}
    )
    w = c.real_worker(cores=1)
    ui = ui_for(w)
    app = tmp_path / "fails.py"
    app.write_text("import sys\nprint('driver gives up', file=sys.stderr)\nsys.exit(3)\n")
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource=str(app), memory_mb=64)
        ),
        5,
    )
    assert isinstance(submit, api.SubmitDriverResponse)
    done = wait_until(lambda: c.state().completed_drivers, 10, "driver failed")
    assert done[0].state == pb.DRIVER_STATE_FAILED
    query = f"driverId={submit.driver_id}&logType=stderr"
    status, page = get(f"{ui.url}/logPage/?{query}")
    assert status == 200 and "driver gives up" in page
    assert get(f"{ui.url}/log/?{query}") == (200, "driver gives up\n")
    driver_dir = w.endpoint.work_dir / submit.driver_id
    wait_until(lambda: not driver_dir.exists(), 10, "driver dir removed after its TTL")
    status, body = get(f"{ui.url}/log/?{query}")
    assert status == 404 and f"driver {submit.driver_id}" in body
    assert "spark.worker.cleanup.appDataTtl" in body


def test_finished_executors_are_bounded_by_retained_executors(
    local_cluster: MakeCluster,
) -> None:
    c = local_cluster({"spark.worker.ui.retainedExecutors": "2"})
    w = c.real_worker(cores=1)
    ended = [run_app_to_its_end(c, w)[:2] for _ in range(3)]
    wait_until(
        lambda: (
            len(w.endpoint.finished_executors) == 2
            and w.endpoint.finished_executors[-1].app_id == ended[-1][0]
        ),
        10,
        "last two kept",
    )
    assert [(e.app_id, e.executor_id) for e in w.endpoint.finished_executors] == ended[1:]
