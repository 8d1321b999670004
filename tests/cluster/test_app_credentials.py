"""Per-application credentials: a caller holding only app A's credential acts on app A only.

A Master with a shared secret gives each application a credential derived from
the secret (`RegisterApplicationResponse.app_credential`). A client that proves
that credential instead of the secret (an `app1` token) is let in by the Master
only, sees only its application in the cluster state, may kill it and the
cluster-mode driver that registered it, and gets PERMISSION_DENIED for anything
else; a forged credential, or one of another application, is UNAUTHENTICATED.
Both ways in are checked: the RpcEnv (what `sparkctl status/kill` use) and the
public gRPC `MasterService` (what a Node.js client uses). The secret's holder
still sees and controls everything.
"""

from __future__ import annotations

import json
import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.message import Message

from cli._master_client import MasterClient, MasterUnreachableError
from cli._status import kill, status
from cluster.testing import LocalCluster, ProcCluster, wait_until
from cluster.worker_runners import driver_launch_spec, executor_launch_spec
from rpcenv import (
    APP_CREDENTIAL_ENV_VAR,
    APP_ID_ENV_VAR,
    DRIVER_ID_ENV_VAR,
    SECRET_ENV_VAR,
    Conf,
    RpcAuthenticationError,
    RpcConfigError,
    RpcEnv,
    RpcPermissionDeniedError,
    derive_app_credential,
)
from rpcenv._security import AuthVerifier, make_app_auth_token, make_auth_token, token_app_id
from rpcenv.grpc._server import AUTH_METADATA, CONNECT_METHOD, PEER_METADATA
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

SECRET = "app-credentials-test-secret"
GRPC_CONF = {"spark.rpc.backend": "grpc", "spark.authenticate.secret": SECRET}
#: What an application-credential client runs with: the gRPC backend and no secret.
CLIENT_CONF = Conf({"spark.rpc.backend": "grpc", "spark.rpc.askTimeout": "10s"})


@pytest.fixture
def cluster(
    local_cluster: Callable[..., LocalCluster], monkeypatch: pytest.MonkeyPatch
) -> LocalCluster:
    monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    return local_cluster(GRPC_CONF)


def register(
    cluster: LocalCluster, name: str, driver_id: str = ""
) -> pb.RegisterApplicationResponse:
    """Register an application as the admin (the secret's holder) does."""
    reply = (
        cluster.env(client=True)
        .endpoint_ref(cluster.master.ref.address, "Master")
        .ask_sync(
            pb.RegisterApplicationRequest(
                description=pb.ApplicationDescription(name=name, command=pb.Command(argv=["true"])),
                driver_id=driver_id,
            ),
            10.0,
        )
    )
    assert isinstance(reply, pb.RegisterApplicationResponse)
    return reply


def submit_driver(cluster: LocalCluster) -> str:
    """A cluster-mode driver that waits (no workers): something to own and to kill."""
    reply = cluster.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(
                command=pb.Command(argv=["true"]), cores=1, memory_mb=64
            )
        ),
        10.0,
    )
    assert isinstance(reply, api.SubmitDriverResponse) and reply.driver_id
    return reply.driver_id


@pytest.fixture
def apps(cluster: LocalCluster) -> dict[str, tuple[str, str, str]]:
    """Two applications, each registered by a driver of its own: name -> (app, cred, driver)."""
    found = {}
    for name in ("a", "b"):
        driver_id = submit_driver(cluster)
        reply = register(cluster, name, driver_id)
        assert reply.app_credential == derive_app_credential(SECRET.encode(), reply.app_id)
        found[name] = (reply.app_id, reply.app_credential, driver_id)
    return found


@pytest.fixture
def as_app(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str], MasterClient]]:
    """`sparkctl status/kill` clients holding an application's id and credential only."""
    clients: list[MasterClient] = []

    def make(app_id: str, credential: str) -> MasterClient:
        client = MasterClient(cluster.master.url, CLIENT_CONF)
        clients.append(client)
        with monkeypatch.context() as patch:  # read when the client's env is made
            patch.setenv(APP_ID_ENV_VAR, app_id)
            patch.setenv(APP_CREDENTIAL_ENV_VAR, credential)
            client.connect()
        return client

    try:
        yield make
    finally:
        for client in clients:
            client.close()


