"""Submitted files survive a ZooKeeper failover to a Master with another disk.

With `spark.deploy.recoveryMode=ZOOKEEPER` the leader copies each submitted
file into ZooKeeper (`cluster.zookeeper_files`), in chunks under the znode
limit; a Master elected later, with a work dir of its own, reads them back to
relaunch a supervised driver. Against the real ZooKeeper of `conftest.zookeeper`.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
from collections.abc import Iterator

import pytest
from test_zookeeper_ha import HACluster, ha_conf
from zk_server import ZooKeeperServer, zookeeper_persistence

from cluster.submitted_files import SubmittedFileStore
from cluster.testing import ClusterProcess, wait_until
from cluster.zookeeper_files import CHUNK_BYTES, ZooKeeperFiles
from cluster.zookeeper_persistence import ZooKeeperPersistence
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

K = pb.SubmittedFileKind


@pytest.fixture
def engine(zookeeper: ZooKeeperServer) -> Iterator[ZooKeeperPersistence]:
    with zookeeper_persistence(zookeeper, "files") as persistence:
        yield persistence


def test_files_round_trip_in_chunks_and_a_torn_one_reads_as_absent(
    engine: ZooKeeperPersistence,
) -> None:
    files = engine.file_replica()
    assert isinstance(files, ZooKeeperFiles)
    content = bytes(range(256)) * (5 * CHUNK_BYTES // 256 // 2)  # 2.5 chunks
    digest = hashlib.sha256(content).hexdigest()
    files.put(digest, content)
    files.put(digest, content)  # already there: nothing to do
    node = f"{files.path}/{digest}"
    assert sorted(engine.client.get_children(node)) == ["00000", "00001", "00002"]
    assert all(len(engine.client.get(f"{node}/0000{c}")[0]) <= CHUNK_BYTES for c in "012")
    assert files.get(digest) == content
    assert files.digests() == [digest]
    # A chunk changed behind our back: not served.
    engine.client.set(f"{node}/00001", b"x" * 10)
    assert files.get(digest) is None
    # A leader killed before it marked the file complete: absent, not torn.
    engine.client.set(node, b"")
    assert files.get(digest) is None
    files.put(digest, content)  # written again, whole
    assert files.get(digest) == content
    files.remove(digest)
    files.remove(digest)  # idempotent
    assert files.get(digest) is None and files.digests() == []
    assert files.get(hashlib.sha256(b"never stored").hexdigest()) is None


def _desc(content: bytes = b"", sha256: str = "") -> pb.DriverDescription:
    """A submission of one helper.py: its bytes, or only their hash (held already)."""
    helper = pb.SubmittedFile(
        name="helper.py", kind=K.SUBMITTED_FILE_KIND_PY_FILE, content=content, sha256=sha256
    )
    return pb.DriverDescription(app_resource="/submitter/app.py", files=[helper])


def test_a_store_on_another_disk_reads_what_the_first_stored(
    engine: ZooKeeperPersistence, tmp_path: pathlib.Path
) -> None:
    replica = engine.file_replica()
    first = SubmittedFileStore(tmp_path / "a", 1 << 20, replica, 1 << 20, "zk.key")
    helper = b"VALUE = 'from the submitting host'\n"
    desc = _desc(helper)
    first.accept(desc)
    assert not desc.files[0].content  # only name, hash and size are kept
    second = SubmittedFileStore(tmp_path / "b", 1 << 20, replica, 1 << 20, "zk.key")
    assert second.with_contents(desc).files[0].content == helper
    assert (tmp_path / "b" / desc.files[0].sha256).read_bytes() == helper  # kept on its disk
    # Released by the Master that ends the last driver needing it: gone from ZooKeeper too.
    second.release(desc, [])
    assert replica.get(desc.files[0].sha256) is None
    # A sweep by a newly elected Master drops what none of its drivers needs.
    first.accept(_desc(b"leftover = 1\n"))
    assert SubmittedFileStore(tmp_path / "c", 1 << 20, replica, 1 << 20, "zk.key").sweep([]) == 1
    assert replica.digests() == []


def test_files_over_the_zookeeper_cap_are_refused_naming_the_key(
    engine: ZooKeeperPersistence, tmp_path: pathlib.Path
) -> None:
    store = SubmittedFileStore(
        tmp_path / "a",
        1 << 20,
        engine.file_replica(),
        1000,
        "spark.sparkctl.zookeeper.maxFilesSize",
    )
    with pytest.raises(ValueError, match=r"spark\.sparkctl\.zookeeper\.maxFilesSize"):
        store.accept(_desc(b"x" * 1001))


def test_a_file_named_by_hash_is_copied_to_zookeeper_and_counts_toward_its_cap(
    engine: ZooKeeperPersistence, tmp_path: pathlib.Path
) -> None:
    """Before: a file the Master held since before ZOOKEEPER recovery was on (or that
    ZooKeeper lost) was accepted by hash alone, never copied to ZooKeeper nor counted
    toward its cap: a failover to a Master on another host lost it."""
    helper = b"VALUE = 'stored before ZooKeeper recovery was on'\n"
    digest = hashlib.sha256(helper).hexdigest()
    SubmittedFileStore(tmp_path / "a", 1 << 20).accept(_desc(helper))  # no replica yet
    replica = engine.file_replica()
    assert replica.get(digest) is None
    store = SubmittedFileStore(tmp_path / "a", 1 << 20, replica, 1 << 20, "zk.key")
    by_hash = _desc(sha256=digest)
    store.accept(by_hash)
    assert by_hash.files[0].size == len(helper) and not by_hash.files[0].content
    assert replica.get(digest) == helper
    # A Master elected on another host relaunches the driver with it.
    elsewhere = SubmittedFileStore(tmp_path / "b", 1 << 20, replica, 1 << 20, "zk.key")
    assert elsewhere.with_contents(by_hash).files[0].content == helper
    # ZooKeeper lost it: the next submission by hash copies it again.
    replica.remove(digest)
    store.accept(_desc(sha256=digest))
    assert replica.get(digest) == helper
    # No byte sent, yet over ZooKeeper's cap: refused naming the key, whether the copy
    # is on this Master's disk or only in ZooKeeper.
    key = "spark.sparkctl.zookeeper.maxFilesSize"
    for disk in ("a", "c"):
        capped = SubmittedFileStore(tmp_path / disk, 1 << 20, replica, len(helper) - 1, key)
        with pytest.raises(ValueError, match=re.escape(key)):
            capped.accept(_desc(sha256=digest))
    # A damaged copy on the disk is not what goes to ZooKeeper: its intact copy stays.
    (tmp_path / "a" / digest).write_bytes(b"\0" * len(helper))
    store.accept(_desc(sha256=digest))
    assert replica.get(digest) == helper
    assert (tmp_path / "a" / digest).read_bytes() == helper


APP = """
import pathlib, sys, time
import helper  # only in the submission: a relaunch needs the stored copy

