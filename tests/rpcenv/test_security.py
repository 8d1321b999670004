"""Shared-secret authentication and TLS on the gRPC backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import trustme
from google.protobuf import wrappers_pb2

from rpcenv import (
    RpcAuthenticationError,
    RpcCallContext,
    RpcConfigError,
    RpcConnectionError,
    RpcEndpoint,
    RpcEnv,
)
from rpcenv._security import AuthVerifier, make_auth_token

SECRET = "hunter2-but-longer-and-unguessable"


class Echo(RpcEndpoint):
    def __init__(self) -> None:
        self.seen = 0

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        self.seen += 1
        context.reply(wrappers_pb2.StringValue(value="ok"))


@pytest.fixture(autouse=True)
def _no_ambient_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)


def test_wrong_secret_is_unauthenticated_logged_and_never_leaked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RpcEnv.create("server", "127.0.0.1", 0, {"spark.authenticate.secret": SECRET})
    echo = Echo()
    server.setup_endpoint("echo", echo)
    intruder = RpcEnv.create("intruder", "127.0.0.1", 0, {"spark.authenticate.secret": "guess"})
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(RpcAuthenticationError) as info:
            intruder.endpoint_ref(server.address, "echo", timeout=5)
        assert "authentication failed" in str(info.value)
        assert echo.seen == 0
        rejected = [
            r.getMessage() for r in caplog.records if "rejected unauthenticated" in r.getMessage()
        ]
        assert rejected and "127.0.0.1" in rejected[0], rejected
        for record in caplog.records:
            assert SECRET not in record.getMessage()
        assert SECRET not in repr(server.conf)
    finally:
        intruder.shutdown()
        server.shutdown()


def test_plain_grpc_client_without_token_gets_unauthenticated() -> None:
    server = RpcEnv.create("server", "127.0.0.1", 0, {"spark.authenticate.secret": SECRET})
    try:
        with grpc.insecure_channel(server.address.host_port) as channel:
            call = channel.stream_stream("/sparkctl.v1.RpcService/Connect")
            with pytest.raises(grpc.RpcError) as info:
                for _ in call(
                    iter([b""]), metadata=[("x-sparkctl-peer", "ab;x;127.0.0.1;0")], timeout=5
                ):
                    pass
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.shutdown()


def test_tokens_are_bound_to_env_and_not_replayable() -> None:
    verifier = AuthVerifier(SECRET.encode())
    token = make_auth_token(SECRET.encode(), "env-a")
    assert verifier.verify(token, "env-b") == "wrong shared secret"
    assert verifier.verify(token, "env-a") is None
    assert verifier.verify(token, "env-a") == "replayed authentication token"
    assert verifier.verify("v1:garbage", "env-a") == "malformed authentication token"
    assert verifier.verify(None, "env-a") == "no authentication token"


@pytest.mark.parametrize("timestamp", ["nan", "NaN", "1e9", "1_800_000_000", " 1", "+1", "9" * 13])
def test_a_timestamp_that_is_not_whole_seconds_is_malformed(timestamp: str) -> None:
    # Signed with the right secret, as a buggy client in another language would: "nan"
    # passed every clock check (a token that never expired) before digits were required.
    from rpcenv._security import _mac

    verifier = AuthVerifier(SECRET.encode())
    token = f"v1:{timestamp}:n1:{_mac(SECRET.encode(), '', timestamp, 'n1')}"
    assert verifier.verify(token, "") == "malformed authentication token"


def test_secret_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    conf = {"spark.authenticate.secret.file": str(path)}
    server = RpcEnv.create("server", "127.0.0.1", 0, conf)
    client = RpcEnv.create(
        "client", "127.0.0.1", 0, {"spark.authenticate.secret": SECRET}, client_mode=True
    )
    try:
        server.setup_endpoint("echo", Echo())
        assert client.endpoint_ref(server.address, "echo", timeout=5)
        with pytest.raises(RpcConfigError, match="cannot read"):
            RpcEnv.create(
                "x", "127.0.0.1", 0, {"spark.authenticate.secret.file": str(tmp_path / "nope")}
            )
    finally:
        client.shutdown()
        server.shutdown()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("sparkctl-client")
    other_ca = trustme.CA()
    files = {
        "ca": root / "ca.pem",
        "server_key": root / "server.key",
        "server_chain": root / "server.pem",
        "client_key": root / "client.key",
        "client_chain": root / "client.pem",
        "other_ca": root / "other.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server_cert.private_key_pem.write_to_path(str(files["server_key"]))
    server_cert.cert_chain_pems[0].write_to_path(str(files["server_chain"]))
    client_cert.private_key_pem.write_to_path(str(files["client_key"]))
    client_cert.cert_chain_pems[0].write_to_path(str(files["client_chain"]))
    other_ca.cert_pem.write_to_path(str(files["other_ca"]))
    yield {k: str(v) for k, v in files.items()}


def _tls_conf(
    pki: dict[str, str], role: str, trust: str = "ca", mutual: bool = False
) -> dict[str, str]:
    conf = {"spark.ssl.rpc.enabled": "true", "spark.ssl.rpc.trustStore": pki[trust]}
    if role == "server" or mutual:
        conf["spark.ssl.rpc.privateKey"] = pki[f"{role}_key"]
        conf["spark.ssl.rpc.certChain"] = pki[f"{role}_chain"]
    if mutual and role == "server":
        conf["spark.ssl.rpc.needClientAuth"] = "true"
    return conf


def test_tls_round_trip_and_untrusted_server(pki: dict[str, str]) -> None:
    server = RpcEnv.create("server", "127.0.0.1", 0, _tls_conf(pki, "server"))
    server.setup_endpoint("echo", Echo())
    good = RpcEnv.create("good", "127.0.0.1", 0, _tls_conf(pki, "client"), client_mode=True)
    wrong_ca = RpcEnv.create(
        "bad", "127.0.0.1", 0, _tls_conf(pki, "client", trust="other_ca"), client_mode=True
    )
    plain = RpcEnv.create("plain", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = good.endpoint_ref(server.address, "echo", timeout=5)
        assert ref.ask_sync(wrappers_pb2.StringValue(value="x"), 5).value == "ok"  # type: ignore[attr-defined]
        for client in (wrong_ca, plain):
            with pytest.raises(RpcConnectionError):
                client.endpoint_ref(server.address, "echo", timeout=5)
    finally:
        for env in (good, wrong_ca, plain, server):
            env.shutdown()


def test_mutual_tls_requires_a_client_certificate(pki: dict[str, str]) -> None:
    server = RpcEnv.create("server", "127.0.0.1", 0, _tls_conf(pki, "server", mutual=True))
    server.setup_endpoint("echo", Echo())
    with_cert = RpcEnv.create(
        "a", "127.0.0.1", 0, _tls_conf(pki, "client", mutual=True), client_mode=True
    )
    without = RpcEnv.create("b", "127.0.0.1", 0, _tls_conf(pki, "client"), client_mode=True)
    try:
        ref = with_cert.endpoint_ref(server.address, "echo", timeout=5)
        assert ref.ask_sync(wrappers_pb2.StringValue(value="x"), 5).value == "ok"  # type: ignore[attr-defined]
        with pytest.raises(RpcConnectionError):
            without.endpoint_ref(server.address, "echo", timeout=5)
    finally:
        for env in (with_cert, without, server):
            env.shutdown()


def test_tls_without_key_is_a_config_error(pki: dict[str, str]) -> None:
    with pytest.raises(RpcConfigError, match=r"spark\.ssl\.rpc\.privateKey"):
        RpcEnv.create("server", "127.0.0.1", 0, {"spark.ssl.rpc.enabled": "true"})


def test_unusable_tls_files_fail_at_create_not_at_the_first_ask(
    pki: dict[str, str], tmp_path: Path
) -> None:
    # A missing trust store left the first ask waiting its whole timeout (the dialling
    # thread died reading it); a file that is not PEM failed at bind time as "address
    # in use", or at handshake time.
    not_pem = tmp_path / "passwd"
    not_pem.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for key, path, says in (
        ("spark.ssl.rpc.trustStore", str(tmp_path / "none.pem"), "cannot read"),
        ("spark.ssl.rpc.trustStore", str(not_pem), "is not PEM"),
    ):
        conf = {**_tls_conf(pki, "client"), key: path}
        with pytest.raises(RpcConfigError, match=says):
            RpcEnv.create("c", "127.0.0.1", 0, conf, client_mode=True)
    for key in ("spark.ssl.rpc.privateKey", "spark.ssl.rpc.certChain"):
        conf = {**_tls_conf(pki, "server"), key: str(not_pem)}
        with pytest.raises(RpcConfigError, match=f"{key} file .* is not PEM"):
            RpcEnv.create("s", "127.0.0.1", 0, conf)
