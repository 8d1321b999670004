"""A cluster of four hosts: master, two workers and a driver, each a machine of its own.

Each host is a network namespace on a private bridge with its own address, its
own uid, its own /tmp and its own Python at a path of its own (see _netns.py).
The driver host holds the application and its files; no other host can see
them. These tests catch every loopback and shared-filesystem assumption:
a driver that advertises 127.0.0.1, a module that travels as a path, an
interpreter path that exists only on the driver's host.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from _netns import Host, Network

from cluster.testing import wait_until

SECRET = "multihost-secret-7c1e"
WORDS = "the quick brown fox jumps over the lazy dog the end"
#: What the app prints for WORDS: count, weighted count and tag of every word.
EXPECTED_COUNTS = {w: WORDS.split().count(w) for w in set(WORDS.split())}

APP = r'''
import json
import os
import socket
import sys
import time
import urllib.request

from rpcenv import derive_app_credential
from scheduler import SparkConf, SparkContext, SparkFiles
from webui.auth import app_ui_password

import helper  # shipped with --py-files; only the submitting host has it

MASTER_IP, EXTRA = sys.argv[1], sys.argv[2]


def where(_index):
    """The address this task's host uses toward the master."""
    time.sleep(0.3)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((MASTER_IP, 9))
    address = probe.getsockname()[0]
    probe.close()
    return address


def weighted(pair):
    with open(SparkFiles.get("weights.txt")) as handle:  # shipped with --files
        weight = int(handle.read())
    return pair[0], pair[1] * weight


def secret_in_reach(_index):
    """Where a task on a worker finds the cluster secret: nowhere, it must say.

    Its own environment, and that of every ancestor it can read (its executor, the
    Worker, which runs as the same user but hides its environment).
    """
    names = ("SPARKCTL_SECRET", "SPARKCTL_SECRET_FILE")
    found = [f"env {name}" for name in names if name in os.environ]
    pid = os.getpid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if b"SPARKCTL_SECRET" in handle.read():
                    found.append(f"/proc/{pid}/environ")
        except OSError:
            pass  # not ours to read: the Worker (non-dumpable), root's processes
        with open(f"/proc/{pid}/status") as handle:
            pid = next(int(line.split()[1]) for line in handle if line.startswith("PPid:"))
    return found


sc = SparkContext(conf=SparkConf().setAppName("multihost-wordcount"))
extra = EXTRA if os.path.exists(EXTRA) else SparkFiles.get(os.path.basename(EXTRA))
sc.addPyFile(extra)
import extra_mod  # added at run time, from a zip only the driver's host has

