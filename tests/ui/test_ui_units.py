"""Pure pieces of the UIs: state names, JSON mapping, formatting, link safety, log paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from _ui_fakes import cluster_state

from cluster.ui import app_state_name, driver_state_name, master_state_json, worker_state_name
from cluster.ui._logs import LogRequestError, log_path, read_log
from sparkctl.v1 import deploy_pb2 as pb
from webui.server import base_url, format_duration, format_mib, format_time_ms


def test_state_names_drop_the_enum_prefix() -> None:
    assert worker_state_name(pb.WORKER_STATE_ALIVE) == "ALIVE"
    assert app_state_name(pb.APPLICATION_STATE_WAITING) == "WAITING"
    assert driver_state_name(pb.DRIVER_STATE_RELAUNCHING) == "RELAUNCHING"
    assert worker_state_name(999) == "UNKNOWN"


def test_master_json_totals_and_driver_fields() -> None:
    doc = master_state_json(cluster_state("http://127.0.0.1:1"))
    assert (doc["cores"], doc["coresused"], doc["memory"], doc["memoryused"]) == (4, 2, 4096, 1024)
    driver = doc["activedrivers"][0]
    assert driver["worker"] == "worker-20261122-0001" and driver["memory"] == 512
    assert doc["completedapps"][0]["state"] == "FINISHED"
    assert "message" not in doc["activeapps"][0]


def test_master_json_says_why_an_app_failed() -> None:
    state = cluster_state("http://127.0.0.1:1")
    state.completed_apps[0].state = pb.APPLICATION_STATE_FAILED
    state.completed_apps[0].message = "executor 9 failed: cannot reach the driver at spark://x"
    doc = master_state_json(state)
    assert doc["completedapps"][0]["message"].endswith("cannot reach the driver at spark://x")


@pytest.mark.parametrize(
    ("mib", "text"), [(300, "300.0 MiB"), (1536, "1.5 GiB"), (3 * 1024 * 1024, "3.0 TiB")]
)
def test_format_mib(mib: int, text: str) -> None:
    assert format_mib(mib) == text


def test_format_time_and_duration() -> None:
    assert format_time_ms(0) == ""
    assert format_time_ms(1_000) == "1970-01-01 00:00:01"
    assert format_duration(950) == "950 ms"
    assert format_duration(5_000) == "5.0 s"
    assert format_duration(12_400) == "12 s"
    assert format_duration(90_000) == "1.5 min"
    assert format_duration(7_200_000) == "2.0 h"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("http://h:8081/", "http://h:8081"),
        ("https://h", "https://h"),
        ("javascript:alert(1)", "#"),
        ("JaVaScRiPt:alert(1)", "#"),
        ("data:text/html,x", "#"),
        ("", "#"),
        ("//evil.example/x", "#"),
    ],
)
def test_base_url(url: str, safe: str) -> None:
    # The cluster's templates' `safe_url` filter: they append a path to the address.
    assert base_url(url) == safe


def test_log_path_default_layout_and_refusals(tmp_path: Path) -> None:
    (tmp_path / "app-1" / "2").mkdir(parents=True)
    (tmp_path / "app-1" / "2" / "stderr").write_text("x" * 10)
    assert (
        log_path(tmp_path, "stderr", "app-1", "2")
        == (tmp_path / "app-1" / "2" / "stderr").resolve()
    )
    with pytest.raises(LogRequestError) as info:
        log_path(tmp_path, "stdout", "app-1", "2")
    assert info.value.status == 404
    with pytest.raises(LogRequestError) as info:
        log_path(tmp_path, "stderr", "..", "2")
    assert info.value.status == 400
    outside = {("app-1", "2"): "/etc"}
    with pytest.raises(LogRequestError) as info:
        log_path(tmp_path, "stderr", "app-1", "2", known_dirs=outside)
    assert info.value.status == 404


def test_read_log_windows(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"0123456789")
    tail = read_log(path, None, 4)
    assert (tail.text, tail.start, tail.end, tail.total) == ("6789", 6, 10, 10)
    assert read_log(path, 2, 3).text == "234"
    assert read_log(path, 50, 3).text == ""
    with pytest.raises(LogRequestError):
        read_log(path, None, -1)
