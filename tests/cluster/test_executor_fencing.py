"""Epoch fencing of everything a Master says that reaches an executor.

No Master command reaches an executor directly: an executor never connects to
a Master, the Master holds no ref to it, its env lets in only its
application's credential (never the secret a Master proves), and its endpoint
takes commands only over the stream to its driver. A Master's word reaches an
executor two ways, and each is fenced where it lands:

- through the executor's Worker, which starts and kills it: `LaunchExecutor`,
  `KillExecutor`, `ApplicationFinished`, all stamped with the Master's epoch;
  the Worker ignores those older than the epoch it registered under;
- through its driver, which stops it when the Master says the application or
  the executor is gone: `ApplicationRemoved`, `ExecutorUpdated`, accepted only
  from the Master the driver registered with, and `MasterChanged`, refused
  when older than the epoch the driver registered under.

The first test runs a real executor process under a real Worker and has the
old leader (the same Master connection, an older epoch) try to kill it, end
its application and start another; the second has an old leader on a known
Master address tell a real driver that the Master changed and that its
application and executor are gone.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cluster.testing import (
    LocalCluster,
    ProcCluster,
    alive,
    descendant_pids,
    wait_until,
)
from rpcenv import SECRET_ENV_VAR, RpcEnv
from sparkctl.v1 import deploy_pb2 as dpb

pytestmark = pytest.mark.timeout(180)

log = logging.getLogger(__name__)


def _processes_with(marker: str, root: int) -> list[int]:
    """Descendants of `root` whose command line holds `marker`."""
    found = []
    for pid in descendant_pids(root):
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(pid)
    return found


def test_an_old_leader_cannot_kill_or_launch_executors_through_the_worker(
    local_cluster: Callable[..., LocalCluster], caplog: pytest.LogCaptureFixture
) -> None:
    c = local_cluster()
    handle = c.real_worker(cores=2)
    marker = f"fenced-executor-{uuid.uuid4().hex}"
    driver = c.driver(
        command=dpb.Command(argv=[sys.executable, "-c", "import time; time.sleep(120)", marker]),
        cores_per_executor=1,
        max_cores=1,
        memory_per_executor_mb=64,
    )
    assert driver.registered is not None
    reply = driver.registered.result()
    assert isinstance(reply, dpb.RegisterApplicationResponse)
    app_id = reply.app_id
    pids = wait_until(lambda: _processes_with(marker, os.getpid()), 30, "the executor process")
    assert len(pids) == 1
    executor_pid = pids[0]
    epoch = handle.endpoint.master_epoch
    assert epoch > 0

    # The old leader: the Master's own connection to the Worker, an older epoch (as if
    # its messages had been held up past the election of its successor).
    worker = c.master.rpc_env.endpoint_ref(handle.ref.address, handle.ref.name)
    caplog.set_level(logging.WARNING, logger="cluster")
    old = epoch - 1
    commands = [
        dpb.KillExecutor(app_id=app_id, executor_id=0, master_epoch=old),
        dpb.ApplicationFinished(app_id=app_id, master_epoch=old),
        dpb.LaunchExecutor(
            app_id=app_id,
            executor_id=1,
            app_description=dpb.ApplicationDescription(
                command=dpb.Command(argv=[sys.executable, "-c", "pass", marker])
            ),
            cores=1,
            memory_mb=64,
            master_epoch=old,
        ),
        dpb.MasterChanged(master_url="spark://127.0.0.1:1", master_epoch=old),
    ]
    for command in commands:
        worker.send(command)

    def rejections() -> int:
        return sum("from an older master" in r.getMessage() for r in caplog.records)

    wait_until(lambda: rejections() == len(commands), 10, "every stale command rejected")
    log.warning("old leader through the Worker: %d of %d rejected", rejections(), len(commands))
    # The executor lives on, nothing else was started, and the app is not finished.
    assert alive(executor_pid)
    assert _processes_with(marker, os.getpid()) == [executor_pid]
    assert (app_id, 0) in handle.endpoint.executors
    assert app_id not in handle.endpoint.finished_apps

    # The leader's own kill (current epoch) is what ends it: the fence, not a broken path.
    worker.send(dpb.KillExecutor(app_id=app_id, executor_id=0, master_epoch=epoch))
    wait_until(lambda: not alive(executor_pid), 20, "the executor killed by the leader")


@pytest.fixture
def proc_cluster(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcCluster]:
    monkeypatch.setenv(SECRET_ENV_VAR, "executor-fencing-secret")
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    with ProcCluster(tmp_path / "cluster", {"spark.worker.timeout": "10"}, workers=1) as c:
        yield c


def test_an_old_leader_cannot_stop_executors_through_the_driver(
    proc_cluster: ProcCluster, caplog: pytest.LogCaptureFixture
) -> None:
    from scheduler import SparkConf, SparkContext

    c = proc_cluster
    # A second Master address the driver knows (an HA pair): the old leader speaks from
    # there, holding the secret, as a deposed Master still would.
    old_leader = RpcEnv.create("sparkMaster", "127.0.0.1", 0, {})
    conf = (
        SparkConf()
        .setMaster(f"{c.url},{old_leader.address.host_port}")
        .setAppName("fenced")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.cores.max", "1")
        .set("spark.executor.memory", "256m")
    )
    sc = SparkContext(conf=conf)
    intruder = RpcEnv.create("intruder", "127.0.0.1", 0, {}, client_mode=True)
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 1, 60, "the executor")
        assert sc.parallelize(range(10), 2).sum() == 45
        backend: Any = sc._backend
        client = backend._client
        epoch = client.master_epoch
        assert epoch > 0 and client.master is not None
        caplog.set_level(logging.WARNING)
        from_old = old_leader.endpoint_ref(sc._env.address, "AppClient", timeout=10.0)
        from_client = intruder.endpoint_ref(sc._env.address, "AppClient", timeout=10.0)
        app_id = sc.applicationId
        from_old.send(
            dpb.MasterChanged(
                master_url=f"spark://{old_leader.address.host_port}", master_epoch=epoch - 1
            )
        )
        removed = dpb.ApplicationRemoved(app_id=app_id, message="by the old leader")
        lost = dpb.ExecutorUpdated(
            executor_id=0, state=dpb.EXECUTOR_STATE_LOST, message="by the old leader"
        )
        for ref in (from_old, from_client):
            ref.send(lost)
            ref.send(removed)
        from_client.send(
            dpb.MasterChanged(master_url="spark://127.0.0.1:1", master_epoch=epoch + 1)
        )

        def stale() -> int:
            return sum(
                "MasterChanged from an older master" in r.getMessage() for r in caplog.records
            )

        def refused() -> int:
            return sum("driver AppClient refused" in r.getMessage() for r in caplog.records)

        wait_until(lambda: stale() == 1 and refused() >= 3, 10, "the old leader refused")
        log.warning(
            "old leader through the driver: %d stale MasterChanged, %d refused by sender",
            stale(),
            refused(),
        )
        # Still following the real Master, with its executor, running jobs.
        assert client.master is not None and client.master.address.host_port == c.url.removeprefix(
            "spark://"
        )
        assert client.master_epoch == epoch
        assert backend.removed_reason is None
        assert len(sc._scheduler.executors) == 1
        assert sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).groupByKey().count() == 3
    finally:
        intruder.shutdown()
        sc.stop()
        old_leader.shutdown()
