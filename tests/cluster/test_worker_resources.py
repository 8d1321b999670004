"""Workers' custom resources: discovery, reporting, and the Master's address bookkeeping."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import pytest

from cluster.testing import LocalCluster, wait_until
from rpcenv.resources import ResourceDiscoveryError, discover_resources
from sparkctl.v1 import deploy_pb2 as pb

MakeCluster = Callable[..., LocalCluster]


def script(tmp_path: pathlib.Path, name: str, output: str, code: int = 0) -> str:
    """A discovery script that prints `output` and exits with `code`."""
    path = tmp_path / f"discover-{name}.sh"
    path.write_text(f"#!/bin/sh\ncat <<'JSON'\n{output}\nJSON\nexit {code}\n")
    path.chmod(0o755)
    return str(path)


def gpus(*addresses: str) -> str:
    return json.dumps({"name": "gpu", "addresses": list(addresses)})


def test_a_discovery_script_gives_every_address(tmp_path: pathlib.Path) -> None:
    conf = {
        "spark.worker.resource.gpu.amount": "2",
        "spark.worker.resource.gpu.discoveryScript": script(tmp_path, "gpu", gpus("0", "1", "2")),
    }
    assert discover_resources(conf) == {"gpu": ("0", "1", "2")}


def test_a_script_without_a_shebang_runs_in_a_shell(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "discover"
    path.write_text('echo {\\"name\\": \\"gpu\\", \\"addresses\\": [\\"0\\"]}')
    path.chmod(0o755)
    conf = {
        "spark.worker.resource.gpu.amount": "1",
        "spark.worker.resource.gpu.discoveryScript": str(path),
    }
    assert discover_resources(conf) == {"gpu": ("0",)}


def test_a_resources_file_wins_over_the_script(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "resources.json"
    entries = [
        {"id": {"componentName": component, "resourceName": "gpu"}, "addresses": [address]}
        for component, address in (("spark.worker", "7"), ("spark.driver", "9"))
    ]
    path.write_text(json.dumps(entries))
    conf = {"spark.worker.resource.gpu.amount": "1"}
    assert discover_resources(conf, resources_file=str(path)) == {"gpu": ("7",)}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"amount": "1"}, "didn't specify a discovery script"),
        ({"amount": "1", "discoveryScript": "/nonexistent/x.sh"}, "doesn't exist"),
        ({"amount": "1.5", "discoveryScript": "S"}, "Only tasks support fractional resources"),
        ({"amount": "many", "discoveryScript": "S"}, "must be a whole number"),
        ({"discoveryScript": "S"}, "You must specify an amount for gpu"),
        ({"amount": "3", "discoveryScript": "S"}, "is less than what the user requested: 3"),
        ({"amount": "1", "discoveryScript": "WRONG"}, "we were expecting gpu"),
        ({"amount": "1", "discoveryScript": "NOTJSON"}, "not JSON"),
        ({"amount": "1", "discoveryScript": "FAILS"}, "exited with code 3"),
    ],
)
def test_bad_settings_fail_naming_what_is_wrong(
    tmp_path: pathlib.Path, settings: dict[str, str], message: str
) -> None:
    scripts = {
        "S": script(tmp_path, "s", gpus("0", "1")),
        "WRONG": script(tmp_path, "wrong", json.dumps({"name": "fpga", "addresses": ["0"]})),
        "NOTJSON": script(tmp_path, "notjson", "gpu 0 1"),
        "FAILS": script(tmp_path, "fails", gpus("0"), code=3),
    }
    conf = {f"spark.worker.resource.gpu.{k}": scripts.get(v, v) for k, v in settings.items()}
    with pytest.raises(ResourceDiscoveryError, match=message):
        discover_resources(conf)


def test_executors_go_where_their_gpus_are_and_never_share_one(
    local_cluster: MakeCluster,
) -> None:
    c = local_cluster()
    c.worker("plain", cores=4)
    gpu_worker = c.worker("gpus", cores=4, resources={"gpu": ["0", "1"]})
    driver = c.driver(max_cores=4, cores_per_executor=1, executor_resources={"gpu": 1})
    added = driver.wait_of(pb.ExecutorAdded, 2)
    assert {a.worker_id for a in added} == {"gpus"}
    given = sorted(a.resources[0].addresses[0] for a in added)
    assert given == ["0", "1"]
    launches = gpu_worker.wait_of(pb.LaunchExecutor, 2)
    assert sorted(tuple(x.resources[0].addresses) for x in launches) == [("0",), ("1",)]
    # Two cores stay free on that worker, but no GPU: no third executor.
    assert len(gpu_worker.of(pb.LaunchExecutor)) == 2
    # An executor that ends gives its address back: its replacement gets it.
    first = launches[0]
    gpu_worker.self_ref.send(
        pb.ExecutorStateChanged(
            app_id=first.app_id,
            executor_id=first.executor_id,
            state=pb.EXECUTOR_STATE_EXITED,
            message="done",
            exit_status=0,
        )
    )
    third = gpu_worker.wait_of(pb.LaunchExecutor, 3)[2]
    assert list(third.resources[0].addresses) == list(first.resources[0].addresses)


def test_a_real_worker_reports_what_its_script_found(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    c = local_cluster(
        {
            "spark.worker.resource.gpu.amount": "1",
            "spark.worker.resource.gpu.discoveryScript": script(tmp_path, "gpu", gpus("3", "5")),
        }
    )
    c.real_worker(cores=2)
    driver = c.driver(max_cores=2, cores_per_executor=1, executor_resources={"gpu": 1})
    # (`true` exits at once: later executors reuse the addresses the first ones freed.)
    first_two = driver.wait_of(pb.ExecutorAdded, 2)[:2]
    assert sorted(a.resources[0].addresses[0] for a in first_two) == ["3", "5"]
    wait_until(lambda: len(c.state().workers) == 1)


def test_a_profile_gets_executors_of_its_own_shape(local_cluster: MakeCluster) -> None:
    """Stage-level scheduling: executors of profile 1 have its cores and its GPUs."""
    c = local_cluster()
    c.worker("plain", cores=4)
    gpu_worker = c.worker("gpus", cores=4, resources={"gpu": ["0", "1"]})
    driver = c.driver(cores_per_executor=1, initial_executor_limit=0)
    profile = pb.ExecutorProfile(
        id=1, cores=2, memory_mb=256, resources={"gpu": 1}, python_worker_limit_mb=300
    )
    request = pb.RequestExecutorsRequest(
        app_id=driver.app_id, requested_total=0, profile_totals={1: 2}, profiles=[profile]
    )
    reply = c.master.ref.ask_sync(request, 5)
    assert isinstance(reply, pb.RequestExecutorsResponse) and reply.acknowledged
    added = driver.wait_of(pb.ExecutorAdded, 2)
    assert [(a.worker_id, a.cores, a.resource_profile_id) for a in added] == [("gpus", 2, 1)] * 2
    launches = gpu_worker.wait_of(pb.LaunchExecutor, 2)
    assert sorted(x.resources[0].addresses[0] for x in launches) == ["0", "1"]
    assert all(x.resource_profile_id == 1 and x.memory_mb == 256 for x in launches)
    # The profile's Python workers' limit reaches the Worker that starts its executors.
    assert [x.python_worker_limit_mb for x in launches] == [300, 300]
    bad = pb.RequestExecutorsRequest(app_id=driver.app_id, profile_totals={7: 1})
    with pytest.raises(Exception, match="unknown profile"):
        c.master.ref.ask_sync(bad, 5)
    negative = pb.ExecutorProfile(id=2, python_worker_limit_mb=-1)
    bad = pb.RequestExecutorsRequest(app_id=driver.app_id, profiles=[negative])
    with pytest.raises(Exception, match="bad ExecutorProfile 2"):
        c.master.ref.ask_sync(bad, 5)


def test_killed_executors_free_their_worker_for_a_waiting_profile(
    local_cluster: MakeCluster,
) -> None:
    """As Spark's Master: killing executors schedules at once. A profile's executor that
    waited for the killed ones' cores launched only at the driver's next request."""
    c = local_cluster()
    worker = c.worker("only", cores=2, memory_mb=1024)
    driver = c.driver(initial_executor_limit=1)  # one executor taking both cores
    (first,) = driver.wait_of(pb.ExecutorAdded, 1)
    assert first.cores == 2
    profile = pb.ExecutorProfile(id=1, cores=2, python_worker_limit_mb=300)
    request = pb.RequestExecutorsRequest(
        app_id=driver.app_id, requested_total=0, profile_totals={1: 1}, profiles=[profile]
    )
    assert c.master.ref.ask_sync(request, 5).acknowledged
    kill = pb.KillExecutorsRequest(app_id=driver.app_id, executor_ids=[first.executor_id])
    assert c.master.ref.ask_sync(kill, 5).acknowledged
    launches = worker.wait_of(pb.LaunchExecutor, 2)
    assert [(x.resource_profile_id, x.cores) for x in launches] == [(0, 2), (1, 2)]
    assert launches[1].python_worker_limit_mb == 300
