"""local[N]'s driver and executor speak the tcp RpcEnv backend unless the app names one."""

from __future__ import annotations

import json

import pytest

from rpcenv import Conf
from scheduler import SparkConf, SparkContext
from scheduler.backend.local import LOCAL_RPC_BACKEND, local_rpc_backend
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