lines = sc.parallelize([helper.TEXT] * 4, 8)
counts = (
    lines.flatMap(helper.split_words)  # a function of a shipped module, pickled by reference
    .map(lambda word: (word, 1))
    .reduceByKey(lambda a, b: a + b, 4)
    .map(weighted)
    .mapValues(lambda n: n // 4)
    .collect()
)
tags = sorted(set(sc.parallelize(helper.TEXT.split(), 4).map(extra_mod.tag).collect()))
hosts = sorted(set(sc.parallelize(range(8), 8).map(where).collect()))
leaks = sorted(set(sc.parallelize(range(8), 8).flatMap(secret_in_reach).collect()))
# The UI's executors link to their logs on their workers' web UIs, on other hosts.
# With the secret, every UI asks for a sign-in: the application's own UI password
# opens its driver UI and its executors' logs (docs/security.md, "Web UIs").
credential = derive_app_credential(os.environ["SPARKCTL_SECRET"].encode(), sc.applicationId)
sign_in = {"Authorization": f"Bearer {sc.applicationId}:{app_ui_password(credential)}"}
api = f"{sc.uiWebUrl.rstrip('/')}/api/v1/applications/{sc.applicationId}/executors"
with urllib.request.urlopen(urllib.request.Request(api, headers=sign_in), timeout=10) as answer:
    executors = [e for e in json.load(answer) if e["id"] != "driver"]
links = [e["executorLogs"].get("stderr", "") for e in executors]
log_request = urllib.request.Request(links[0], headers=sign_in)
with urllib.request.urlopen(log_request, timeout=10) as answer:
    log_page = answer.status
result = {"counts": dict(counts), "tags": tags, "hosts": hosts, "links": links, "leaks": leaks}
print("RESULT " + json.dumps({**result, "log_page": log_page}))
sc.stop()
'''

HELPER = f"""
TEXT = {WORDS!r}


def split_words(line):
    return line.split()
"""

EXTRA_MOD = """
def tag(word):
    return "tagged-" + word[0]
"""


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _check(result: Any, what: str) -> str:
    assert result.returncode == 0, (
        f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return str(result.stdout)


def _state(driver: Host, master: Host) -> dict[str, Any]:
    result = driver.sparkctl("status", "--master", f"spark://{master.ip}:7077", "--json")
    return json.loads(_check(result, "sparkctl status")) if result.returncode == 0 else {}


def _result_line(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("RESULT "):
            loaded: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return loaded
    raise AssertionError(f"no RESULT line in the app's output:\n{text[-4000:]}")


def _expect_result(result: dict[str, Any], workers: list[Host]) -> None:
    assert result["counts"] == {w: n * 2 for w, n in EXPECTED_COUNTS.items()}
    assert result["tags"] == sorted({"tagged-" + w[0] for w in WORDS.split()})
    # Tasks ran on both workers' hosts, none on the driver's or the master's.
    assert result["hosts"] == sorted(w.ip for w in workers)
    # Every executor links to its stderr on its own worker's web UI, which serves it.
    assert result["links"] and all(
        any(link.startswith(f"http://{w.ip}:8081/logPage/?") for w in workers)
        for link in result["links"]
    ), result["links"]
    assert result["log_page"] == 200
    # No task finds the cluster secret: not in its executor's environment (which holds
    # the application's credential instead), nor in its Worker's.
    assert result["leaks"] == [], result["leaks"]


class Cluster:
    """A master and two workers started with the CLI, each on its host."""

    def __init__(self, net: Network, master_conf: tuple[str, ...] = ()) -> None:
        self.net = net
        self.master = net["master"]
        self.workers = [net["w1"], net["w2"]]
        self.driver = net["drv"]
        self.url = f"spark://{self.master.ip}:7077"
        _check(
            self.master.sparkctl(
                "start-master", "--host", self.master.ip, "--work-dir", "/tmp/work", *master_conf
            ),
            "start-master",
        )
        for worker in self.workers:
            self.start_worker(worker)

    def start_worker(self, worker: Host) -> None:
        # The first worker finds its address itself (its route to the master); the
        # second is told, as SPARK_LOCAL_IP / --host do in Spark.
        host = () if worker is self.workers[0] else ("--host", worker.ip)
        _check(
            worker.sparkctl(
                "start-worker",
                self.url,
                *host,
                # Room for a cluster-mode driver (1 core, 1g) beside an executor.
                "--cores",
                "3",
                "--memory",
                "2g",
                "--work-dir",
                "/tmp/work",
            ),
            f"start-worker on {worker.role}",
        )

    def submit(self, *args: str, timeout: float = 120) -> Any:
        """`sparkctl submit` from the driver's host to this cluster, executors of 512m."""
        return self.driver.sparkctl(
            "submit", "--master", self.url, "--executor-memory", "512m", *args, timeout=timeout
        )

    def worker_states(self) -> dict[str, str]:
        doc = _state(self.driver, self.master)
        states: dict[str, str] = {}
        for worker in doc.get("workers", []):  # a re-registered worker may also be listed DEAD
            if states.get(worker["host"]) != "ALIVE":
                states[worker["host"]] = worker["state"]
        return states

    def place_app_files(self) -> dict[str, str]:
        """The app and its files, in directories of the driver's host only."""
        drv = self.driver
        return {
            "app": drv.write("/tmp/apps/wordcount.py", APP),
            "helper": drv.write("/tmp/libs/helper.py", HELPER),
            "weights": drv.write("/tmp/data/weights.txt", "2\n"),
            "extra": drv.write("/tmp/zips/extra.zip", _zip({"extra_mod.py": EXTRA_MOD})),
        }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Network(["master", "w1", "w2", "drv"], env={"SPARKCTL_SECRET": SECRET}) as net:
        yield Cluster(net, ("--conf", "spark.worker.timeout=6"))


def test_workers_on_their_own_hosts_register(cluster: Cluster) -> None:
    states = wait_until(
        lambda: (s := cluster.worker_states()) and len(s) == 2 and s,
        30,
        "both workers ALIVE",
        interval=0.2,
    )
    assert states == {w.ip: "ALIVE" for w in cluster.workers}


def test_workers_heartbeat_by_udp_across_hosts(cluster: Cluster) -> None:
    """Heartbeat datagrams cross the bridge: no worker is moved back to its stream."""

    def log(worker: Host) -> str:
        return worker.path("/tmp/work/sparkctl-worker.log").read_text(errors="replace")

    wait_until(
        lambda: all("(heartbeats by UDP datagram)" in log(w) for w in cluster.workers),
        30,
        "both workers registered with UDP heartbeats",
        interval=0.2,
    )
    # Heartbeats every 1.5 s (spark.worker.timeout=6): a worker whose datagrams do not
    # arrive is told to use its stream after 3 s.
    time.sleep(4.5)
    for worker in cluster.workers:
        assert "heartbeats on the stream" not in log(worker), log(worker)[-3000:]
    assert cluster.worker_states() == {w.ip: "ALIVE" for w in cluster.workers}


def test_client_mode_driver_on_its_own_host(cluster: Cluster) -> None:
    """No address setting: the driver advertises the address its route to the master uses."""
    files = cluster.place_app_files()
    result = cluster.submit(
        "--py-files",
        files["helper"],
        "--files",
        files["weights"],
        files["app"],
        cluster.master.ip,
        files["extra"],
        timeout=120,
    )
    _expect_result(_result_line(_check(result, "client-mode submit")), cluster.workers)


def test_cluster_mode_driver_on_a_worker(cluster: Cluster) -> None:
    files = cluster.place_app_files()
    submitted = cluster.submit(
        "--deploy-mode",
        "cluster",
        "--py-files",
        files["helper"],
        "--files",
        f"{files['weights']},{files['extra']}",
        files["app"],
        cluster.master.ip,
        files["extra"],
        timeout=60,
    )
    driver_id = _check(submitted, "cluster-mode submit").strip().splitlines()[-1]
    assert re.fullmatch(r"driver-\S+", driver_id), submitted.stdout

    def finished() -> str:
        doc = _state(cluster.driver, cluster.master)
        for driver in doc.get("completeddrivers", []):
            if driver["id"] == driver_id:
                return str(driver["state"])
        return ""

    state = wait_until(finished, 120, f"{driver_id} to finish", interval=1.0)
    outputs = [
        path.read_text(errors="replace")
        for worker in cluster.workers
        for path in worker.path("/tmp/work").glob(f"{driver_id}/std*")
    ]
    assert outputs, f"no output of {driver_id} in either worker's work dir"
    assert state == "FINISHED", "\n".join(outputs)[-4000:]
    _expect_result(_result_line("\n".join(outputs)), cluster.workers)


def test_executors_that_cannot_reach_their_driver_fail_the_app_fast(cluster: Cluster) -> None:
    """A driver that advertises an address nobody can reach fails with it, in seconds."""
    app = cluster.driver.write("/tmp/apps/unreachable.py", TLS_APP)
    unreachable = f"{cluster.driver.ip.rsplit('.', 1)[0]}.99"
    started = time.monotonic()
    result = cluster.submit(
        "--conf",
        f"spark.driver.host={unreachable}",
        "--conf",
        f"spark.driver.bindAddress={cluster.driver.ip}",
        app,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0, result.stdout[-2000:]
    assert unreachable in result.stderr, result.stderr[-3000:]
    print(f"app failed {elapsed:.1f}s after submit: {result.stderr.strip().splitlines()[-1]}")


def test_a_wrong_secret_is_refused(cluster: Cluster) -> None:
    intruder = cluster.driver
    result = intruder.sparkctl(
        "start-worker",
        cluster.url,
        "--host",
        intruder.ip,
        "--work-dir",
        "/tmp/intruder",
        env={"SPARKCTL_SECRET": "not-the-secret"},
        timeout=60,
    )
    assert result.returncode != 0
    assert "authentic" in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr
    assert intruder.ip not in cluster.worker_states()


def test_a_worker_on_another_host_without_a_secret_says_what_it_needs(cluster: Cluster) -> None:
    result = cluster.driver.sparkctl(
        "start-worker", cluster.url, "--work-dir", "/tmp/nosecret", env={"SPARKCTL_SECRET": ""}
    )
    assert result.returncode == 2, result.stderr
    assert "SPARKCTL_SECRET" in result.stderr and cluster.driver.ip in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cut_link_past_the_timeout_and_back(cluster: Cluster) -> None:
    """A worker unplugged past spark.worker.timeout is DEAD; plugged back, it rejoins."""
    worker = cluster.workers[1]
    worker.set_link(False)
    try:
        wait_until(
            lambda: cluster.worker_states().get(worker.ip) == "DEAD",
            60,
            f"{worker.role} DEAD after its link was cut",
            interval=1.0,
        )
    finally:
        worker.set_link(True)
    wait_until(
        lambda: list(cluster.worker_states().values()).count("ALIVE") == 2,
        60,
        f"{worker.role} ALIVE again after its link came back",
        interval=1.0,
    )


TLS_APP = r"""
import sys
from scheduler import SparkContext

sc = SparkContext(appName="multihost-tls")
pairs = sc.parallelize(range(1000), 6).map(lambda n: (n % 7, 1)).reduceByKey(lambda a, b: a + b)
print("RESULT", sorted(pairs.collect()))
sc.stop()
"""


def test_tls_everywhere() -> None:
    """Every port serves TLS with each host's own certificate, at the same path everywhere."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    with Network(["master", "w1", "w2", "drv"], env={"SPARKCTL_SECRET": SECRET}) as net:
        for host in net.hosts.values():
            cert = authority.issue_cert(host.ip)
            host.write("/tmp/tls/ca.pem", authority.cert_pem.bytes())
            host.write("/tmp/tls/chain.pem", b"".join(b.bytes() for b in cert.cert_chain_pems))
            host.write("/tmp/tls/key.pem", cert.private_key_pem.bytes(), mode=0o600)
        tls = (
            "--conf",
            "spark.ssl.rpc.enabled=true",
            "--conf",
            "spark.ssl.rpc.certChain=/tmp/tls/chain.pem",
            "--conf",
            "spark.ssl.rpc.privateKey=/tmp/tls/key.pem",
            "--conf",
            "spark.ssl.rpc.trustStore=/tmp/tls/ca.pem",
        )
        net.env["SPARK_CONF_DIR"] = "/tmp/conf"
        for host in net.hosts.values():
            host.write(
                "/tmp/conf/spark-defaults.conf",
                "".join(f"{tls[i + 1].replace('=', ' ', 1)}\n" for i in range(0, len(tls), 2)),
            )
        cluster = Cluster(net)
        app = cluster.driver.write("/tmp/apps/tls.py", TLS_APP)
        result = cluster.submit(app)
        output = _check(result, "submit over TLS")
        assert "RESULT " + str(sorted((k, len(range(k, 1000, 7))) for k in range(7))) in output
        # A plaintext client is refused by the TLS master.
        plain = cluster.driver.sparkctl(
            "status", "--master", cluster.url, "--conf", "spark.ssl.rpc.enabled=false", timeout=60
        )
        assert plain.returncode != 0
        assert "Traceback" not in plain.stderr


def test_a_driver_without_a_secret_says_what_it_needs() -> None:
    """Without a secret a driver may not listen beyond loopback: one clear error, no hang."""
    with Network(["master", "drv"]) as net:
        master, driver = net["master"], net["drv"]
        _check(
            master.sparkctl(
                "start-master",
                "--host",
                master.ip,
                "--work-dir",
                "/tmp/work",
                env={"SPARKCTL_SECRET": SECRET},
            ),
            "start-master",
        )
        app = driver.write("/tmp/apps/tls.py", TLS_APP)
        result = driver.sparkctl("submit", "--master", f"spark://{master.ip}:7077", app, timeout=60)
        assert result.returncode == 2, result.stderr[-3000:]
        assert "SPARKCTL_SECRET" in result.stderr, result.stderr[-3000:]
        assert driver.ip in result.stderr and "Traceback" not in result.stderr
