"""Submitted files in ZooKeeper against a hostile or confused ZooKeeper client.

Whoever can write the Master's znodes can corrupt a copy; what must hold is that
a corrupt copy is never served, and that submitting the same file again
repairs it instead of trusting a "complete" marker. Against the real ZooKeeper
of `conftest.zookeeper`.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import time
from collections.abc import Iterator

import pytest
from zk_server import ZooKeeperServer, zookeeper_persistence

from cluster.master import Master
from cluster.submitted_files import SubmittedFileStore
from cluster.zookeeper_files import CHUNK_BYTES, ZooKeeperFiles
from cluster.zookeeper_persistence import ZooKeeperPersistence
from rpcenv import Conf, ConfigValueError
from sparkctl.v1 import deploy_pb2 as pb

K = pb.SubmittedFileKind


@pytest.fixture
def engine(zookeeper: ZooKeeperServer) -> Iterator[ZooKeeperPersistence]:
    with zookeeper_persistence(zookeeper, "hostile") as persistence:
        yield persistence


def _stored(engine: ZooKeeperPersistence) -> tuple[ZooKeeperFiles, bytes, str, str]:
    files = engine.file_replica()
    content = bytes(range(256)) * (3 * CHUNK_BYTES // 256 // 2)  # 1.5 chunks
    digest = hashlib.sha256(content).hexdigest()
    files.put(digest, content)
    return files, content, digest, f"{files.path}/{digest}"


def test_resubmitting_repairs_a_chunk_corrupted_under_a_complete_marker(
    engine: ZooKeeperPersistence,
) -> None:
    files, content, digest, node = _stored(engine)
    engine.client.set(f"{node}/00001", b"x" * 10)  # the marker still says complete
    assert files.get(digest) is None  # never served corrupt
    files.put(digest, content)  # the same file submitted again
    assert files.get(digest) == content


def test_resubmitting_repairs_a_deleted_chunk(engine: ZooKeeperPersistence) -> None:
    files, content, digest, node = _stored(engine)
    engine.client.delete(f"{node}/00000")
    assert files.get(digest) is None
    files.put(digest, content)
    assert files.get(digest) == content


def test_a_parent_created_by_another_writer_between_look_and_create_is_no_failure(
    engine: ZooKeeperPersistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = engine.file_replica()
    content = b"helper = 1\n"
    digest = hashlib.sha256(content).hexdigest()
    node = f"{files.path}/{digest}"
    real_get = engine.client.get

    def get_then_race(path: str, *args: object, **kwargs: object) -> object:
        try:
            return real_get(path, *args, **kwargs)  # NoNodeError: not there yet...
        finally:
            if path == node and not engine.client.exists(node):
                engine.client.create(node, b"", makepath=True)  # ...another writer's

    monkeypatch.setattr(engine.client, "get", get_then_race)
    files.put(digest, content)  # neither OSError nor a refused submission
    monkeypatch.undo()
    assert files.get(digest) == content


@pytest.mark.parametrize(
    "marker",
    [b"1 1000000000", b"99999999999999999999 1", b"-1 1", b"1 2 3", b"\xff\xfe", b"nan 1"],
)
def test_a_hostile_marker_reads_as_absent_quickly(
    engine: ZooKeeperPersistence, marker: bytes
) -> None:
    files, _content, digest, node = _stored(engine)
    engine.client.set(node, marker)
    started = time.monotonic()
    assert files.get(digest) is None
    assert time.monotonic() - started < 5.0


def _desc(content: bytes) -> pb.DriverDescription:
    return pb.DriverDescription(
        app_resource="/submitter/app.py",
        files=[
            pb.SubmittedFile(name="helper.py", kind=K.SUBMITTED_FILE_KIND_PY_FILE, content=content)
        ],
    )


@pytest.mark.parametrize("damage", ["same-size", "truncated", "deleted"])
def test_a_damaged_copy_on_the_masters_disk_is_served_from_zookeeper_and_repaired(
    engine: ZooKeeperPersistence, tmp_path: pathlib.Path, damage: str
) -> None:
    """Before: the local bytes were sent unchecked (the Worker then failed the relaunch
    with 'the Master has no intact copy' though ZooKeeper held one), and a same-size
    corrupt file was never rewritten."""
    store = SubmittedFileStore(tmp_path / "a", 1 << 20, engine.file_replica(), 1 << 20, "zk")
    helper = b"VALUE = 'from the submitting host'\n" * 10
    desc = _desc(helper)
    store.accept(desc)
    local = tmp_path / "a" / desc.files[0].sha256
    if damage == "same-size":
        local.write_bytes(b"\0" * len(helper))  # a crash after the rename, before the data
    elif damage == "truncated":
        local.write_bytes(helper[:7])
    else:
        local.unlink()  # deleted while a relaunch reads it
    full = store.with_contents(desc)
    assert full.files[0].content == helper
    assert local.read_bytes() == helper  # kept whole on the disk again


def test_a_damaged_copy_with_no_replica_is_not_sent_as_if_intact(tmp_path: pathlib.Path) -> None:
    store = SubmittedFileStore(tmp_path / "a", 1 << 20)
    desc = _desc(b"x = 1\n")
    store.accept(desc)
    (tmp_path / "a" / desc.files[0].sha256).write_bytes(b"y = 2\n")
    # Left empty: the Worker fails the driver saying the Master has no intact copy.
    assert store.with_contents(desc).files[0].content == b""


@pytest.mark.parametrize(
    "key", ["spark.sparkctl.submit.maxFilesSize", "spark.sparkctl.zookeeper.maxFilesSize"]
)
def test_a_bad_files_size_fails_the_masters_start_naming_the_key(
    tmp_path: pathlib.Path, key: str
) -> None:
    """Before: read only when a driver was submitted or launched; a driver was then
    accepted and left RUNNING with no LaunchDriver ever sent (the exception escaped
    the scheduling round)."""
    with pytest.raises(ConfigValueError, match=re.escape(key)):
        Master(Conf({key: "abc"}), tmp_path)


def test_a_driver_ending_while_another_submits_the_same_file_keeps_it(
    engine: ZooKeeperPersistence, tmp_path: pathlib.Path
) -> None:
    """Files are stored off the Master's thread, before the driver is recorded: a
    driver with the same file ending in between released it (disk and ZooKeeper), and
    the new driver was launched without it."""
    store = SubmittedFileStore(tmp_path / "a", 1 << 20, engine.file_replica(), 1 << 20, "zk")
    helper = b"shared = 'deps every job submits'\n"
    first = _desc(helper)
    store.accept(first)  # a driver running with it
    second = _desc(helper)
    store.store(second)  # the same file, stored by the next submission's thread...
    store.release(first, [])  # ...when the first driver ends, before the second is kept
    assert store.with_contents(second).files[0].content == helper
    assert store.replica is not None and store.replica.get(second.files[0].sha256) == helper
    store.stored(second)  # the Master keeps the second driver now: it needs the file
    store.release(second, [])
    assert not (tmp_path / "a" / second.files[0].sha256).exists()
    assert store.replica.get(second.files[0].sha256) is None
