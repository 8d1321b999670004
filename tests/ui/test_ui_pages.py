"""The web UIs over HTTP: pages, escaping, /json field names, /metrics, safe logs."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from _ui_fakes import EVIL
from prometheus_client.parser import text_string_to_metric_families

from cluster.ui import MasterWebUI, WorkerWebUI

SPARK_MASTER_FIELDS = {
    "url",
    "workers",
    "aliveworkers",
    "cores",
    "coresused",
    "memory",
    "memoryused",
    "activeapps",
    "completedapps",
    "activedrivers",
    "completeddrivers",
    "status",
}
SPARK_WORKER_FIELDS = {
    "id",
    "host",
    "port",
    "webuiaddress",
    "cores",
    "coresused",
    "coresfree",
    "memory",
    "memoryused",
    "memoryfree",
    "state",
    "lastheartbeat",
}
SPARK_APP_FIELDS = {"id", "name", "cores", "memoryperexecutor", "state", "starttime", "duration"}
SPARK_DRIVER_FIELDS = {"id", "state", "worker", "cores", "memory"}


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_master_page_lists_workers_apps_drivers(master_ui: MasterWebUI) -> None:
    status, ctype, body = get(master_ui.url + "/")
    assert status == 200 and ctype.startswith("text/html")
    assert "worker-20261122-0001" in body and "worker-20261122-0002" in body
    assert "app-20261122-0000" in body and "driver-20261122-0000" in body
    assert "Running Applications (1)" in body and "Completed Applications (1)" in body


def test_user_text_is_escaped_and_bad_links_neutralised(master_ui: MasterWebUI) -> None:
    _, _, body = get(master_ui.url + "/")
    assert EVIL not in body
    assert "&lt;script&gt;" in body
    assert "javascript:" not in body


def test_master_json_uses_spark_field_names(master_ui: MasterWebUI) -> None:
    status, ctype, body = get(master_ui.url + "/json")
    assert status == 200 and ctype == "application/json"
    doc = json.loads(body)
    assert set(doc) >= SPARK_MASTER_FIELDS
    assert set(doc["workers"][0]) >= SPARK_WORKER_FIELDS
    assert set(doc["activeapps"][0]) >= SPARK_APP_FIELDS
    assert set(doc["activedrivers"][0]) >= SPARK_DRIVER_FIELDS
    worker = doc["workers"][0]
    assert (worker["state"], worker["memory"], worker["memoryfree"], worker["coresfree"]) == (
        "ALIVE",
        4096,
        3072,
        2,
    )
    assert doc["status"] == "ALIVE"
    assert doc["activeapps"][0]["state"] == "RUNNING"
    assert doc["activeapps"][0]["name"] == EVIL  # JSON carries it verbatim; only HTML escapes


def test_app_page_links_executor_logs(master_ui: MasterWebUI, worker_ui: WorkerWebUI) -> None:
    status, _, body = get(master_ui.url + "/app/?appId=app-20261122-0000")
    assert status == 200
    expected = (
        f"{worker_ui.url}/logPage/?appId=app-20261122-0000&amp;executorId=0&amp;logType=stdout"
    )
    assert expected in body
    status, _, _ = get(master_ui.url + "/app/?appId=nope")
    assert status == 404


def test_metrics_are_prometheus_text(master_ui: MasterWebUI, worker_ui: WorkerWebUI) -> None:
    status, ctype, body = get(master_ui.url + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples[("sparkctl_master_up", ())] == 1
    assert samples[("sparkctl_master_workers", (("state", "ALIVE"),))] == 1
    assert samples[("sparkctl_master_workers", (("state", "DEAD"),))] == 1
    assert samples[("sparkctl_master_cores_used", ())] == 2
    assert ("process_resident_memory_bytes", ()) in samples
    _, _, body = get(worker_ui.url + "/metrics")
    names = {f.name for f in text_string_to_metric_families(body)}
    assert {"sparkctl_worker_cores", "sparkctl_worker_executors", "sparkctl_worker_up"} <= names


def test_worker_page_and_json(worker_ui: WorkerWebUI) -> None:
    status, _, body = get(worker_ui.url + "/")
    assert status == 200
    assert "Running Executors (1)" in body and "Finished Executors (1)" in body
    assert "logPage/?appId=app-20261122-0000&amp;executorId=0&amp;logType=stderr" in body
    doc = json.loads(get(worker_ui.url + "/json")[2])
    assert {
        "id",
        "masterurl",
        "masterwebuiurl",
        "cores",
        "coresused",
        "memory",
        "memoryused",
        "executors",
        "finishedexecutors",
    } <= set(doc)
    assert doc["executors"][0]["appid"] == "app-20261122-0000"


def test_log_page_escapes_and_raw_is_plain_text(worker_ui: WorkerWebUI) -> None:
    status, _, body = get(
        worker_ui.url + "/logPage/?appId=app-20261122-0000&executorId=0&logType=stdout"
    )
    assert status == 200
    assert "hello from executor 0" in body
    assert EVIL not in body and "&lt;script&gt;" in body
    status, ctype, body = get(
        worker_ui.url + "/log/?appId=app-20261122-0000&executorId=0&logType=stdout"
    )
    assert status == 200 and ctype.startswith("text/plain")
    assert EVIL in body
    status, _, body = get(worker_ui.url + "/logPage/?driverId=driver-20261122-0000&logType=stdout")
    assert status == 200 and "driver output" in body


def test_log_chunks(worker_ui: WorkerWebUI) -> None:
    url = worker_ui.url + "/log/?appId=app-20261122-0000&executorId=0&logType=stdout"
    assert get(url + "&offset=6&byteLength=4")[2] == "from"
    assert get(url + "&offset=-1")[0] == 400
    assert get(url + "&byteLength=abc")[0] == 400


@pytest.mark.parametrize(
    "query",
    [
        "appId=..&executorId=..&logType=stdout",
        "appId=app-20261122-0000&executorId=0&logType=../../etc/passwd",
        "appId=/etc&executorId=passwd&logType=stdout",
        "appId=app-20261122-0000&executorId=0%2F..%2F..&logType=stdout",
        "driverId=../../../etc&logType=stdout",
        "appId=app-20261122-0000&logType=stdout",
        "appId=app-20261122-0000&executorId=9&logType=stdout",
    ],
)
def test_log_path_traversal_refused(worker_ui: WorkerWebUI, query: str) -> None:
    status, _, body = get(worker_ui.url + "/log/?" + query)
    assert status in (400, 404)
    assert "root:" not in body


def test_symlink_out_of_work_dir_refused(tmp_path: Path) -> None:
    work = tmp_path / "w"
    (work / "app-1" / "0").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, work / "app-1" / "0" / "stdout")
    ui = WorkerWebUI(work, "127.0.0.1", 0, None)
    ui.start()
    try:
        status, _, body = get(ui.url + "/log/?appId=app-1&executorId=0&logType=stdout")
        assert status == 404 and "top secret" not in body
    finally:
        ui.stop()


def test_unavailable_state_gives_503_not_500(tmp_path: Path) -> None:
    def broken() -> object:
        raise TimeoutError("no answer in 10 s")

    ui = MasterWebUI(broken, "127.0.0.1", 0)  # type: ignore[arg-type]
    ui.start()
    try:
        status, _, body = get(ui.url + "/")
        assert status == 503 and "no answer" in body
        assert get(ui.url + "/json")[0] == 503
        assert "sparkctl_master_up 0.0" in get(ui.url + "/metrics")[2]
        assert get(ui.url + "/nothing")[0] == 404
    finally:
        ui.stop()


def test_busy_port_moves_to_the_next(master_ui: MasterWebUI) -> None:
    taken = master_ui.port
    ui = MasterWebUI(lambda: None, "127.0.0.1", taken, max_retries=3)  # type: ignore[arg-type,return-value]
    try:
        assert ui.port != taken and taken < ui.port <= taken + 3
    finally:
        ui.stop()
    with pytest.raises(OSError, match="in use"):
        MasterWebUI(lambda: None, "127.0.0.1", taken, max_retries=0)  # type: ignore[arg-type,return-value]


def test_a_restarted_ui_gets_its_port_back_while_old_connections_linger() -> None:
    # A killed or restarted master leaves its scrapers' connections in TIME_WAIT on
    # the UI port for a minute; the new master's UI moved to the next port (the
    # worker UI's 8081) until SO_REUSEADDR, which still refuses a live listener.
    ui = MasterWebUI(lambda: None, "127.0.0.1", 0)  # type: ignore[arg-type,return-value]
    ui.start()
    port = ui.port
    try:
        for _ in range(3):
            assert get(ui.url + "/nothing")[0] == 404  # the server closes: its side lingers
    finally:
        ui.stop()
    again = MasterWebUI(lambda: None, "127.0.0.1", port, max_retries=3)  # type: ignore[arg-type,return-value]
    try:
        assert again.port == port
    finally:
        again.stop()


def test_a_silent_connection_is_closed_and_frees_its_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each connection holds a thread: one that never finishes its request (or a browser's
    # idle keep-alive) held it for good.
    from webui import server

    assert 0 < server._RequestHandler.timeout <= 60
    monkeypatch.setattr(server._RequestHandler, "timeout", 0.3)
    ui = MasterWebUI(lambda: None, "127.0.0.1", 0)  # type: ignore[arg-type,return-value]
    ui.start()
    try:
        with socket.create_connection(("127.0.0.1", ui.port), timeout=10) as silent:
            silent.sendall(b"GET / HTTP/1.1\r\n")  # and nothing more
            started = time.monotonic()
            assert silent.recv(1024) == b""
            assert time.monotonic() - started < 5
        assert get(ui.url + "/nothing")[0] == 404
    finally:
        ui.stop()


def test_an_ipv6_host_is_served() -> None:
    # HTTPServer is IPv4 only: --host ::1 failed ("Address family for hostname not supported").
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    ui = MasterWebUI(lambda: None, "::1", 0)  # type: ignore[arg-type,return-value]
    ui.start()
    try:
        assert ui.url.startswith("http://[::1]:")
        assert get(ui.url + "/nothing")[0] == 404
    finally:
        ui.stop()


def test_security_headers(master_ui: MasterWebUI) -> None:
    with urllib.request.urlopen(master_ui.url + "/", timeout=10) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
