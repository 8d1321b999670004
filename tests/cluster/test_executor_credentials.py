"""Executors never hold the cluster secret: they prove their application's credential.

One cluster of real processes with a shared secret (a Master, two Workers of
two cores each, all on 127.0.0.1) runs two applications at once: A, whose
client-mode driver is this test process, and B, whose driver is a child
process. Each gets one executor on each Worker. The test reads the
environment of every process the Workers started (/proc/<pid>/environ) and
finds no secret in any, then acts as an attacker holding what one of A's
executors holds (A's id and credential, read from that executor's
environment): it cannot join B's driver as an executor, fetch B's shuffle
blocks, or act as the admin on the Master. A's shuffles still cross between
its executors on the two Workers, with no block relayed by the driver.
"""

from __future__ import annotations

import json
import logging
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from cluster.testing import ProcCluster, descendant_pids, stop_processes, wait_until
from rpcenv import (
    APP_CREDENTIAL_ENV_VAR,
    APP_ID_ENV_VAR,
    SECRET_ENV_VAR,
    RpcAuthenticationError,
    RpcConnectionError,
    RpcEndpoint,
    RpcEnv,
    RpcPermissionDeniedError,
    derive_app_credential,
)
from sparkctl.v1 import deploy_pb2 as dpb
from sparkctl.v1 import master_service_pb2 as api
from sparkctl.v1 import scheduler_pb2 as pb

pytestmark = pytest.mark.timeout(240)

log = logging.getLogger(__name__)

SECRET = "executor-credentials-test-secret"
#: Two one-core executors per application, one on each Worker, every block fetched
#: over the RpcEnv as if the other executor were on another host.
APP_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.cores.max": "2",
    "spark.executor.cores": "1",
    "spark.executor.memory": "256m",
    "spark.executorEnv.SPARKCTL_FORCE_REMOTE_FETCH": "1",
}

#: App B's driver: a shuffle whose blocks stay on its executors, then a report.
DRIVER_B = """
import json, os, sys, time
from scheduler import SparkConf, SparkContext

conf = SparkConf().setMaster(sys.argv[1]).setAppName("app-b")
for key, value in json.loads(sys.argv[3]).items():
    conf.set(key, value)
sc = SparkContext(conf=conf)
deadline = time.monotonic() + 60
while len(sc._scheduler.executors) < 2 and time.monotonic() < deadline:
    time.sleep(0.1)
counts = sc.parallelize(range(1000), 4).map(lambda x: (x % 7, 1)).reduceByKey(lambda a, b: a + b)
assert sorted(counts.collect()) == [(k, len(range(k, 1000, 7))) for k in range(7)]
with sc._scheduler.lock:
    outputs = [o for outs in sc._scheduler.dag.map_outputs.values() for o in outs if o]
report = {
    "app": sc.applicationId,
    "driver": sc._runtime.scheduler_env.address.host_port,
    "backend": type(sc._runtime.scheduler_env).__name__,
    "blocks": [[o.executor_id, o.address, o.path] for o in outputs if o.address],
}
with open(sys.argv[2] + ".tmp", "w") as handle:
    json.dump(report, handle)
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(600)
"""


