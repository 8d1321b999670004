"""local[N]'s driver and executor speak the tcp RpcEnv backend unless the app names one."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from cli._master_client import MasterClient
from cli._services import check_masters_reachable
from cluster.launch import start_master, start_worker
from rpcenv import Conf, RpcConfigError
from scheduler import SparkConf, SparkContext
from scheduler.backend.local import LOCAL_RPC_BACKEND, check_driver_rpc_backend, local_rpc_backend
from sparkctl.v1 import scheduler_pb2 as pb


def test_the_fast_backend_unless_the_app_names_one_or_asks_for_tls() -> None:
    assert local_rpc_backend(Conf({}), {}) == LOCAL_RPC_BACKEND == "tcp"
    named = {"spark.rpc.backend": "grpc"}
    assert local_rpc_backend(Conf(named), named) is None
    tls = {"spark.ssl.rpc.enabled": "true"}
    assert local_rpc_backend(Conf(tls), tls) is None


@pytest.mark.parametrize("named", [None, "grpc"])
def test_driver_and_executor_agree_on_the_backend(named: str | None) -> None:
    conf = (
        SparkConf().setMaster("local[2]").setAppName("rpc-backend").set("spark.ui.enabled", "false")
    )
    if named is not None:
        conf.set("spark.rpc.backend", named)
    with SparkContext(conf=conf) as sc:
        assert sc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
        runtime = sc._runtime
        assert runtime is not None
        expected = {"tcp": "TcpRpcEnv", "grpc": "GrpcRpcEnv"}[named or "tcp"]
        assert type(runtime.env).__name__ == expected
        executor_rpc = json.loads(runtime.executor_env["SPARKCTL_RPC_CONF"])
        assert executor_rpc["spark.rpc.backend"] == (named or "tcp")
        # Statuses skip the dispatcher's pool only on tcp, whose reader serves one peer.
        assert runtime.endpoint.receives_inline(pb.StatusUpdates()) == (named is None)
        assert not runtime.endpoint.receives_inline(pb.ExecutorHeartbeat())
        # The user's conf is left as the user set it.
        assert sc.getConf().get("spark.rpc.backend") == named


def test_a_cluster_driver_on_tcp_is_refused_at_once_naming_the_key() -> None:
    conf = (
        SparkConf()
        .setMaster("spark://127.0.0.1:9")  # never dialled: refused before anything starts
        .setAppName("tcp-cluster")
        .set("spark.rpc.backend", "tcp")
        .set("spark.ui.enabled", "false")
    )
    started = time.monotonic()
    with pytest.raises(
        RpcConfigError, match=r"spark\.rpc\.backend=tcp cannot be a standalone driver"
    ):
        SparkContext(conf=conf)
    assert time.monotonic() - started < 10.0
    check_driver_rpc_backend(Conf({"spark.rpc.backend": "tcp"}), local=True)  # fine locally
    check_driver_rpc_backend(Conf({"spark.rpc.backend": "grpc"}), local=False)
    for local in (True, False):  # in-process only: no executor could reach the driver
        with pytest.raises(RpcConfigError, match=r"spark\.rpc\.backend=local connects envs"):
            check_driver_rpc_backend(Conf({"spark.rpc.backend": "local"}), local=local)


@pytest.mark.parametrize("role", ["Master", "Worker"])
def test_a_master_or_worker_on_tcp_is_refused(role: str, tmp_path: pathlib.Path) -> None:
    conf = Conf({"spark.rpc.backend": "tcp"})
    with pytest.raises(RpcConfigError, match=f"cannot serve a {role}: .*speak gRPC"):
        if role == "Master":
            start_master(conf, "127.0.0.1", 0, tmp_path)
        else:
            start_worker(conf, ["spark://127.0.0.1:9"], 1, 512, "127.0.0.1", 0, tmp_path)


def _sparkctl(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def test_the_command_line_refuses_tcp_for_daemons_and_cluster_drivers(
    tmp_path: pathlib.Path,
) -> None:
    master = _sparkctl(
        "start-master",
        "--port",
        "0",
        "--webui-port",
        "0",
        "--work-dir",
        str(tmp_path / "m"),
        "--conf",
        "spark.rpc.backend=tcp",
        cwd=tmp_path,
    )
    assert master.returncode == 2, master.stdout  # a usage error, naming --conf
    assert "cannot serve a Master" in master.stderr + master.stdout
    assert "Traceback" not in master.stderr
    app = tmp_path / "app.py"
    app.write_text("raise SystemExit('the app must not start')\n")
    submit = _sparkctl(
        "submit",
        "--master",
        "spark://127.0.0.1:9",
        "--conf",
        "spark.rpc.backend=tcp",
        str(app),
        cwd=tmp_path,
    )
    assert submit.returncode == 2, submit.stderr
    assert "spark.rpc.backend=tcp cannot be a standalone driver" in submit.stderr
    assert "must not start" not in submit.stderr and "Traceback" not in submit.stderr
    local_cluster = _sparkctl(
        "submit",
        "--master",
        "local-cluster[1,1,1024]",
        "--conf",
        "spark.rpc.backend=tcp",
        str(app),
        cwd=tmp_path,
    )
    assert local_cluster.returncode == 2, local_cluster.stderr
    assert "spark.rpc.backend=tcp cannot be a standalone driver" in local_cluster.stderr


def test_clients_of_a_master_speak_grpc_even_when_the_conf_names_tcp(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spark-defaults.conf naming tcp (for local[N]) must not break status, kill, submit.
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path)
    try:
        tcp = Conf({"spark.rpc.backend": "tcp", "spark.rpc.askTimeout": "10s"})
        assert check_masters_reachable([master.rpc_env.address], tcp, 10.0) is None
        with MasterClient(master.url, tcp) as client:
            client.connect()
    finally:
        master.stop()
