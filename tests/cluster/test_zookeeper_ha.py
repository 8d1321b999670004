"""Standby Masters through a real ZooKeeper (`spark.deploy.recoveryMode=ZOOKEEPER`).

Two Master processes, a Worker process and a real driver (SparkContext) on
127.0.0.1, one ZooKeeper server for the session (`conftest.zookeeper`). Every
wait is bounded; every process is stopped by its PID.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import operator
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import grpc
import pytest
from zk_server import ZooKeeperServer

from cluster.testing import ROOT, ClusterProcess, wait_until
from rpcenv import Conf, RpcEndpointRef, RpcEnv, RpcError, RpcRemoteError
from scheduler import SparkConf, SparkContext
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api
from sparkctl.v1 import master_service_pb2_grpc as api_grpc

#: A SIGKILLed leader keeps leadership this long: the failover time's floor.
SESSION_TIMEOUT = "2s"


def ha_conf(zk: ZooKeeperServer, directory: str) -> dict[str, str]:
    return {
        "spark.deploy.recoveryMode": "ZOOKEEPER",
        "spark.deploy.zookeeper.url": zk.url,
        "spark.deploy.zookeeper.dir": directory,
        "spark.sparkctl.zookeeper.sessionTimeout": SESSION_TIMEOUT,
        "spark.worker.timeout": "10",
    }


class HACluster:
    """Two Masters contending in ZooKeeper, Workers given both, a client env to ask them."""

    def __init__(self, tmp: pathlib.Path, conf: dict[str, str]) -> None:
        self.tmp = tmp
        self.conf = conf
        self.procs: list[ClusterProcess] = []
        self.masters = [self._start("master", "--port", "0", name=f"master{i}") for i in range(2)]
        self.env = RpcEnv.create("ha-test", "127.0.0.1", 0, {}, client_mode=True)
        self.url = "spark://" + ",".join(self.host_port(m) for m in self.masters)

    def _start(self, *args: str, name: str) -> ClusterProcess:
        conf_args = [a for k, v in self.conf.items() for a in ("--conf", f"{k}={v}")]
        work = ["--work-dir", str(self.tmp / name)]
        proc = ClusterProcess(
            [*args, *work, *conf_args, "--log-level", "INFO"], self.tmp / f"{name}.log"
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def host_port(master: ClusterProcess) -> str:
        return str(master.info["url"]).removeprefix("spark://")

    def add_worker(self) -> ClusterProcess:
        worker = self._start("worker", self.url, "--cores", "2", "--memory", "1g", name="worker")
        assert worker.info["registered"], worker.info
        return worker

    def ref(self, master: ClusterProcess) -> RpcEndpointRef:
        return self.env.endpoint_ref(f"spark://Master@{self.host_port(master)}", timeout=5.0)

    def state(self, master: ClusterProcess) -> api.GetClusterStateResponse | None:
        """The Master's view, or None when it does not answer (killed, stopped)."""
        if master.popen.poll() is not None:
            return None
        try:
            reply = self.ref(master).ask_sync(api.GetClusterStateRequest(), 5.0)
        except RpcError:
            return None
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    def status(self, master: ClusterProcess) -> str:
        state = self.state(master)
        return "DOWN" if state is None else pb.MasterStatus.Name(state.status)

    def roles(self, timeout: float = 20.0) -> tuple[ClusterProcess, ClusterProcess]:
        """(leader, standby) once one Master is ALIVE and the other STANDBY."""
        found: list[ClusterProcess] = []

        def settled() -> bool:
            statuses = [self.status(m) for m in self.masters]
            if sorted(statuses) != ["MASTER_STATUS_ALIVE", "MASTER_STATUS_STANDBY"]:
                return False
            found[:] = sorted(self.masters, key=lambda m: statuses[self.masters.index(m)])
            return True

        wait_until(settled, timeout, "one ALIVE master and one STANDBY")
        return found[0], found[1]

    def close(self) -> None:
        self.env.shutdown()
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            proc.stop()


def sparkctl_status(master_url: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "cli", "status", "--master", master_url, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, object] = json.loads(out.stdout)
    return doc


