"""Placement with custom resources (spark.worker.resource.*): addresses, never shared."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.placement import AppDemand, Placement, WorkerResources


def gpu_worker(worker_id: str, gpus: int, cores: int = 4) -> WorkerResources:
    return WorkerResources(
        worker_id, cores, 4096, {"gpu": tuple(str(i) for i in range(gpus))} if gpus else {}
    )


def test_an_executor_goes_only_where_its_gpus_are_free() -> None:
    app = AppDemand("app-1", 8, 512, cores_per_executor=1, executor_resources={"gpu": 1})
    got = Placement().place_executors([app], [gpu_worker("w0", 0), gpu_worker("w1", 2)])
    assert [(a.worker_id, dict(a.resources)) for a in got] == [
        ("w1", {"gpu": ("0",)}),
        ("w1", {"gpu": ("1",)}),
    ]


def test_each_executor_gets_its_own_addresses() -> None:
    app = AppDemand("app-1", 8, 512, cores_per_executor=2, executor_resources={"gpu": 2})
    got = Placement().place_executors([app], [gpu_worker("w0", 4, cores=8)])
    assert [a.resources["gpu"] for a in got] == [("0", "1"), ("2", "3")]


def test_one_executor_per_worker_takes_its_amount_once() -> None:
    app = AppDemand("app-1", 8, 512, cores_per_executor=0, executor_resources={"gpu": 1})
    got = Placement().place_executors([app], [gpu_worker("w0", 2), gpu_worker("w1", 1)])
    assert sorted((a.worker_id, a.cores, a.resources["gpu"]) for a in got) == [
        ("w0", 4, ("0",)),
        ("w1", 4, ("0",)),
    ]


def test_too_few_addresses_anywhere_places_nothing() -> None:
    app = AppDemand("app-1", 8, 512, cores_per_executor=1, executor_resources={"gpu": 3})
    assert Placement().place_executors([app], [gpu_worker("w0", 2), gpu_worker("w1", 2)]) == []


def test_a_later_app_gets_only_what_the_first_left() -> None:
    first = AppDemand("app-1", 1, 512, cores_per_executor=1, executor_resources={"gpu": 1})
    second = AppDemand("app-2", 8, 512, cores_per_executor=1, executor_resources={"gpu": 1})
    got = Placement().place_executors([first, second], [gpu_worker("w0", 2)])
    assert [(a.app_id, a.resources["gpu"]) for a in got] == [("app-1", ("0",)), ("app-2", ("1",))]


def test_an_apps_profiles_share_its_cores_max_in_one_pass() -> None:
    """spark.cores.max bounds all of an application's executors, whatever their profile."""
    default = AppDemand("app-1", 3, 512, cores_per_executor=1)
    profile = AppDemand("app-1", 3, 512, cores_per_executor=1, profile_id=1)
    other = AppDemand("app-2", 8, 512, cores_per_executor=1)
    got = Placement().place_executors([default, profile, other], [gpu_worker("w0", 0, cores=8)])
    by_app = [(a.app_id, a.profile_id, a.cores) for a in got]
    assert by_app == [("app-1", 0, 1)] * 3 + [("app-2", 0, 1)] * 5
    shared = AppDemand("app-1", 3, 512, cores_per_executor=2, profile_id=1)
    got = Placement().place_executors([default, shared], [gpu_worker("w0", 0, cores=8)])
    assert [(a.profile_id, a.cores) for a in got] == [(0, 1)] * 3  # none left for 2 cores


def test_apps_without_resources_ignore_them() -> None:
    app = AppDemand("app-1", 4, 512, cores_per_executor=1)
    got = Placement().place_executors([app], [gpu_worker("w0", 1)])
    assert len(got) == 4 and all(not a.resources for a in got)


def test_negative_amounts_are_refused() -> None:
    app = AppDemand("app-1", 4, 512, cores_per_executor=1, executor_resources={"gpu": -1})
    try:
        Placement().place_executors([app], [gpu_worker("w0", 1)])
    except ValueError as exc:
        assert "negative custom resources" in str(exc)
    else:
        raise AssertionError("a negative amount was accepted")


@settings(max_examples=150, deadline=None)
@given(
    gpus=st.lists(st.integers(0, 5), min_size=1, max_size=5),
    amounts=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    cores_per_executor=st.integers(0, 2),
    spread_out=st.booleans(),
)
def test_no_address_is_given_twice_nor_beyond_the_worker(
    gpus: list[int], amounts: list[int], cores_per_executor: int, spread_out: bool
) -> None:
    workers = [gpu_worker(f"w{i}", n) for i, n in enumerate(gpus)]
    apps = [
        AppDemand(f"app-{i}", 16, 256, cores_per_executor, executor_resources={"gpu": n})
        for i, n in enumerate(amounts)
    ]
    got = Placement(spread_out=spread_out).place_executors(apps, workers)
    seen: set[tuple[str, str]] = set()
    owned = {w.worker_id: set(w.resources_free.get("gpu", ())) for w in workers}
    for a in got:
        wanted = amounts[int(a.app_id.split("-")[1])]
        given_gpus = a.resources.get("gpu", ())
        assert len(given_gpus) == wanted
        for address in given_gpus:
            assert address in owned[a.worker_id]
            assert (a.worker_id, address) not in seen
            seen.add((a.worker_id, address))