def test_an_app_credential_sees_and_controls_only_its_application(
    cluster: LocalCluster,
    apps: dict[str, tuple[str, str, str]],
    as_app: Callable[[str, str], MasterClient],
) -> None:
    app_a, cred_a, driver_a = apps["a"]
    app_b, _, driver_b = apps["b"]
    cluster.worker("w-1", cores=2)
    client = as_app(app_a, cred_a)

    state = client.cluster_state()
    assert [a.id for a in state.active_apps] == [app_a]
    assert [d.id for d in state.active_drivers] == [driver_a]
    assert not state.workers and state.cores == 0  # nothing of what others hold
    assert client.driver_status(driver_a).id == driver_a

    for refused in (
        lambda: client.kill_application(app_b),
        lambda: client.kill_application("app-that-does-not-exist"),
        lambda: client.kill_driver(driver_b),
        lambda: client.driver_status(driver_b),
        lambda: client.submit_driver(pb.DriverDescription(command=pb.Command(argv=["true"]))),
    ):
        with pytest.raises(RpcPermissionDeniedError, match=f"application {app_a}"):
            refused()
    ref = client.connect()
    for message in (
        pb.RegisterApplicationRequest(description=pb.ApplicationDescription(name="x")),
        pb.RegisterWorkerRequest(worker_id="w-2", host="127.0.0.1", port=9, cores=1),
        pb.KillExecutorsRequest(app_id=app_b, executor_ids=[0]),
        pb.RequestExecutorsRequest(app_id=app_b, requested_total=0),
    ):
        with pytest.raises(RpcPermissionDeniedError):
            ref.ask_sync(message, 10.0)

    assert client.kill_driver(driver_a).killed
    assert client.kill_application(app_a).killed
    admin = cluster.state()
    assert [a.id for a in admin.active_apps] == [app_b]  # B untouched
    assert [a.id for a in admin.completed_apps] == [app_a]
    assert driver_b in [d.id for d in admin.active_drivers]
    assert [w.id for w in admin.workers] == ["w-1"]


def test_sparkctl_status_and_kill_with_an_app_credential(
    cluster: LocalCluster, apps: dict[str, tuple[str, str, str]]
) -> None:
    app_a, cred_a, _ = apps["a"]
    app_b, _, _ = apps["b"]
    env = {APP_ID_ENV_VAR: app_a, APP_CREDENTIAL_ENV_VAR: cred_a, SECRET_ENV_VAR: None}
    runner = CliRunner()
    shown = runner.invoke(status, ["--master", cluster.master.url], env=env)
    assert shown.exit_code == 0, shown.output
    assert app_a in shown.output and app_b not in shown.output
    refused = runner.invoke(kill, [app_b, "--master", cluster.master.url], env=env)
    assert refused.exit_code != 0
    assert f"the credential of application {app_a} does not allow it" in refused.output
    killed = runner.invoke(kill, [app_a, "--master", cluster.master.url], env=env)
    assert killed.exit_code == 0, killed.output
    assert [a.id for a in cluster.state().active_apps] == [app_b]


def test_the_secret_holder_still_sees_and_controls_everything(
    cluster: LocalCluster, apps: dict[str, tuple[str, str, str]]
) -> None:
    with MasterClient(cluster.master.url, cluster.conf) as admin:
        state = admin.cluster_state()
        assert {a.id for a in state.active_apps} == {apps["a"][0], apps["b"][0]}
        assert admin.kill_driver(apps["b"][2]).killed
        assert admin.kill_application(apps["b"][0]).killed
        assert admin.driver_status(apps["a"][2]).id == apps["a"][2]