def test_standby_takes_over_a_killed_leader_with_its_worker_and_running_application(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    c = HACluster(tmp_path, ha_conf(zookeeper, "/sparkctl-failover"))
    try:
        leader, standby = c.roles()

        # A standby refuses to serve, and says why.
        refusal = c.ref(standby).ask_sync(
            pb.RegisterWorkerRequest(
                worker_id="worker-x", host="127.0.0.1", port=9, cores=1, memory_mb=64
            ),
            5.0,
        )
        assert isinstance(refusal, pb.RegisterWorkerResponse)
        assert not refusal.accepted and refusal.master_in_standby
        assert "standby master" in refusal.reason
        with pytest.raises(RpcRemoteError, match="standby master"):
            c.ref(standby).ask_sync(
                api.SubmitDriverRequest(description=pb.DriverDescription(app_resource="a.py")), 5.0
            )
        with grpc.insecure_channel(c.host_port(standby)) as channel:
            with pytest.raises(grpc.RpcError) as public:
                api_grpc.MasterServiceStub(channel).KillApplication(
                    api.KillApplicationRequest(app_id="app-x"), timeout=5.0
                )
            assert public.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "standby master" in (public.value.details() or "")

        c.add_worker()
        conf = SparkConf().set("spark.ui.enabled", "false").set("spark.executor.memory", "256m")
        sc = SparkContext(master=c.url, appName="ha", conf=conf)
        try:
            assert sc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
            app_id = sc.applicationId
            leader_state = c.state(leader)
            assert leader_state is not None and [a.id for a in leader_state.active_apps] == [app_id]

            # A job in flight when the leader dies: executors talk to the driver, not
            # to the Master, so it finishes, with exact results.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                slow = pool.submit(
                    lambda: sc.parallelize(range(8), 4).map(lambda x: time.sleep(0.4) or x).sum()
                )
                time.sleep(0.3)
                leader.kill()  # SIGKILL by PID, mid-application
                killed_at = time.monotonic()
                assert slow.result(timeout=30) == 28

            def recovered() -> bool:
                state = c.state(standby)
                return (
                    state is not None
                    and state.status == pb.MASTER_STATUS_ALIVE
                    and [w.state for w in state.workers] == [pb.WORKER_STATE_ALIVE]
                    and any(
                        a.id == app_id and a.state == pb.APPLICATION_STATE_RUNNING
                        for a in state.active_apps
                    )
                )

            try:
                wait_until(recovered, 30, "the standby recovered the worker and the application")
            except AssertionError:
                raise AssertionError(f"not recovered: {c.state(standby)}") from None
            failover_s = time.monotonic() - killed_at
            assert failover_s < 20, failover_s

            # The application goes on with the new leader, under its id, with exact results.
            assert sc.applicationId == app_id
            pairs = sc.parallelize([(i % 7, i) for i in range(700)], 4)
            assert pairs.reduceByKey(operator.add).collectAsMap() == {
                k: sum(i for i in range(700) if i % 7 == k) for k in range(7)
            }
            assert sc.parallelize(range(1000), 4).map(lambda x: x * x).sum() == sum(
                x * x for x in range(1000)
            )

            doc = sparkctl_status(c.url)
            assert doc["url"] == standby.info["url"] and doc["status"] == "ALIVE"
            assert [a["id"] for a in doc["activeapps"]] == [app_id]  # type: ignore[union-attr,index]
        finally:
            sc.stop()
    finally:
        c.close()


