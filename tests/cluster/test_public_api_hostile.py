"""The public MasterService against careless or hostile callers (raw gRPC, no stubs)."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import grpc
import pytest

from cluster.launch import MasterHandle, start_master
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

SERVICE = "/sparkctl.v1.MasterService/"


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[MasterHandle]:
    handle = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    try:
        yield handle
    finally:
        handle.stop()


def _raw_call(channel: grpc.Channel, method: str, data: bytes) -> tuple[grpc.StatusCode, str]:
    call = channel.unary_unary(
        SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    try:
        call(data, timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_a_huge_unknown_id_gets_not_found_and_the_channel_keeps_working(
    master: MasterHandle,
) -> None:
    # The error message names the id; sent whole, its HTTP/2 trailer passed every peer's
    # header limit: Python saw RESOURCE_EXHAUSTED and a Node.js channel hung until its deadline.
    huge = "d" * 100_000
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        for method, request in (
            ("GetDriverStatus", api.GetDriverStatusRequest(driver_id=huge)),
            ("KillDriver", api.KillDriverRequest(driver_id=huge)),
            ("KillApplication", api.KillApplicationRequest(app_id=huge)),
        ):
            code, details = _raw_call(channel, method, request.SerializeToString())
            assert code == grpc.StatusCode.NOT_FOUND, (method, code, details[:200])
            assert details.startswith(("no driver 'ddd", "no application 'ddd")), details[:200]
            # Only the id's first 100 characters come back, and its length.
            assert "d" * 101 not in details, details[:300]
            assert details.endswith("'... (100000 characters)"), details[:300]
            assert len(details) < 200, details[:300]
        started = time.monotonic()
        code, details = _raw_call(channel, "KillDriver", b"")
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "driver_id is required")
        assert time.monotonic() - started < 5


def test_garbage_bytes_and_unknown_methods_get_proper_codes(master: MasterHandle) -> None:
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        code, details = _raw_call(channel, "GetDriverStatus", b"\xff\xff\xff" * 10_000)
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("malformed sparkctl.v1.GetDriverStatusRequest")
        assert _raw_call(channel, "NoSuchMethod", b"")[0] == grpc.StatusCode.UNIMPLEMENTED
        assert _raw_call(channel, "GetClusterState", b"")[0] == grpc.StatusCode.OK


def test_a_driver_the_master_cannot_record_is_unavailable(tmp_path: pathlib.Path) -> None:
    recovery = tmp_path / "recovery"
    conf = {
        "spark.deploy.recoveryMode": "FILESYSTEM",
        "spark.deploy.recoveryDirectory": str(recovery),
    }
    handle = start_master(Conf(conf), "127.0.0.1", 0, tmp_path / "master")
    try:
        recovery.rmdir()
        recovery.write_text("not a directory: as a full disk, every record write fails\n")
        request = api.SubmitDriverRequest(description=pb.DriverDescription(app_resource="/x.py"))
        with grpc.insecure_channel(handle.rpc_env.address.host_port) as channel:
            code, details = _raw_call(channel, "SubmitDriver", request.SerializeToString())
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "cannot record the driver for recovery" in details and str(recovery) in details
    finally:
        handle.stop()
