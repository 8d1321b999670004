"""rpcenv.local_addresses: the route toward the master and Spark's overrides (issue 9)."""

from __future__ import annotations

import socket

import pytest

from rpcenv import LocalAddresses, is_loopback_host, local_addresses, route_address

MASTER = [("127.0.0.1", 7077)]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _routed_non_loopback() -> str | None:
    """A TEST-NET-1 destination's route source on this host, if it has a non-loopback one."""
    routed = route_address("192.0.2.1")
    return routed if routed is not None and not is_loopback_host(routed) else None


def test_route_to_a_loopback_master_is_loopback() -> None:
    assert route_address("127.0.0.1", 7077) == "127.0.0.1"
    assert route_address("localhost", 7077) in ("127.0.0.1", "::1")


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_route_over_ipv6_loopback() -> None:
    assert route_address("::1") == "::1"
    assert route_address("[::1]") == "::1"


def test_no_route_is_none() -> None:
    assert route_address("no-such-host.invalid") is None
    assert route_address("0.0.0.0") is None
    assert route_address("") is None


def test_route_sends_nothing_and_needs_no_listener() -> None:
    # A port nobody listens on: a UDP connect only asks the kernel for a route.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        assert route_address("127.0.0.1", port) == "127.0.0.1"
        held.settimeout(0.05)
        with pytest.raises(TimeoutError):
            held.recv(1)


def test_default_is_the_route_to_the_first_master_that_has_one() -> None:
    addresses = local_addresses([("no-such-host.invalid", 7077), *MASTER], environ={})
    source = "route to the master at 127.0.0.1"
    assert addresses == LocalAddresses("127.0.0.1", "127.0.0.1", source, source)
    assert addresses.from_route


def test_no_master_or_no_route_is_loopback() -> None:
    assert local_addresses([], environ={}).advertise == "127.0.0.1"
    unroutable = local_addresses([("no-such-host.invalid", 7077)], environ={})
    assert (unroutable.advertise, unroutable.bind) == ("127.0.0.1", "127.0.0.1")
    assert not unroutable.from_route and "no route" in unroutable.source


def test_a_remote_master_gives_this_hosts_outgoing_address() -> None:
    routed = _routed_non_loopback()
    if routed is None:
        pytest.skip("this host has no non-loopback route (e.g. a bare network namespace)")
    addresses = local_addresses([("192.0.2.1", 7077)], environ={})
    assert addresses.advertise == addresses.bind == routed and addresses.from_route


@pytest.mark.parametrize(
    ("host", "bind", "environ", "expected"),
    [
        # spark.driver.host first; bind follows it unless bindAddress is given.
        (
            "10.1.1.1",
            None,
            {"SPARK_LOCAL_IP": "10.2.2.2", "SPARK_LOCAL_HOSTNAME": "h"},
            ("10.1.1.1", "10.1.1.1", "spark.driver.host"),
        ),
        ("10.1.1.1", "0.0.0.0", {}, ("10.1.1.1", "0.0.0.0", "spark.driver.host")),
        # SPARK_LOCAL_HOSTNAME is advertised; SPARK_LOCAL_IP is bound.
        (
            None,
            None,
            {"SPARK_LOCAL_IP": "10.2.2.2", "SPARK_LOCAL_HOSTNAME": "h.example"},
            ("h.example", "10.2.2.2", "SPARK_LOCAL_HOSTNAME"),
        ),
        (
            None,
            None,
            {"SPARK_LOCAL_HOSTNAME": "h.example"},
            ("h.example", "h.example", "SPARK_LOCAL_HOSTNAME"),
        ),
        (None, None, {"SPARK_LOCAL_IP": "10.2.2.2"}, ("10.2.2.2", "10.2.2.2", "SPARK_LOCAL_IP")),
        (
            None,
            "127.0.0.1",
            {"SPARK_LOCAL_IP": "10.2.2.2"},
            ("10.2.2.2", "127.0.0.1", "SPARK_LOCAL_IP"),
        ),
        # bindAddress alone changes where it listens, not what it advertises.
        (None, "0.0.0.0", {}, ("127.0.0.1", "0.0.0.0", "route to the master at 127.0.0.1")),
        # Blank values count as unset.
        (
            " ",
            "",
            {"SPARK_LOCAL_IP": " "},
            ("127.0.0.1", "127.0.0.1", "route to the master at 127.0.0.1"),
        ),
    ],
)
def test_overrides_in_sparks_order(
    host: str | None, bind: str | None, environ: dict[str, str], expected: tuple[str, str, str]
) -> None:
    addresses = local_addresses(MASTER, host=host, bind_address=bind, environ=environ)
    assert (addresses.advertise, addresses.bind, addresses.source) == expected


def test_a_wildcard_is_bound_but_never_advertised() -> None:
    addresses = local_addresses(MASTER, host="0.0.0.0", environ={})
    assert addresses.bind == "0.0.0.0"
    assert addresses.advertise == "127.0.0.1"