def test_forged_and_other_app_credentials_are_unauthenticated(
    cluster: LocalCluster,
    apps: dict[str, tuple[str, str, str]],
    as_app: Callable[[str, str], MasterClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app_a, _, _ = apps["a"]
    _, cred_b, _ = apps["b"]
    for credential in (cred_b, "0" * 64, derive_app_credential(b"another secret", app_a)):
        with pytest.raises(MasterUnreachableError, match="wrong application credential"):
            as_app(app_a, credential).cluster_state()
    monkeypatch.setenv(APP_ID_ENV_VAR, app_a)
    monkeypatch.setenv(APP_CREDENTIAL_ENV_VAR, cred_b)
    env = RpcEnv.create("forger", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
    try:
        with pytest.raises(RpcAuthenticationError, match="wrong application credential"):
            env.endpoint_ref(cluster.master.ref.address, "Master", timeout=10.0)
    finally:
        env.shutdown()


def _public_call(
    target: str, method: str, request: Message, response: type[Message], token: str
) -> Message:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            f"/sparkctl.v1.MasterService/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        reply = call(request, metadata=[(AUTH_METADATA, token)], timeout=10.0)
    assert isinstance(reply, Message)
    return reply


def test_public_master_service_follows_the_same_rule(
    cluster: LocalCluster, apps: dict[str, tuple[str, str, str]]
) -> None:
    target = cluster.master.ref.address.host_port
    app_a, cred_a, driver_a = apps["a"]
    app_b, _, driver_b = apps["b"]

    def as_a() -> str:  # a plain client: no peer metadata, so an empty env id
        return make_app_auth_token(cred_a.encode(), app_a, "")

    state = _public_call(
        target, "GetClusterState", api.GetClusterStateRequest(), api.GetClusterStateResponse, as_a()
    )
    assert isinstance(state, api.GetClusterStateResponse)
    assert [a.id for a in state.active_apps] == [app_a]
    assert [d.id for d in state.active_drivers] == [driver_a]
    for method, request, response in (
        ("KillApplication", api.KillApplicationRequest(app_id=app_b), api.KillApplicationResponse),
        ("KillDriver", api.KillDriverRequest(driver_id=driver_b), api.KillDriverResponse),
        (
            "GetDriverStatus",
            api.GetDriverStatusRequest(driver_id=driver_b),
            api.GetDriverStatusResponse,
        ),
        ("SubmitDriver", api.SubmitDriverRequest(), api.SubmitDriverResponse),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            _public_call(target, method, request, response, as_a())
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
    forged = make_app_auth_token(b"0" * 64, app_a, "")
    with pytest.raises(grpc.RpcError) as caught:
        _public_call(
            target,
            "GetClusterState",
            api.GetClusterStateRequest(),
            api.GetClusterStateResponse,
            forged,
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED

    killed = _public_call(
        target,
        "KillApplication",
        api.KillApplicationRequest(app_id=app_a),
        api.KillApplicationResponse,
        as_a(),
    )
    assert isinstance(killed, api.KillApplicationResponse) and killed.killed
    admin = _public_call(
        target,
        "GetClusterState",
        api.GetClusterStateRequest(),
        api.GetClusterStateResponse,
        make_auth_token(SECRET.encode(), ""),
    )
    assert isinstance(admin, api.GetClusterStateResponse)
    assert [a.id for a in admin.active_apps] == [app_b]


def test_a_worker_lets_an_app_credential_say_only_that_its_executor_registered(
    cluster: LocalCluster, apps: dict[str, tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Worker takes app credentials (its executors hold one), for ExecutorRegistered only."""
    worker = cluster.real_worker(cores=1)
    app_a, cred_a, _ = apps["a"]
    app_b = apps["b"][0]
    monkeypatch.setenv(APP_ID_ENV_VAR, app_a)
    monkeypatch.setenv(APP_CREDENTIAL_ENV_VAR, cred_a)
    env = RpcEnv.create("app-client", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
    try:
        ref = env.endpoint_ref(worker.rpc_env.address, "Worker", timeout=10.0)
        with pytest.raises(RpcPermissionDeniedError, match=app_a):
            ref.ask_sync(pb.GetWorkerStateRequest(), 10.0)
        # Not even its own executors' commands, and nothing of another application.
        for message in (
            pb.KillExecutor(app_id=app_a, executor_id=0),
            pb.ApplicationFinished(app_id=app_b),
            pb.ExecutorRegistered(app_id=app_b, executor_id=0),
        ):
            with pytest.raises(RpcPermissionDeniedError):
                ref.ask_sync(message, 10.0)
    finally:
        env.shutdown()


def test_verifier_accepts_app_tokens_only_when_asked_and_only_for_their_app() -> None:
    secret = b"s3cret"
    credential = derive_app_credential(secret, "app-1").encode()
    master = AuthVerifier(secret, accept_app_tokens=True)
    token = make_app_auth_token(credential, "app-1", "env-9")
    assert master.verify(token, "env-9") is None
    assert token_app_id(token) == "app-1"
    assert master.verify(token, "env-9") == "replayed authentication token"
    assert master.verify(make_app_auth_token(credential, "app-1", "env-9"), "env-8") == (
        "wrong application credential"
    )
    # The credential of app-1 presented as app-2's: the MAC binds the id.
    renamed = make_app_auth_token(credential, "app-2", "env-9")
    assert master.verify(renamed, "env-9") == "wrong application credential"
    assert master.verify("app1:a:b:c:d:e", "") == "malformed authentication token"
    assert master.verify("app1::1:n:m", "") == "malformed authentication token"
    other = AuthVerifier(secret)
    fresh = make_app_auth_token(credential, "app-1", "env-9")
    assert other.verify(fresh, "env-9") == "application credentials are not accepted here"
    assert other.verify(make_auth_token(secret, "env-9"), "env-9") is None
    assert token_app_id(make_auth_token(secret, "env-9")) == ""
    # The credential is neither the secret nor a secret token's MAC key.
    assert credential != secret and derive_app_credential(secret, "app-2").encode() != credential


def test_a_driver_and_an_executor_verify_their_own_application_only() -> None:
    """A driver derives its app's key; an executor holds only that key, and no secret."""
    secret = b"s3cret"
    cred_1 = derive_app_credential(secret, "app-1").encode()
    cred_2 = derive_app_credential(secret, "app-2").encode()
    driver = AuthVerifier(secret, accept_app_tokens=True)
    driver.only_app = "app-1"
    executor = AuthVerifier(None, app=("app-1", cred_1))
    for verifier in (driver, executor):
        assert verifier.verify(make_app_auth_token(cred_1, "app-1", "e"), "e") is None
        other = verifier.verify(make_app_auth_token(cred_2, "app-2", "e"), "e")
        assert other == "only the credential of application app-1 is accepted here"
        forged = verifier.verify(make_app_auth_token(cred_2, "app-1", "e"), "e")
        assert forged == "wrong application credential"
    # The driver still checks the secret (the admin, the Master); the executor cannot.
    assert driver.verify(make_auth_token(secret, "e"), "e") is None
    refused = executor.verify(make_auth_token(secret, "e"), "e")
    assert refused is not None and "only the credential of application app-1" in refused
    with pytest.raises(ValueError, match="needs the secret"):
        AuthVerifier(None)


def test_executors_get_the_credential_in_their_environment_not_argv(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(APP_CREDENTIAL_ENV_VAR, "the worker's own: never passed on")
    msg = pb.LaunchExecutor(
        app_id="app-1",
        executor_id=3,
        app_description=pb.ApplicationDescription(command=pb.Command(argv=["run", "{{APP_ID}}"])),
        cores=1,
        memory_mb=64,
        app_credential="c" * 64,
    )
    spec = executor_launch_spec(msg, tmp_path, "127.0.0.1", "spark://127.0.0.1:1")
    assert spec.env[APP_CREDENTIAL_ENV_VAR] == "c" * 64
    assert spec.env[APP_ID_ENV_VAR] == "app-1"
    assert not any("c" * 64 in arg for arg in spec.argv)
    msg.app_credential = ""
    spec = executor_launch_spec(msg, tmp_path, "127.0.0.1", "spark://127.0.0.1:1")
    assert APP_CREDENTIAL_ENV_VAR not in spec.env


def test_a_cluster_mode_driver_is_told_its_id_to_name_at_registration(
    tmp_path: pathlib.Path,
) -> None:
    launch = pb.LaunchDriver(
        driver_id="driver-1-0001",
        description=pb.DriverDescription(command=pb.Command(argv=["run"])),
    )
    spec = driver_launch_spec(launch, tmp_path, "spark://127.0.0.1:1")
    assert spec.env[DRIVER_ID_ENV_VAR] == "driver-1-0001"


def test_an_app_credential_cannot_claim_a_listening_address(
    cluster: LocalCluster, apps: dict[str, tuple[str, str, str]]
) -> None:
    """Its stream is a client's: the Master's messages to a Worker never go over it."""
    worker = cluster.real_worker(cores=1)
    claimed = worker.rpc_env.address
    app_a, cred_a, _ = apps["a"]
    env_id = uuid.uuid4().hex
    metadata = [
        (PEER_METADATA, f"{env_id};impostor;{claimed.host};{claimed.port}"),
        (AUTH_METADATA, make_app_auth_token(cred_a.encode(), app_a, env_id)),
    ]
    done = threading.Event()

    def nothing() -> Iterator[bytes]:
        done.wait(10.0)
        yield from ()

    master_env = cluster.master.rpc_env
    with grpc.insecure_channel(cluster.master.ref.address.host_port) as channel:
        call = channel.stream_stream(CONNECT_METHOD)(nothing(), metadata=metadata, timeout=10.0)
        try:
            next(call)  # the Master's hello: the stream is open and authenticated
            connections = master_env._connections  # type: ignore[attr-defined]
            ours = [c for c in connections.values() if c.peer_id == env_id]
            assert len(ours) == 1 and ours[0].peer.is_client and ours[0].app_id == app_a
            assert connections.get(claimed) is not ours[0]
        finally:
            done.set()
            call.cancel()


DRIVER_PROGRAM = """
import json, os, sys
from scheduler import SparkConf, SparkContext

conf = SparkConf().set("spark.ui.enabled", "false").set("spark.executor.memory", "256m")
sc = SparkContext(conf=conf)
seen = sc.parallelize([0], 1).map(
    lambda _: [os.environ.get(k, "") for k in ("SPARKCTL_APP_ID", "SPARKCTL_APP_CREDENTIAL")]
).collect()[0]
report = {"app": sc.applicationId, "credential": sc._backend.app_credential, "executor": seen}
with open(sys.argv[1] + ".tmp", "w") as handle:
    json.dump(report, handle)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
import time
time.sleep(120)
"""


def test_a_cluster_mode_driver_and_its_executors_get_the_credential(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end, as processes: the driver's application owns it; its executors get the key."""
    monkeypatch.setenv(SECRET_ENV_VAR, SECRET)  # every process of the cluster inherits it
    conf_args = ProcCluster._conf_args  # and logs everything, to show the key never is
    monkeypatch.setattr(
        ProcCluster, "_conf_args", lambda self: [*conf_args(self), "--log-level", "DEBUG"]
    )
    c = ProcCluster(tmp_path / "cluster", {"spark.worker.timeout": "3"})
    try:
        c.add_worker(cores=2)
        program = tmp_path / "driver.py"
        program.write_text(DRIVER_PROGRAM)
        report_path = tmp_path / "report.json"
        submitted = c.master_ref(c.client_env()).ask_sync(
            api.SubmitDriverRequest(
                description=pb.DriverDescription(
                    app_resource=str(program), app_args=[str(report_path)], memory_mb=128
                )
            ),
            10.0,
        )
        assert isinstance(submitted, api.SubmitDriverResponse)
        wait_until(report_path.exists, 60, "the driver's report")
        report = json.loads(report_path.read_text())
        app_id = report["app"]
        assert report["credential"] == derive_app_credential(SECRET.encode(), app_id)
        # The executor holds it (tests/cluster/test_executor_credentials.py reads its
        # environment); its tasks' Python workers do not: they fetch nothing themselves.
        assert report["executor"] == [app_id, ""]
        # Never logged: not in the daemons' logs nor the driver's and executor's output.
        logs = [p for p in tmp_path.rglob("*") if p.name.endswith((".log", "stdout", "stderr"))]
        text = "".join(p.read_text(errors="replace") for p in logs)
        assert app_id in text and len(logs) >= 4, [str(p) for p in logs]
        assert report["credential"] not in text

        monkeypatch.delenv(SECRET_ENV_VAR)
        monkeypatch.setenv(APP_ID_ENV_VAR, app_id)
        monkeypatch.setenv(APP_CREDENTIAL_ENV_VAR, report["credential"])
        with MasterClient(c.url, CLIENT_CONF) as client:
            state = client.cluster_state()
            assert [a.id for a in state.active_apps] == [app_id]
            assert [d.id for d in state.active_drivers] == [submitted.driver_id]
            assert client.kill_driver(submitted.driver_id).killed
            wait_until(
                lambda: client.driver_status(submitted.driver_id).state == pb.DRIVER_STATE_KILLED,
                30,
                "the driver killed",
            )
    finally:
        c.close()


def test_half_an_app_credential_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV_VAR, raising=False)
    monkeypatch.setenv(APP_ID_ENV_VAR, "app-1")
    monkeypatch.delenv(APP_CREDENTIAL_ENV_VAR, raising=False)
    with pytest.raises(RpcConfigError, match=APP_CREDENTIAL_ENV_VAR):
        RpcEnv.create("half", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
    monkeypatch.setenv(APP_ID_ENV_VAR, "app:1")
    monkeypatch.setenv(APP_CREDENTIAL_ENV_VAR, "c" * 64)
    with pytest.raises(RpcConfigError, match="is not an application id"):
        RpcEnv.create("colon", "127.0.0.1", 0, CLIENT_CONF, client_mode=True)