@pytest.fixture
def cluster(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcCluster]:
    """The Master and two Workers (two cores each) with the secret in their environment."""
    monkeypatch.setenv(SECRET_ENV_VAR, SECRET)  # the daemons and the drivers inherit it
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    monkeypatch.delenv(APP_ID_ENV_VAR, raising=False)
    monkeypatch.delenv(APP_CREDENTIAL_ENV_VAR, raising=False)
    with ProcCluster(
        tmp_path / "cluster", {"spark.worker.timeout": "10"}, workers=2, cores=2, memory="1g"
    ) as c:
        yield c


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment as the kernel holds it (what another process could read)."""
    raw = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def app_b_driver(c: ProcCluster, tmp_path: pathlib.Path) -> tuple[subprocess.Popen[bytes], Any]:
    """Start B's driver as a child process; its report once its shuffle ran."""
    program = tmp_path / "driver_b.py"
    program.write_text(DRIVER_B)
    report = tmp_path / "b.json"
    log_file = (tmp_path / "driver_b.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(program), c.url, str(report), json.dumps(APP_CONF)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log_file.close()

    def ready() -> bool:
        if proc.poll() is not None:
            text = (tmp_path / "driver_b.log").read_text(errors="replace")
            raise AssertionError(f"app B's driver exited {proc.returncode}: {text[-3000:]}")
        return report.exists()

    try:
        wait_until(ready, 90, "app B's driver report")
    except BaseException:
        stop_processes([proc])
        raise
    return proc, json.loads(report.read_text())


def attacker_env(
    monkeypatch: pytest.MonkeyPatch, app_id: str, credential: str, backend: str = "grpc"
) -> RpcEnv:
    """A client holding one application's id and credential, and no secret."""
    with monkeypatch.context() as patch:  # read when the env is made
        patch.delenv(SECRET_ENV_VAR)
        patch.setenv(APP_ID_ENV_VAR, app_id)
        patch.setenv(APP_CREDENTIAL_ENV_VAR, credential)
        return RpcEnv.create(
            "attacker",
            "127.0.0.1",
            0,
            {"spark.rpc.askTimeout": "10s", "spark.rpc.backend": backend},
            client_mode=True,
        )


def test_executors_hold_their_apps_credential_only_and_cannot_reach_another_app(
    cluster: ProcCluster, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler import SparkConf, SparkContext

    c = cluster
    driver_b, report_b = app_b_driver(c, tmp_path)
    conf = SparkConf().setMaster(c.url).setAppName("app-a")
    for key, value in APP_CONF.items():
        conf.set(key, value)
    sc = SparkContext(conf=conf)
    attacker: RpcEnv | None = None
    peer_attacker: RpcEnv | None = None
    try:
        app_a, app_b = sc.applicationId, report_b["app"]
        wait_until(lambda: len(sc._scheduler.executors) == 2, 60, "A's two executors")

        # A's jobs run, their shuffles crossing between its executors on both Workers.
        words = sc.parallelize([f"w{i % 37}" for i in range(20_000)], 4)
        counts = dict(words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 3).collect())
        assert counts == {f"w{k}": len(range(k, 20_000, 37)) for k in range(37)}
        pairs = [((i * 7919) % 50_021, i) for i in range(30_000)]
        assert sc.parallelize(pairs, 4).sortByKey(True, 3).collect() == sorted(pairs)
        assert sc._endpoint.relayed_fetches == 0  # executor to executor, credential to credential
        state = c.state()
        apps = {a.id: a for a in state.active_apps}
        assert {e.worker_id for e in apps[app_a].executors} == {w.id for w in state.workers}
        assert {e.worker_id for e in apps[app_b].executors} == {w.id for w in state.workers}

        # No process a Worker started holds the secret in its environment: executors
        # and their Python workers, of both applications.
        started = [p for w in c.workers for p in descendant_pids(w.pid)]
        executors: dict[str, list[int]] = {app_a: [], app_b: []}
        workers: list[int] = []
        for pid in started:
            try:
                environ = environ_of(pid)
            except OSError:
                continue  # a Python worker that just ended
            assert SECRET_ENV_VAR not in environ and "SPARKCTL_SECRET_FILE" not in environ
            assert not any(SECRET in value for value in environ.values()), pid
            assert SECRET not in pathlib.Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            app_id = environ.get(APP_ID_ENV_VAR, "")
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"scheduler.executor" in cmdline:  # the executor: its application's key
                expected = derive_app_credential(SECRET.encode(), app_id)
                assert environ.get(APP_CREDENTIAL_ENV_VAR) == expected, pid
                executors[app_id].append(pid)
            else:  # a Python worker running its tasks: not even that
                assert APP_CREDENTIAL_ENV_VAR not in environ, pid
                workers.append(pid)
        assert len(executors[app_a]) == 2 and len(executors[app_b]) == 2, executors
        assert workers
        log.warning(
            "environments read: %d executors and %d Python workers, 0 with the secret",
            sum(map(len, executors.values())),
            len(workers),
        )

        # The attacker holds what one of A's executors holds: its environment.
        stolen = environ_of(executors[app_a][0])
        attacker = attacker_env(monkeypatch, stolen[APP_ID_ENV_VAR], stolen[APP_CREDENTIAL_ENV_VAR])
        # Drivers and their executors speak tcp with each other (no TLS here); the
        # Master and the Workers gRPC: the attacker tries each in its own language.
        assert report_b["backend"] == "TcpRpcEnv"
        peer_attacker = attacker_env(
            monkeypatch, stolen[APP_ID_ENV_VAR], stolen[APP_CREDENTIAL_ENV_VAR], "tcp"
        )
        refusals = []

        # It cannot join B's driver as an executor of B: B's driver refuses A's credential.
        with pytest.raises(
            RpcAuthenticationError, match=f"only the credential of application {app_b}"
        ):
            ref = peer_attacker.endpoint_ref(
                f"spark://CoarseGrainedScheduler@{report_b['driver']}", timeout=10.0
            )
            ref.ask_sync(
                pb.RegisterExecutorRequest(
                    executor_id="99", hostname="127.0.0.1", cores=1, app_id=app_b
                ),
                10.0,
            )
        refusals.append("register with B's driver")

        # It cannot fetch B's blocks from B's executors.
        assert report_b["blocks"], report_b
        fetched_from = set()
        for executor_id, address, path in report_b["blocks"]:
            if address in fetched_from:
                continue
            fetched_from.add(address)
            with pytest.raises(RpcAuthenticationError, match="only the credential of application"):
                owner = peer_attacker.endpoint_ref(f"spark://Executor@{address}", timeout=10.0)
                owner.ask_sync(
                    pb.FetchBlockRequest(executor_id=executor_id, path=path + ".index", length=16),
                    10.0,
                )
            refusals.append(f"fetch B's block at {address}")
        assert len(fetched_from) == 2

        # Nor can it act as the admin on the Master (its own application only).
        master = c.master_ref(attacker)
        for request in (
            api.KillApplicationRequest(app_id=app_b),
            api.SubmitDriverRequest(
                description=dpb.DriverDescription(app_resource="x.py", cores=1, memory_mb=64)
            ),
            dpb.RegisterApplicationRequest(
                description=dpb.ApplicationDescription(
                    name="evil", command=dpb.Command(argv=["true"])
                )
            ),
            dpb.RequestExecutorsRequest(app_id=app_a, requested_total=8),
        ):
            with pytest.raises(RpcPermissionDeniedError):
                master.ask_sync(request, 10.0)
            refusals.append(type(request).__name__)
        seen = master.ask_sync(api.GetClusterStateRequest(), 10.0)
        assert isinstance(seen, api.GetClusterStateResponse)
        assert [a.id for a in seen.active_apps] == [app_a] and not seen.workers

        # Nor reach a Worker other than to say its executor registered.
        worker = attacker.endpoint_ref(str(c.workers[0].info["url"]), timeout=10.0)
        for message in (dpb.GetWorkerStateRequest(), dpb.ApplicationFinished(app_id=app_b)):
            with pytest.raises(RpcPermissionDeniedError):
                worker.ask_sync(message, 10.0)
            refusals.append(f"Worker {type(message).__name__}")
        log.warning("attacker with A's executor environment: %d refusals", len(refusals))

        # B is untouched and A still runs jobs.
        assert {a.id for a in c.state().active_apps} == {app_a, app_b}
        assert sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).groupByKey().count() == 3
    finally:
        for env in (attacker, peer_attacker):
            if env is not None:
                env.shutdown()
        sc.stop()
        stop_processes([driver_b])