def test_a_leader_that_loses_its_zookeeper_session_stops_leading(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    conf = ha_conf(zookeeper, "/sparkctl-session-loss")
    # Not 2 s: a connection whose ping goes unanswered for a third of the session is
    # dropped, which ends leadership, and at load ~12 the elected standby lost its own
    # that way within a second (then nobody led). Nothing here is timed.
    conf["spark.sparkctl.zookeeper.sessionTimeout"] = "8s"
    c = HACluster(tmp_path, conf)
    try:
        leader, standby = c.roles()
        # Frozen past its session timeout (a long GC pause, a stalled VM): ZooKeeper
        # expires the session and the standby is elected meanwhile.
        os.kill(leader.pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: c.status(standby) == "MASTER_STATUS_ALIVE", 20, "the standby elected"
            )
        finally:
            os.kill(leader.pid, signal.SIGCONT)
        # Back, the old leader learns it lost its session: it revokes and exits.
        try:
            code = leader.popen.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the old leader still runs: {c.status(leader)}") from None
        assert code == 1
        assert "leadership has been revoked" in leader.log_path.read_text()
        assert c.status(standby) == "MASTER_STATUS_ALIVE"
    finally:
        c.close()


def test_a_stopped_leader_hands_over_at_once_and_standbys_refuse_drivers(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    conf = ha_conf(zookeeper, "/sparkctl-handover")
    conf["spark.sparkctl.zookeeper.sessionTimeout"] = "5s"
    c = HACluster(tmp_path, conf)
    try:
        leader, standby = c.roles()
        with pytest.raises(RpcRemoteError, match="standby master") as refused:
            c.ref(standby).ask_sync(
                pb.RegisterApplicationRequest(description=pb.ApplicationDescription(name="x")), 5.0
            )
        assert refused.value.remote_type.endswith("StandbyMasterError")
        stopped_at = time.monotonic()
        leader.stop()  # SIGTERM by PID: it leaves the election on its way out
        wait_until(lambda: c.status(standby) == "MASTER_STATUS_ALIVE", 10, "the standby elected")
        # Well before the 5 s session timeout a SIGKILLed leader would hold on for.
        assert time.monotonic() - stopped_at < 4.0
        assert leader.popen.returncode == 0
    finally:
        c.close()


def test_zookeeper_persistence_round_trip(zookeeper: ZooKeeperServer) -> None:
    from cluster.persistence import persistence_from_conf
    from cluster.zookeeper_persistence import ZooKeeperPersistence

    settings = {
        "spark.deploy.recoveryMode": "ZOOKEEPER",
        "spark.deploy.zookeeper.url": zookeeper.url,
        "spark.deploy.zookeeper.dir": "/sparkctl-persistence/",
    }
    engine = persistence_from_conf(Conf(settings), pathlib.Path("unused"))
    assert isinstance(engine, ZooKeeperPersistence) and engine.enabled
    try:
        assert engine.path == "/sparkctl-persistence/master_status"
        engine.put("worker", "w1", pb.PersistedWorker(worker_id="w1", cores=2))
        engine.put("worker", "w1", pb.PersistedWorker(worker_id="w1", cores=3))
        engine.put("app", "a1", pb.PersistedApplication(app_id="a1"))
        engine.client.create(f"{engine.path}/driver_bad", b"\xff\xff not a record")
        assert [w.cores for w in engine.read("worker", pb.PersistedWorker)] == [3]
        assert [a.app_id for a in engine.read("app", pb.PersistedApplication)] == ["a1"]
        assert engine.read("driver", pb.PersistedDriver) == []
        assert not engine.client.exists(f"{engine.path}/driver_bad")  # deleted, as Spark does
        engine.remove("worker", "w1")
        engine.remove("worker", "w1")  # idempotent
        assert engine.read("worker", pb.PersistedWorker) == []
    finally:
        engine.client.stop()
        engine.client.close()
    closed = Conf(
        {
            **settings,
            "spark.deploy.zookeeper.url": "127.0.0.1:9",
            "spark.sparkctl.zookeeper.connectionTimeout": "0.5s",
        }
    )
    with pytest.raises(ValueError, match=r"cannot connect to ZooKeeper at 127\.0\.0\.1:9"):
        persistence_from_conf(closed, pathlib.Path("unused"))


def _cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "SPARKCTL_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_sparkctl_daemons_with_two_masters(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    """start-master twice, start-worker / submit / status with spark://a,b."""
    conf = [
        a for k, v in ha_conf(zookeeper, "/sparkctl-cli").items() for a in ("--conf", f"{k}={v}")
    ]
    work = {name: tmp_path / name for name in ("m0", "m1", "w")}
    try:
        urls = []
        for name in ("m0", "m1"):
            started = _cli(
                "start-master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                "--work-dir", str(work[name]), *conf,
            )  # fmt: skip
            assert started.returncode == 0, started.stderr + started.stdout
            urls.append(re.search(r"spark://[\d.]+:\d+", started.stdout).group(0))  # type: ignore[union-attr]
        ha_url = "spark://" + ",".join(u.removeprefix("spark://") for u in urls)
        started = _cli(
            "start-worker", ha_url, "--host", "127.0.0.1", "--cores", "1", "--memory", "512m",
            "--webui-port", "0", "--work-dir", str(work["w"]), *conf,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr + started.stdout

        status = _cli("status", "--master", ha_url, "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["status"] == "ALIVE" and doc["url"] in urls and doc["aliveworkers"] == 1

        app = tmp_path / "tiny.py"
        app.write_text("print('sum', sum(range(10)), flush=True)\n")
        submitted = _cli(
            "submit", "--master", ha_url, "--deploy-mode", "cluster", "--driver-memory", "128m",
            str(app),
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        driver_id = submitted.stdout.strip()

        def finished() -> bool:
            shown = _cli("status", driver_id, "--master", ha_url, "--json")
            return shown.returncode == 0 and json.loads(shown.stdout)["state"] == "FINISHED"

        wait_until(finished, 30, "the cluster-mode driver to finish")
        assert "sum 45" in (work["w"] / driver_id / "stdout").read_text()
    finally:
        for name, role in (("w", "worker"), ("m0", "master"), ("m1", "master")):
            _cli(f"stop-{role}", "--work-dir", str(work[name]))
        for pid_file in tmp_path.rglob("sparkctl-*.pid"):  # whatever did not stop
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