out = pathlib.Path(sys.argv[1])
while not (out / "go").exists():  # the test kills the leader first
    import time; time.sleep(0.05)
failed = out / "failed-once"
if not failed.exists():
    failed.write_text("1")
    sys.exit(3)  # supervised: the new leader relaunches it
# Renamed into place: the test reads it as soon as it exists, never half written.
(out / "done.tmp").write_text(helper.VALUE)
(out / "done.tmp").rename(out / "done")
for _ in range(600):  # running until the test has looked: its end releases the files
    if (out / "exit").exists():
        break
    time.sleep(0.05)
"""


def test_a_supervised_driver_relaunched_after_failover_gets_its_files(
    tmp_path: pathlib.Path, zookeeper: ZooKeeperServer
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    conf = ha_conf(zookeeper, "/sparkctl-files-failover")
    # Not the 2 s session of the failover-time tests: kazoo drops a connection whose
    # ping is unanswered for a third of it, and a leader that loses its connection
    # gives up leadership, so at load ~15 a 2 s session cost the leader its role before
    # the test had submitted. Nothing here is timed: the SIGKILLed leader may hold on 8 s.
    conf["spark.sparkctl.zookeeper.sessionTimeout"] = "8s"
    c = HACluster(tmp_path, conf)
    try:
        leader, standby = c.roles()
        c.add_worker()
        helper = b"VALUE = 'helper from the submitting host'\n"
        desc = pb.DriverDescription(
            app_resource="/submitter/app.py",
            app_content=APP.encode(),
            app_args=[str(out)],
            cores=1,
            memory_mb=256,
            supervise=True,
            files=[
                pb.SubmittedFile(
                    name="helper.py", kind=K.SUBMITTED_FILE_KIND_PY_FILE, content=helper
                )
            ],
        )
        reply = c.ref(leader).ask_sync(api.SubmitDriverRequest(description=desc), 30.0)
        assert isinstance(reply, api.SubmitDriverResponse)
        driver_id = reply.driver_id

        def running_on(master: ClusterProcess) -> bool:
            state = c.state(master)
            return state is not None and any(
                d.id == driver_id and d.state == pb.DRIVER_STATE_RUNNING
                for d in state.active_drivers
            )

        wait_until(lambda: running_on(leader), 30, "the driver RUNNING")
        leader.kill()  # SIGKILL: its disk (its work dir) is no longer anyone's
        wait_until(lambda: c.status(standby) == "MASTER_STATUS_ALIVE", 30, "the standby leading")
        wait_until(lambda: running_on(standby), 30, "the new leader knows the driver")
        (out / "go").write_text("1")  # the driver fails once: the new leader relaunches it
        wait_until(lambda: (out / "done").exists(), 60, "the relaunched driver finished")
        assert (out / "done").read_text() == "helper from the submitting host"
        # It came from ZooKeeper: the new leader keeps it in its own work dir now.
        digest = hashlib.sha256(helper).hexdigest()
        fetched = tmp_path / f"master{c.masters.index(standby)}" / "submitted-files" / digest
        assert fetched.read_bytes() == helper
        (out / "exit").write_text("1")
    finally:
        c.close()