def test_an_executor_env_with_only_a_credential_refuses_the_secret_and_other_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An executor's block server, in one process: its app's credential only."""
    secret = b"local-secret"
    cred_a = derive_app_credential(secret, "app-a")
    cred_b = derive_app_credential(secret, "app-b")
    envs: list[RpcEnv] = []
    with monkeypatch.context() as patch:
        patch.delenv(SECRET_ENV_VAR, raising=False)
        patch.delenv("SPARKCTL_SECRET_FILE", raising=False)
        patch.setenv(APP_ID_ENV_VAR, "app-a")
        patch.setenv(APP_CREDENTIAL_ENV_VAR, cred_a)
        server = RpcEnv.create("sparkExecutor", "127.0.0.1", 0, {"spark.rpc.backend": "grpc"})
        envs.append(server)
        same_app = RpcEnv.create("peer", "127.0.0.1", 0, {}, client_mode=True)
        envs.append(same_app)
        patch.setenv(APP_ID_ENV_VAR, "app-b")
        patch.setenv(APP_CREDENTIAL_ENV_VAR, cred_b)
        other_app = RpcEnv.create("other", "127.0.0.1", 0, {}, client_mode=True)
        envs.append(other_app)
        patch.delenv(APP_ID_ENV_VAR)
        patch.delenv(APP_CREDENTIAL_ENV_VAR)
        admin = RpcEnv.create(
            "admin",
            "127.0.0.1",
            0,
            {"spark.authenticate.secret": secret.decode()},
            client_mode=True,
        )
        envs.append(admin)
    try:
        server.setup_endpoint("Echo", RpcEndpoint())
        assert same_app.endpoint_ref(server.address, "Echo", timeout=10.0) is not None
        with pytest.raises((RpcAuthenticationError, RpcConnectionError), match="app-a"):
            other_app.endpoint_ref(server.address, "Echo", timeout=10.0)
        with pytest.raises(
            (RpcAuthenticationError, RpcConnectionError), match="not the cluster secret"
        ):
            admin.endpoint_ref(server.address, "Echo", timeout=10.0)
    finally:
        for env in envs:
            env.shutdown()


HIDE_PROBE = """
import ctypes, subprocess, sys
from rpcenv import hide_process_environment

libc = ctypes.CDLL(None)
before = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
hidden = hide_process_environment()
after = libc.prctl(3, 0, 0, 0, 0)
child = subprocess.run(
    [sys.executable, "-c", "import ctypes; print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"],
    capture_output=True, text=True, check=True,
).stdout.strip()
print(before, hidden, after, child)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_process_holding_the_secret_hides_its_environment_not_its_childrens() -> None:
    """Workers and cluster-mode drivers turn non-dumpable: same-user tasks cannot read them.

    (Reading is refused to other processes of the same user, not to root, so the
    refusal itself is checked where hosts have users of their own: tests/multihost.)
    """
    result = subprocess.run(
        [sys.executable, "-c", HIDE_PROBE], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "0", "1"]
