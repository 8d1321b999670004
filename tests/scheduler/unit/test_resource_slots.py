"""Task resource bookkeeping without processes: profiles' requirements and executor slots."""

from __future__ import annotations

from fractions import Fraction

import pytest

from scheduler.resource import (
    ExecutorResourceRequests,
    ResourceProfileBuilder,
    TaskResourceRequests,
)
from scheduler.resource.profile import DEFAULT_PROFILE_ID, default_profile
from scheduler.resource.slots import ResourceSlots


def test_whole_addresses_are_held_by_one_task_each() -> None:
    slots = ResourceSlots({"gpu": ["0", "1"]})
    wanted = {"gpu": (1, Fraction(1))}
    assert slots.acquire(wanted) == {"gpu": ["0"]}
    assert slots.acquire(wanted) == {"gpu": ["1"]}
    assert not slots.fits(wanted) and slots.acquire(wanted) is None
    slots.release({"gpu": ["0"]}, wanted)
    assert slots.acquire(wanted) == {"gpu": ["0"]}


def test_shares_fill_an_address_before_opening_the_next() -> None:
    slots = ResourceSlots({"gpu": ["0", "1"]})
    half = {"gpu": (1, Fraction(1, 2))}
    got = [slots.acquire(half) for _ in range(4)]
    assert got == [{"gpu": ["0"]}, {"gpu": ["0"]}, {"gpu": ["1"]}, {"gpu": ["1"]}]
    assert slots.acquire(half) is None
    assert slots.capacity(half) == 4


def test_free_capacity_counts_what_still_fits_now() -> None:
    slots = ResourceSlots({"gpu": ["0", "1", "2"]})
    half, pair = {"gpu": (1, Fraction(1, 2))}, {"gpu": (2, Fraction(1))}
    assert slots.free_capacity({}) is None
    assert (slots.free_capacity(half), slots.free_capacity(pair)) == (6, 1)
    held = slots.acquire(half)
    assert held == {"gpu": ["0"]}
    assert (slots.free_capacity(half), slots.free_capacity(pair)) == (5, 1)
    assert slots.acquire(pair) is not None
    assert (slots.free_capacity(half), slots.free_capacity(pair)) == (1, 0)


def test_a_failed_acquire_takes_nothing() -> None:
    slots = ResourceSlots({"gpu": ["0"], "fpga": []})
    assert slots.acquire({"gpu": (1, Fraction(1)), "fpga": (1, Fraction(1))}) is None
    assert slots.acquire({"gpu": (1, Fraction(1))}) == {"gpu": ["0"]}


def test_profile_zero_comes_from_the_conf() -> None:
    conf = {
        "spark.executor.cores": "2",
        "spark.executor.resource.gpu.amount": "2",
        "spark.task.resource.gpu.amount": "0.3",
    }
    profile = default_profile(conf, task_cpus=1)
    assert profile.id == DEFAULT_PROFILE_ID
    assert profile.custom_executor_resources() == {"gpu": 2}
    assert profile.executor_cores() == 2
    assert profile.task_requirements() == {"gpu": (1, Fraction(3, 10))}


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"spark.task.resource.gpu.amount": "1"}, "executor resource config for: gpu"),
        (
            {"spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1.5"},
            "must be either <= 1.0, or a whole number",
        ),
        ({"spark.executor.resource.gpu.amount": "0.5"}, "Only tasks support fractional"),
        (
            {"spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "2"},
            "needs to be >= the task resource request amount",
        ),
    ],
)
def test_bad_resource_settings_name_the_problem(conf: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_profile(conf, task_cpus=1)


def test_built_profiles_get_increasing_ids_and_keep_their_requests() -> None:
    first = ResourceProfileBuilder().require(TaskResourceRequests().cpus(2)).build
    second = (
        ResourceProfileBuilder()
        .require(ExecutorResourceRequests().cores(4).resource("gpu", 1))
        .require(TaskResourceRequests().resource("gpu", 0.25))
        .build
    )
    assert 0 < first.id < second.id
    assert first.task_only and not second.task_only
    assert first.task_cpus(1) == 2 and second.task_cpus(1) == 1
    assert second.custom_executor_resources() == {"gpu": 1}
    assert second.task_requirements() == {"gpu": (1, Fraction(1, 4))}


def test_stage_level_support_follows_spark() -> None:
    from scheduler.api.resources import check_profile_supported

    task_only = ResourceProfileBuilder().require(TaskResourceRequests().cpus(1)).build
    full = ResourceProfileBuilder().require(ExecutorResourceRequests().cores(1)).build
    check_profile_supported(task_only, "standalone", dynamic_allocation=False)
    with pytest.raises(ValueError, match="TaskResourceProfiles are only supported"):
        check_profile_supported(task_only, "local", dynamic_allocation=False)
    with pytest.raises(ValueError, match="Standalone with dynamic allocation enabled"):
        check_profile_supported(full, "standalone", dynamic_allocation=False)
    check_profile_supported(full, "standalone", dynamic_allocation=True)
    # Spark's testing mode accepts any profile anywhere.
    check_profile_supported(full, "local", dynamic_allocation=False, enforce=False)


def test_testing_mode_is_the_env_variable_or_the_key_unless_refusal_is_asked() -> None:
    from scheduler.api.resources import enforce_profile_support

    assert enforce_profile_support(None, None, refuse_when_testing=False)
    assert not enforce_profile_support("1", None, refuse_when_testing=False)
    assert not enforce_profile_support(None, "true", refuse_when_testing=False)
    assert enforce_profile_support("1", None, refuse_when_testing=True)
