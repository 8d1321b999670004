"""Added files on an executor: safe unpacking, size and hash checks, one fetch per executor.

No processes: a dict of blobs stands in for the driver's file server, and the
executor's "workers" are threads calling `fetch_into` under the executor lock.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from scheduler.executor.filefetch import (
    FETCH_CHUNK,
    FilesManifest,
    fetch_into,
    forget_prepared,
    prepare_task_files,
)
from scheduler.task.archives import UnsafeArchiveError, unpack_archive
from scheduler.task.sparkfiles import (
    FILES_MANIFEST_PROPERTY,
    FILES_ROOT_PROPERTY,
    archive_blob_name,
    blob_name,
    split_alias,
)
from scheduler.task.stagecode import StageCode, dumps_stage, stage_header

# -- archives ---------------------------------------------------------------------------


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o755) << 16 if name.endswith(".sh") else 0
            z.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as t:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            t.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def test_zip_and_tar_unpack_with_modes_and_inner_links(tmp_path: Path) -> None:
    z = _zip(
        tmp_path / "env.zip",
        {"pkg/__init__.py": b"X = 1\n", "bin/run.sh": b"#!/bin/sh\n"},
        links={"bin/python": "run.sh"},
    )
    unpack_archive(str(z), str(tmp_path / "out-zip"))
    assert (tmp_path / "out-zip" / "pkg" / "__init__.py").read_bytes() == b"X = 1\n"
    assert os.access(tmp_path / "out-zip" / "bin" / "run.sh", os.X_OK)
    assert os.readlink(tmp_path / "out-zip" / "bin" / "python") == "run.sh"
    t = _tar(
        tmp_path / "data.tar.gz",
        [
            _member("d", tarfile.DIRTYPE),
            _member("d/a.txt"),
            _member("d/b.txt", tarfile.LNKTYPE, "d/a.txt"),
        ],
        {"d/a.txt": b"hello"},
    )
    unpack_archive(str(t), str(tmp_path / "out-tar"))
    assert (tmp_path / "out-tar" / "d" / "b.txt").read_bytes() == b"hello"
    # A second unpack replaces the tree whole.
    unpack_archive(str(t), str(tmp_path / "out-tar"))
    assert sorted(os.listdir(tmp_path / "out-tar" / "d")) == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    "members,links,pattern",
    [
        ({"../evil.txt": b"x"}, {}, r"\.\."),
        ({"/abs/evil.txt": b"x"}, {}, "absolute"),
        ({"a/../../evil.txt": b"x"}, {}, r"\.\."),
        ({}, {"etc": "/etc"}, "absolute"),
        ({}, {"up": "../.."}, "outside"),
        # A link to the root itself, then one through it: each looks inside on its own.
        ({}, {"self": ".", "sub/esc": "../self/.."}, "outside"),
        # The same chain, then a member written through it (refused before it is written).
        ({"sub/esc/evil.txt": b"x"}, {"self": ".", "sub/esc": "../self/.."}, "through a link"),
    ],
)
def test_hostile_zip_is_refused_and_leaves_nothing(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str], pattern: str
) -> None:
    # Links first, so that a later member is written through one.
    archive = tmp_path / "hostile.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
        for name, data in members.items():
            z.writestr(name, data)
    dest = tmp_path / "box" / "out"
    with pytest.raises(UnsafeArchiveError, match=pattern):
        unpack_archive(str(archive), str(dest))
    assert not dest.exists()
    assert os.listdir(tmp_path / "box") == []  # no staging directory left behind
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "box" / "evil.txt").exists()


def test_hostile_tar_is_refused(tmp_path: Path) -> None:
    cases = [
        ([_member("../evil")], {"../evil": b"x"}, r"\.\."),
        ([_member("/tmp/evil")], {"/tmp/evil": b"x"}, "absolute"),
        ([_member("l", tarfile.SYMTYPE, "/etc/passwd")], {}, "absolute"),
        ([_member("h", tarfile.LNKTYPE, "/etc/passwd")], {}, "absolute|names no file"),
        ([_member("h", tarfile.LNKTYPE, "../../x")], {}, r"\.\."),
        ([_member("fifo", tarfile.FIFOTYPE)], {}, "not a regular file"),
        ([_member("dev", tarfile.CHRTYPE)], {}, "not a regular file"),
        (
            [
                _member("self", tarfile.SYMTYPE, "."),
                _member("sub/esc", tarfile.SYMTYPE, "../self/.."),
                _member("sub/esc/x"),
            ],
            {"sub/esc/x": b"x"},
            "through a link",
        ),
    ]
    for index, (members, data, pattern) in enumerate(cases):
        archive = _tar(tmp_path / f"h{index}.tar", members, data)
        dest = tmp_path / f"out{index}"
        with pytest.raises(UnsafeArchiveError, match=pattern):
            unpack_archive(str(archive), str(dest))
        assert not dest.exists()


def test_unsupported_or_corrupt_archives_say_so(tmp_path: Path) -> None:
    rar = tmp_path / "a.rar"
    rar.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.zip, \.jar, \.tar"):
        unpack_archive(str(rar), str(tmp_path / "o"))
    bad = tmp_path / "a.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        unpack_archive(str(bad), str(tmp_path / "o"))
    good = _tar(tmp_path / "t.tar.gz", [_member("a.txt")], {"a.txt": b"x" * 100_000})
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:-200])  # a truncated download
    with pytest.raises(ValueError, match="corrupt"):
        unpack_archive(str(cut), str(tmp_path / "o"))
    assert not (tmp_path / "o").exists()
    assert split_alias("/x/a.zip#env") == ("/x/a.zip", "env")
    with pytest.raises(ValueError, match="plain file name"):
        split_alias("/x/a.zip#../up")


# -- fetching ---------------------------------------------------------------------------


class _Driver:
    """Blobs by name, as the driver's file server answers them; counts what it sends."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.sent = 0
        self.lock = threading.Lock()

    def read(self, name: str, offset: int, length: int) -> bytes:
        with self.lock:
            self.sent += min(length, len(self.blobs[name]) - offset)
        return self.blobs[name][offset : offset + length]


