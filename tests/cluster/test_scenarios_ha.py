"""T7 of the issue-10 campaign: rolling ZooKeeper failover three times under a job loop.

Two Master processes contend in a real ZooKeeper (`conftest.zookeeper`); the
leader is SIGKILLed three times, each time restarted on its port as the new
standby, while a driver runs jobs back to back. Every job gives the exact
result; the failover times are printed (`-s`), never asserted.
"""

from __future__ import annotations

import pathlib
import threading
import time

from test_zookeeper_ha import HACluster, ha_conf
from zk_server import ZooKeeperServer

from cluster.testing import wait_until
from scheduler import SparkConf, SparkContext
from sparkctl.v1 import deploy_pb2 as pb


def test_t7_three_rolling_failovers_under_a_job_loop(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    c = HACluster(tmp_path, ha_conf(zookeeper, "/sparkctl-rolling"))
    stop = threading.Event()
    results: list[int] = []
    errors: list[BaseException] = []
    try:
        c.roles()
        c.add_worker()
        conf = SparkConf().set("spark.ui.enabled", "false").set("spark.executor.memory", "256m")
        sc = SparkContext(master=c.url, appName="rolling", conf=conf)
        try:
            app_id = sc.applicationId

            def loop() -> None:
                while not stop.is_set():
                    try:
                        results.append(sc.parallelize(range(100), 4).map(lambda x: x * 2).sum())
                    except BaseException as exc:  # reported by the test thread
                        errors.append(exc)
                        return

            runner = threading.Thread(target=loop, name="job-loop", daemon=True)
            runner.start()
            failovers: list[float] = []
            for round_ in range(3):
                leader, standby = c.roles()
                port = c.host_port(leader).rsplit(":", 1)[1]
                before = len(results)
                leader.kill()  # SIGKILL by PID
                killed_at = time.monotonic()

                def recovered(standby: object = standby) -> bool:
                    state = c.state(standby)  # type: ignore[arg-type]
                    return (
                        state is not None
                        and state.status == pb.MASTER_STATUS_ALIVE
                        and [w.state for w in state.workers] == [pb.WORKER_STATE_ALIVE]
                        and any(a.id == app_id for a in state.active_apps)
                    )

                wait_until(recovered, 30, f"failover {round_ + 1}")
                failovers.append(time.monotonic() - killed_at)
                c.masters.remove(leader)
                # Back on its port, as the new standby: the URL everyone holds stays right.
                c.masters.append(c._start("master", "--port", port, name=f"master-r{round_}"))
                wait_until(lambda before=before: len(results) > before + 2 or errors, 30, "jobs")
                assert not errors, errors
            stop.set()
            runner.join(30)
            assert not runner.is_alive() and not errors, errors
            assert results and all(r == 9900 for r in results), results
            assert sc.applicationId == app_id
        finally:
            stop.set()
            sc.stop()
    finally:
        c.close()
    print(
        f"\nT7: {len(results)} jobs exact across 3 leader kills; failover "
        + ", ".join(f"{s:.1f}s" for s in failovers)
    )
