"""UI sign-in (webui.auth) of all four UIs: 401 without a UI credential; the admin
sees everything; an application's credential sees only that application's pages
and its executors' logs (master, worker, application UI, history server)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _ui_fakes import cluster_state, worker_state

from cluster.ui import MasterWebUI, WorkerWebUI, ui_auth
from rpcenv import Conf, derive_app_credential
from scheduler.history.provider import AppEntry, HistoryProvider
from scheduler.history.server import HistoryServer
from scheduler.status.driverui import AppStatusStore, DriverUI
from webui.auth import (
    UIAuth,
    Viewer,
    admin_ui_password,
    app_ui_password,
    parse_authorization,
    sign_in,
)

SECRET = b"correct horse battery staple"
APP = "app-20261122-0000"  # the running application of the fake state
OTHER = "app-20261122-0001"  # the completed one


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


ADMIN = basic("admin", admin_ui_password(SECRET))
AS_APP = basic(APP, app_ui_password(derive_app_credential(SECRET, APP)))
AS_APP_BEARER = f"Bearer {APP}:{app_ui_password(derive_app_credential(SECRET, APP))}"


def get(url: str, authorization: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def auth() -> UIAuth:
    made = ui_auth(Conf({"spark.authenticate.secret": SECRET.decode()}), "test UI")
    assert made is not None
    return made


@pytest.fixture
def signed_worker_ui(tmp_path: Path) -> Iterator[WorkerWebUI]:
    work = tmp_path / "work"
    work.mkdir()
    state = worker_state(work)
    ui = WorkerWebUI(work, "127.0.0.1", 0, lambda: state, auth=auth())
    ui.start()
    try:
        yield ui
    finally:
        ui.stop()


@pytest.fixture
def signed_master_ui(signed_worker_ui: WorkerWebUI) -> Iterator[MasterWebUI]:
    state = cluster_state(signed_worker_ui.url)
    ui = MasterWebUI(lambda: state, "127.0.0.1", 0, auth=auth())
    ui.start()
    try:
        yield ui
    finally:
        ui.stop()


def test_authorization_headers_parse_as_basic_or_bearer() -> None:
    assert parse_authorization(basic("admin", "pw:with:colons")) == ("admin", "pw:with:colons")
    assert parse_authorization("Bearer app-1:abc") == ("app-1", "abc")
    assert parse_authorization("bearer   app-1:abc ") == ("app-1", "abc")
    for bad in (
        None,
        "",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nopassword").decode(),
        "Digest x",
        "Bearer :abc",
        "Bearer app-1:",
    ):
        assert parse_authorization(bad) is None, bad


def test_who_a_credential_proves() -> None:
    checker = auth()
    assert checker.viewer(ADMIN) == Viewer()
    assert checker.viewer(AS_APP) == Viewer(APP) and checker.viewer(AS_APP_BEARER) == Viewer(APP)
    other_password = app_ui_password(derive_app_credential(SECRET, OTHER))
    refused = [
        None,
        basic("admin", "wrong"),
        basic("admin", SECRET.decode()),  # the secret itself is never a UI password
        basic(APP, other_password),  # another application's password under this id
        basic(APP, derive_app_credential(SECRET, APP)),  # the RPC credential is not it
        basic("admin", admin_ui_password(b"another secret")),
        basic("x" * 200, "y"),
    ]
    for header in refused:
        assert checker.viewer(header) is None, header
    assert Viewer(APP).may_see(APP) and not Viewer(APP).may_see(OTHER)
    assert Viewer().admin and Viewer().may_see(OTHER)


def test_sign_in_is_on_exactly_when_there_is_a_secret_unless_switched_off() -> None:
    assert ui_auth(Conf({}), "UI") is None
    off = {"spark.authenticate.secret": "s", "spark.sparkctl.ui.authenticate": "false"}
    assert ui_auth(Conf(off), "UI") is None
    with pytest.raises(ValueError, match=r"spark\.sparkctl\.ui\.authenticate=true needs .*SECRET"):
        ui_auth(Conf({"spark.sparkctl.ui.authenticate": "true"}), "UI")
    with pytest.raises(ValueError, match=r"spark\.sparkctl\.ui\.authenticate"):
        ui_auth(
            Conf({"spark.authenticate.secret": "s", "spark.sparkctl.ui.authenticate": "x"}), "UI"
        )
    assert sign_in(None, False, derive_app_credential, "r") is None


def test_without_a_credential_every_page_is_a_401_that_says_how_to_sign_in(
    signed_master_ui: MasterWebUI, signed_worker_ui: WorkerWebUI
) -> None:
    pages = [
        signed_master_ui.url + path for path in ("/", "/json", "/metrics", f"/app?appId={APP}")
    ]
    pages += [
        signed_worker_ui.url + path
        for path in ("/", "/json", f"/log?appId={APP}&executorId=0&logType=stdout")
    ]
    for url in pages:
        for header in (None, basic("admin", "guess"), basic("admin", SECRET.decode())):
            status, headers, body = get(url, header)
            assert status == 401, (url, status)
            assert headers["WWW-Authenticate"].startswith('Basic realm="sparkctl'), headers
            assert "sparkctl ui-token" in body and "Authorization: Bearer" in body
            assert "hello from executor" not in body and APP not in body


def test_the_admin_sees_everything(
    signed_master_ui: MasterWebUI, signed_worker_ui: WorkerWebUI
) -> None:
    status, _, body = get(signed_master_ui.url + "/json", ADMIN)
    doc = json.loads(body)
    assert status == 200 and len(doc["workers"]) == 2 and len(doc["activedrivers"]) == 1
    assert {a["id"] for a in doc["activeapps"] + doc["completedapps"]} == {APP, OTHER}
    assert get(signed_master_ui.url + "/metrics", ADMIN)[0] == 200
    assert get(signed_master_ui.url + f"/app?appId={OTHER}", ADMIN)[0] == 200
    status, _, body = get(signed_worker_ui.url + "/log?driverId=driver-20261122-0000", ADMIN)
    assert status == 200 and "driver output" in body


def test_an_application_sees_only_its_own_pages_and_logs(
    signed_master_ui: MasterWebUI, signed_worker_ui: WorkerWebUI
) -> None:
    master, worker = signed_master_ui.url, signed_worker_ui.url
    status, _, body = get(master + "/json", AS_APP_BEARER)
    doc = json.loads(body)
    assert status == 200 and [a["id"] for a in doc["activeapps"]] == [APP]
    assert doc["workers"] == [] and doc["completedapps"] == [] and doc["activedrivers"] == []
    assert doc["cores"] == 0  # totals would show what others hold
    status, _, body = get(master + "/", AS_APP)
    assert status == 200 and APP in body and OTHER not in body and "driver-2026" not in body
    status, _, body = get(master + f"/app?appId={APP}", AS_APP)
    assert status == 200 and signed_worker_ui.url in body  # links to its executors' logs
    for url in (master + f"/app?appId={OTHER}", master + "/metrics", worker + "/metrics"):
        status, _, body = get(url, AS_APP)
        assert status == 403 and f"Signed in as application {APP}" in body, (url, body)
    status, _, body = get(worker + "/json", AS_APP)
    doc = json.loads(body)
    assert {e["appid"] for e in doc["executors"] + doc["finishedexecutors"]} == {APP}
    assert doc["drivers"] == [] and doc["finisheddrivers"] == []
    status, _, body = get(worker + f"/log?appId={APP}&executorId=0&logType=stdout", AS_APP)
    assert status == 200 and "hello from executor 0" in body
    status, _, body = get(worker + f"/logPage?appId={APP}&executorId=0", AS_APP)
    assert status == 200 and "hello from executor 0" in body
    for query in (
        f"appId={OTHER}&executorId=3&logType=stdout",
        "driverId=driver-20261122-0000&logType=stdout",
    ):
        for page in ("/log", "/logPage"):
            status, _, body = get(f"{worker}{page}?{query}", AS_APP)
            assert status == 403 and "sign in as admin" in body, (page, query, body)
            assert "driver output" not in body


class _TwoApps(HistoryProvider):
    """A history listing of two applications (their pages are never opened here)."""

    def applications(self) -> list[AppEntry]:
        return [
            AppEntry(app, app, "u", 1, 2, True, 2, "3.5", self.log_dir / app)
            for app in (APP, OTHER)
        ]


def test_the_application_ui_and_the_history_server_sign_in_too(tmp_path: Path) -> None:
    store = AppStatusStore(APP, "signed")
    driver_ui = DriverUI(store, "127.0.0.1", 0, auth=auth())
    history = HistoryServer(_TwoApps(tmp_path), "127.0.0.1", 0, auth=auth())
    as_other = basic(OTHER, app_ui_password(derive_app_credential(SECRET, OTHER)))
    try:
        api = driver_ui.url + "/api/v1/applications"
        assert get(api)[0] == 401
        for header in (ADMIN, AS_APP):
            status, _, body = get(api, header)
            assert status == 200 and APP in body, (header, body)
        status, _, body = get(api, as_other)
        assert status == 403 and f"may not see application {APP}" in body
        listing = history.url + "/api/v1/applications"
        assert get(listing)[0] == 401
        assert {a["id"] for a in json.loads(get(listing, ADMIN)[2])} == {APP, OTHER}
        assert [a["id"] for a in json.loads(get(listing, AS_APP)[2])] == [APP]
        status, _, body = get(history.url + "/", AS_APP)
        assert status == 200 and APP in body and OTHER not in body
        for page in (f"/api/v1/applications/{OTHER}", f"/history/{OTHER}/"):
            status, _, body = get(history.url + page, AS_APP)
            assert status == 403 and "sign in as admin" in body, (page, body)
    finally:
        driver_ui.stop()
        history.stop()


def test_a_drivers_own_ui_asks_for_a_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler import SparkConf, SparkContext

    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    conf = (
        SparkConf()
        .setMaster("local[1]")
        .setAppName("signed-driver")
        .set("spark.authenticate.secret", SECRET.decode())
        .set("spark.ui.port", "0")
    )
    with SparkContext(conf=conf) as sc:
        assert sc.parallelize(range(10), 2).sum() == 45
        app_id = sc.applicationId
        jobs = f"{sc.uiWebUrl.rstrip('/')}/api/v1/applications/{app_id}/jobs"
        assert get(jobs)[0] == 401
        own = basic(app_id, app_ui_password(derive_app_credential(SECRET, app_id)))
        for header in (ADMIN, own):
            status, _, body = get(jobs, header)
            assert status == 200 and len(json.loads(body)) == 1, body
        assert get(jobs, AS_APP)[0] == 403  # another application's token
