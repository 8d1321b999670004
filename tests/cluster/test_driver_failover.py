"""A real driver keeps its application, and its executors, across a Master restart."""

from __future__ import annotations

import pathlib

from cluster.testing import ProcCluster, wait_until
from scheduler import SparkConf, SparkContext
from sparkctl.v1 import deploy_pb2 as pb


def test_driver_reclaims_its_application_after_a_recovering_master_restart(
    tmp_path: pathlib.Path,
) -> None:
    c = ProcCluster(
        tmp_path / "cluster",
        {
            "spark.worker.timeout": "3",
            "spark.deploy.recoveryMode": "FILESYSTEM",
            "spark.deploy.recoveryDirectory": str(tmp_path / "recovery"),
        },
    )
    try:
        c.add_worker(cores=2)
        conf = SparkConf().set("spark.ui.enabled", "false").set("spark.executor.memory", "256m")
        sc = SparkContext(master=c.url, appName="failover", conf=conf)
        try:
            assert sc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
            app_id = sc.applicationId
            c.restart_master(kill=True)

            def reclaimed() -> bool:
                return any(
                    a.id == app_id and a.state == pb.APPLICATION_STATE_RUNNING
                    for a in c.state().active_apps
                )

            try:
                wait_until(reclaimed, 30, "the driver re-claimed its application")
            except AssertionError:
                raise AssertionError(f"not re-claimed: {c.state()}") from None
            assert sc.applicationId == app_id
            assert sc.parallelize(range(100), 4).map(lambda x: x + 1).sum() == 5050
        finally:
            sc.stop()
        c.assert_all_free()
    finally:
        c.close()