def _manifest(driver: _Driver, files: dict[str, bytes], archives: dict[str, bytes]) -> str:
    entries = []
    for name, data in files.items():
        driver.blobs[blob_name(name)] = data
        entries.append([name, len(data), hashlib.sha256(data).hexdigest()])
    packed = []
    for alias, data in archives.items():
        driver.blobs[archive_blob_name(alias)] = data
        packed.append(["a.zip", alias, len(data), hashlib.sha256(data).hexdigest()])
    return json.dumps({"files": entries, "py": [], "archives": packed})


def test_each_file_is_fetched_once_per_executor_by_its_workers(tmp_path: Path) -> None:
    driver = _Driver()
    big = os.urandom(FETCH_CHUNK + 1000)  # two chunks
    archive = _zip(tmp_path / "a.zip", {"inside.txt": b"unpacked"}).read_bytes()
    text = _manifest(driver, {"big.bin": big, "small.txt": b"s"}, {"env": archive})
    local_dir = tmp_path / "executor"
    props = {FILES_ROOT_PROPERTY: "/driver/elsewhere", FILES_MANIFEST_PROPERTY: text}
    roots: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        # Each thread is a Python worker of the same executor (same local dir).
        try:
            forget_prepared()
            roots.append(
                prepare_task_files(props, str(local_dir), driver.read)[FILES_ROOT_PROPERTY]
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert set(roots) == {str(local_dir / "files")}
    assert (local_dir / "files" / "big.bin").read_bytes() == big
    assert (local_dir / "files" / "env" / "inside.txt").read_bytes() == b"unpacked"
    assert driver.sent == len(big) + 1 + len(archive)  # once, not once per worker
    # Nothing of the transfer is left beside the files.
    assert sorted(os.listdir(local_dir / "files")) == ["big.bin", "env", "small.txt"]


def test_a_file_whose_hash_does_not_match_is_refused(tmp_path: Path) -> None:
    driver = _Driver()
    text = _manifest(driver, {"data.txt": b"the real bytes"}, {})
    driver.blobs[blob_name("data.txt")] = b"the fake bytes"  # same size, other content
    with pytest.raises(OSError, match="sha256"):
        fetch_into(str(tmp_path / "files"), FilesManifest(text), driver.read, str(tmp_path / "a"))
    assert not (tmp_path / "files" / "data.txt").exists()
    assert os.listdir(tmp_path / "a") == []  # the refused partial file is gone too
    driver.blobs[blob_name("data.txt")] = b"short"
    with pytest.raises(OSError, match=r"no bytes .* at offset 5 of 14"):
        fetch_into(str(tmp_path / "files"), FilesManifest(text), driver.read, str(tmp_path / "a"))


@pytest.mark.parametrize(
    "manifest",
    [
        {"files": [["../x", 1, "0" * 64]]},
        {"files": [["/etc/passwd", 1, "0" * 64]]},
        {"files": [["ok", 1, "nothex"]]},
        {"archives": [["a.zip", "../up", 1, "0" * 64]]},
        {"py": ["a/b.zip"]},
        {"files": "nope"},
    ],
)
def test_manifest_paths_cannot_leave_the_files_directory(manifest: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FilesManifest(json.dumps(manifest))


def test_stage_header_is_read_without_unpickling(tmp_path: Path) -> None:
    class Spec:
        def __init__(self) -> None:
            self.properties = {FILES_MANIFEST_PROPERTY: "{}", FILES_ROOT_PROPERTY: "/r", "x": "y"}

    payload = dumps_stage(Spec())
    assert stage_header(payload) == {FILES_MANIFEST_PROPERTY: "{}", FILES_ROOT_PROPERTY: "/r"}
    assert StageCode(payload).spec().properties["x"] == "y"
    assert stage_header(dumps_stage([1, 2])) == {}
