"""Bounds on what drivers, applications and workers ask of the Master (cluster.request_limits).

The values of the T17 probe that used to be accepted (cores and memory_mb of
2^31-1, whose driver then waited forever; a 1 MB app_resource;
`spark.driver.cores=NaN`) are refused with INVALID_ARGUMENT naming the field
and the bound, through the public API and the internal asks alike. A request
within bounds that no registered worker can hold is accepted but said so, in
the submit reply and the driver's or application's status.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import grpc
import pytest

from cluster.launch import MasterHandle, start_master
from cluster.request_limits import (
    MAX_ARG_BYTES,
    MAX_CONF_JSON_BYTES,
    MAX_CORES,
    MAX_MEMORY_MB,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    check_app_description,
    check_driver_description,
    unplaceable_reason,
)
from cluster.testing import LocalCluster, wait_until
from rpcenv import Conf, RpcEnv, RpcRemoteError
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]
INT32_MAX = 2**31 - 1


def driver(**fields: object) -> pb.DriverDescription:
    desc = pb.DriverDescription(app_resource="/x.py", cores=1, memory_mb=256)
    for key, value in fields.items():
        if key == "conf":
            assert isinstance(value, dict)
            desc.conf.update(value)
        elif key in ("app_args", "py_files"):
            assert isinstance(value, list)
            getattr(desc, key).extend(value)
        else:
            setattr(desc, key, value)
    return desc


#: (description, words the refusal must contain: the field and the bound).
REFUSED_DRIVERS = [
    (driver(cores=INT32_MAX), ["DriverDescription.cores", str(MAX_CORES), str(INT32_MAX)]),
    (driver(memory_mb=INT32_MAX), ["DriverDescription.memory_mb", str(MAX_MEMORY_MB)]),
    (driver(cores=-1), ["DriverDescription.cores", "0.."]),
    (driver(app_resource="/" + "a" * 1_000_000), ["app_resource", str(MAX_PATH_CHARS)]),
    (driver(py_files=["/ok.py", "/" + "b" * 5000]), ["py_files[1]", str(MAX_PATH_CHARS)]),
    (driver(conf={"spark.driver.cores": "NaN"}), ["spark.driver.cores", "'NaN'"]),
    (driver(conf={"spark.driver.cores": "1e3"}), ["spark.driver.cores", "whole number"]),
    (driver(conf={"spark.driver.cores": "-2"}), ["spark.driver.cores", "whole number"]),
    (driver(conf={"spark.driver.cores": "0"}), ["spark.driver.cores", f"1..{MAX_CORES}"]),
    (driver(conf={"spark.executor.cores": str(INT32_MAX)}), ["spark.executor.cores", "1.."]),
    (driver(conf={"spark.driver.memory": "NaNg"}), ["spark.driver.memory", "bad size"]),
    (driver(conf={"spark.executor.memory": "inf"}), ["spark.executor.memory", "bad size"]),
    (driver(conf={"spark.driver.memory": "999999t"}), ["spark.driver.memory", "MiB"]),
    (
        driver(conf={"spark.executor.cores": "8", "spark.cores.max": "4"}),
        ["spark.executor.cores=8", "spark.cores.max=4", "never"],
    ),
    (driver(app_args=["x" * (MAX_ARG_BYTES + 1)]), ["app_args[0]", str(MAX_ARG_BYTES)]),
    (driver(app_args=["y" * MAX_ARG_BYTES] * 9), ["app_args", "in all"]),
    (driver(conf={"spark.k": "v" * MAX_CONF_JSON_BYTES}), ["conf", str(MAX_CONF_JSON_BYTES)]),
    (driver(app_resource=""), ["app_resource", "command.argv"]),
]


@pytest.mark.parametrize(("desc", "words"), REFUSED_DRIVERS)
def test_a_driver_out_of_bounds_is_refused_naming_field_and_bound(
    desc: pb.DriverDescription, words: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        check_driver_description(desc)
    text = str(caught.value)
    assert all(word in text for word in words), text
    assert len(text) < 400  # a 1 MB value is never echoed back


def test_values_at_the_bounds_are_accepted() -> None:
    check_driver_description(
        driver(
            cores=MAX_CORES,
            memory_mb=MAX_MEMORY_MB,
            app_resource="/" + "a" * (MAX_PATH_CHARS - 1),
            app_args=["x" * MAX_ARG_BYTES],
            conf={
                "spark.driver.cores": " 4 ",
                "spark.driver.memory": "1.5g",
                "spark.executor.cores": "4",
                "spark.cores.max": "4",
            },
        )
    )
    check_app_description(pb.ApplicationDescription(name="a" * MAX_NAME_CHARS))


@pytest.mark.parametrize(
    ("desc", "default_cores", "words"),
    [
        (pb.ApplicationDescription(cores_per_executor=INT32_MAX), 0, ["cores_per_executor"]),
        (
            pb.ApplicationDescription(memory_per_executor_mb=INT32_MAX),
            0,
            ["memory_per_executor_mb", str(MAX_MEMORY_MB)],
        ),
        (pb.ApplicationDescription(max_cores=-3), 0, ["max_cores", "0 = no limit"]),
        (pb.ApplicationDescription(initial_executor_limit=-1), 0, ["initial_executor_limit"]),
        (
            pb.ApplicationDescription(cores_per_executor=4, max_cores=2),
            0,
            ["cores_per_executor=4", "max_cores=2"],
        ),
        (
            pb.ApplicationDescription(cores_per_executor=4),
            2,
            ["spark.deploy.defaultCores=2"],
        ),
        (pb.ApplicationDescription(name="n" * 5000), 0, ["name", str(MAX_NAME_CHARS)]),
        (
            pb.ApplicationDescription(command=pb.Command(argv=["z" * (MAX_ARG_BYTES + 1)])),
            0,
            ["command.argv[0]"],
        ),
    ],
)
def test_an_application_out_of_bounds_is_refused(
    desc: pb.ApplicationDescription, default_cores: int, words: list[str]
) -> None:
    with pytest.raises(ValueError) as caught:
        check_app_description(desc, default_cores)
    assert all(word in str(caught.value) for word in words), caught.value


def test_unplaceable_reason_only_when_workers_are_up_and_none_fits() -> None:
    assert unplaceable_reason(64, 1024, [], "driver") == ""  # a worker may be starting
    assert unplaceable_reason(2, 1024, [(2, 1024)], "driver") == ""
    assert unplaceable_reason(0, 512, [(1, 512)], "each executor") == ""
    # Cores on one worker and memory on another is not a fit.
    text = unplaceable_reason(4, 4096, [(8, 1024), (2, 8192)], "driver")
    assert "needs 4 cores and 4096 MiB" in text and "most cores 8, most memory 8192" in text
    # It reads as a sentence for either subject.
    assert unplaceable_reason(4, 4096, [(2, 1024)], "the driver").startswith(
        "waiting: the driver needs 4 cores and 4096 MiB on one worker"
    )
    assert unplaceable_reason(0, 4096, [(2, 1024)], "each executor").startswith(
        "waiting: each executor needs 1 core and 4096 MiB on one worker"
    )


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[MasterHandle]:
    handle = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    try:
        yield handle
    finally:
        handle.stop()


def submit_code(channel: grpc.Channel, desc: pb.DriverDescription) -> tuple[grpc.StatusCode, str]:
    call = channel.unary_unary(
        "/sparkctl.v1.MasterService/SubmitDriver",
        request_serializer=api.SubmitDriverRequest.SerializeToString,
        response_deserializer=api.SubmitDriverResponse.FromString,
    )
    try:
        call(api.SubmitDriverRequest(description=desc), timeout=10)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def test_the_t17_probe_values_are_refused_over_the_public_api_and_asks(
    master: MasterHandle,
) -> None:
    probes = [
        (driver(cores=INT32_MAX), "DriverDescription.cores must be 0..65536"),
        (driver(memory_mb=INT32_MAX), "DriverDescription.memory_mb must be 0..134217728"),
        (driver(app_resource="/" + "a" * 1_000_000), "app_resource has 1000001 characters"),
        (driver(conf={"spark.driver.cores": "NaN"}), "conf spark.driver.cores='NaN'"),
    ]
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        for desc, says in probes:
            code, details = submit_code(channel, desc)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and says in details, details
    env = RpcEnv.create("limits", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = env.endpoint_ref(master.rpc_env.address, "Master")
        for app, says in (
            (pb.ApplicationDescription(name="a", cores_per_executor=INT32_MAX), "65536"),
            (pb.ApplicationDescription(name="a", memory_per_executor_mb=INT32_MAX), "134217728"),
        ):
            with pytest.raises(RpcRemoteError, match=says):
                ref.ask_sync(pb.RegisterApplicationRequest(description=app), 10)
        for cores, memory_mb, says in ((INT32_MAX, 1024, "cores"), (4, INT32_MAX, "memory")):
            answer = ref.ask_sync(
                pb.RegisterWorkerRequest(
                    worker_id="huge", host="127.0.0.1", port=1, cores=cores, memory_mb=memory_mb
                ),
                10,
            )
            assert isinstance(answer, pb.RegisterWorkerResponse)
            assert not answer.accepted and f"worker {says} must be 0.." in answer.reason
        state = ref.ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(state, api.GetClusterStateResponse)
        assert not state.active_drivers and not state.active_apps and not state.workers
    finally:
        env.shutdown()


def submit(cluster: LocalCluster, desc: pb.DriverDescription) -> api.SubmitDriverResponse:
    answer = cluster.master.ref.ask_sync(api.SubmitDriverRequest(description=desc), 10)
    assert isinstance(answer, api.SubmitDriverResponse)
    return answer


def status(cluster: LocalCluster, driver_id: str) -> api.DriverSummary:
    answer = cluster.master.ref.ask_sync(api.GetDriverStatusRequest(driver_id=driver_id), 10)
    assert isinstance(answer, api.GetDriverStatusResponse)
    return answer.driver


def test_a_driver_no_worker_can_hold_is_said_and_runs_once_one_can(
    local_cluster: MakeCluster,
) -> None:
    cluster = local_cluster()
    cluster.worker("small", cores=2, memory_mb=1024)
    answer = submit(cluster, driver(cores=8, memory_mb=512))
    assert "the driver needs 8 cores and 512 MiB" in answer.message, answer.message
    summary = status(cluster, answer.driver_id)
    assert summary.state == pb.DRIVER_STATE_SUBMITTED
    assert "no ALIVE worker has" in summary.exception and "most cores 2" in summary.exception
    [listed] = cluster.state().active_drivers
    assert listed.exception == summary.exception
    big = cluster.worker("big", cores=8, memory_mb=1024)
    [launch] = big.wait_of(pb.LaunchDriver)
    assert launch.driver_id == answer.driver_id
    summary = status(cluster, answer.driver_id)
    assert summary.state == pb.DRIVER_STATE_RUNNING and summary.exception == ""


def test_an_application_whose_executors_fit_no_worker_says_so(
    local_cluster: MakeCluster,
) -> None:
    cluster = local_cluster()
    cluster.worker("small", cores=2, memory_mb=1024)
    app = cluster.driver(cores_per_executor=4, memory_per_executor_mb=512)
    app_id = app.app_id
    [summary] = [a for a in cluster.state().active_apps if a.id == app_id]
    assert summary.state == pb.APPLICATION_STATE_WAITING
    assert "each executor needs 4 cores and 512 MiB" in summary.message, summary.message
    fits = cluster.driver(cores_per_executor=1, memory_per_executor_mb=512)
    wait_until(lambda: fits.of(pb.ExecutorAdded), 5, "an executor of the app that fits")
    [other] = [a for a in cluster.state().active_apps if a.id == fits.app_id]
    assert other.message == ""


def test_unset_driver_resources_come_from_its_conf(local_cluster: MakeCluster) -> None:
    cluster = local_cluster()
    desc = driver(
        cores=0, memory_mb=0, conf={"spark.driver.cores": "3", "spark.driver.memory": "2g"}
    )
    summary = status(cluster, submit(cluster, desc).driver_id)
    assert (summary.cores, summary.memory_mb) == (3, 2048)
    summary = status(cluster, submit(cluster, driver(cores=0, memory_mb=0)).driver_id)
    assert (summary.cores, summary.memory_mb) == (1, 1024)  # Spark's defaults
    # The description's own fields win over its conf.
    desc = driver(cores=2, memory_mb=300, conf={"spark.driver.cores": "3"})
    summary = status(cluster, submit(cluster, desc).driver_id)
    assert (summary.cores, summary.memory_mb) == (2, 300)


def test_totals_of_the_largest_workers_allowed_stay_in_int32(local_cluster: MakeCluster) -> None:
    cluster = local_cluster()
    for index in range(17):  # 17 x 128 TiB: more MiB than an int32 holds
        cluster.worker(f"huge{index}", cores=MAX_CORES, memory_mb=MAX_MEMORY_MB)
    state = cluster.state()
    assert len(state.workers) == 17 and state.memory_mb == INT32_MAX
    assert state.cores == 17 * MAX_CORES
