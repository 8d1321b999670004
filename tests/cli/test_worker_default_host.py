"""A worker given no --host listens on its route to the master (loopback next to it)."""

from __future__ import annotations

import click
import pytest

import cli._daemon_cmds as daemon_cmds
from rpcenv import Conf, RpcAddress

MASTER = [RpcAddress("10.1.2.3", 7077)]


def test_a_worker_next_to_its_master_stays_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_cmds, "route_address", lambda host, port: "127.0.0.1")
    assert daemon_cmds._default_worker_host(MASTER, Conf(), {}) == "127.0.0.1"


def test_no_route_means_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_cmds, "route_address", lambda host, port: None)
    assert daemon_cmds._default_worker_host(MASTER, Conf(), {}) == "127.0.0.1"


def test_a_worker_on_another_host_takes_its_route(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, int]] = []

    def route(host: str, port: int) -> str:
        asked.append((host, port))
        return "10.1.2.9"

    monkeypatch.setattr(daemon_cmds, "route_address", route)
    environ = {"SPARKCTL_SECRET": "s"}
    assert daemon_cmds._default_worker_host(MASTER, Conf(), environ) == "10.1.2.9"
    assert asked == [("10.1.2.3", 7077)]
    insecure = Conf({"spark.rpc.allowInsecure": "true"})
    assert daemon_cmds._default_worker_host(MASTER, insecure, {}) == "10.1.2.9"


def test_without_a_secret_the_error_names_it_and_both_ways_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(daemon_cmds, "route_address", lambda host, port: "10.1.2.9")
    with pytest.raises(click.UsageError) as caught:
        daemon_cmds._default_worker_host(MASTER, Conf(), {})
    text = caught.value.format_message()
    assert "10.1.2.9" in text and "SPARKCTL_SECRET" in text and "--allow-insecure" in text
