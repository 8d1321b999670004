"""Fixtures shared by the rpcenv tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rpcenv.tcp._loop as tcp_loop


@pytest.fixture(params=["default", "poll"])
def tcp_poller(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a tcp test with the platform's poller (epoll here), then with `select.poll`.

    The `select.poll` fallback serves where there is no epoll; forced here so that it is
    tested on Linux too. Request it before any fixture that makes an env.
    """
    made: list[object] = []
    original = tcp_loop._make_poller

    def make() -> tcp_loop._Poller:
        poller = tcp_loop._PollPoller() if request.param == "poll" else original()
        made.append(poller)
        return poller

    monkeypatch.setattr(tcp_loop, "_make_poller", make)
    yield request.param
    assert made, "no tcp I/O loop was made under this fixture"
    if request.param == "poll":
        assert all(isinstance(p, tcp_loop._PollPoller) for p in made)
