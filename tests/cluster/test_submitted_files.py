"""Files submitted with a cluster-mode driver: checked, stored by hash, never in a recovery record.

A Master on the local backend with a fake worker: what it persists (FILESYSTEM
recovery), what its LaunchDriver carries, what it refuses; and the worker side,
which writes the files next to the driver and names them in the driver's conf.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Callable

import pytest

from cluster.submitted_files import SUBMITTED_FILES_KEY, place_submitted_files
from cluster.testing import LocalCluster, wait_until
from cluster.worker_runners import SUBMIT_CONF_ENV, driver_launch_spec
from rpcenv import RpcRemoteError
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]
K = pb.SubmittedFileKind


def _desc(*files: pb.SubmittedFile) -> pb.DriverDescription:
    return pb.DriverDescription(
        app_resource="/submitter/app.py", app_content=b"print(1)\n", cores=1, files=list(files)
    )


def _submit(c: LocalCluster, desc: pb.DriverDescription) -> str:
    reply = c.master.ref.ask_sync(api.SubmitDriverRequest(description=desc), 5)
    assert isinstance(reply, api.SubmitDriverResponse)
    return reply.driver_id


def test_contents_go_to_the_store_not_the_recovery_record(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    recovery = tmp_path / "recovery"
    c = local_cluster(
        {"spark.deploy.recoveryMode": "FILESYSTEM", "spark.deploy.recoveryDirectory": str(recovery)}
    )
    helper = b"VALUE = 7\n" * 1000
    driver_id = _submit(
        c,
        _desc(
            pb.SubmittedFile(name="helper.py", kind=K.SUBMITTED_FILE_KIND_PY_FILE, content=helper),
            pb.SubmittedFile(
                name="env.tgz", kind=K.SUBMITTED_FILE_KIND_ARCHIVE, content=b"x", alias="env"
            ),
        ),
    )
    record = (recovery / f"driver_{driver_id}").read_bytes()
    assert helper[:50] not in record  # the record holds the hash and size only
    stored = pb.PersistedDriver.FromString(record).description.files[0]
    assert (stored.sha256, stored.size) == (hashlib.sha256(helper).hexdigest(), len(helper))
    assert (recovery / "submitted-files" / stored.sha256).read_bytes() == helper
    # The LaunchDriver carries the bytes again.
    w = c.worker("w0")
    launch = w.wait_of(pb.LaunchDriver)[0]
    assert [f.content for f in launch.description.files] == [helper, b"x"]
    assert launch.description.files[1].alias == "env"
    # Once the driver ends and no other driver needs them, the copies go.
    w.self_ref.send(pb.DriverStateChanged(driver_id=driver_id, state=pb.DRIVER_STATE_FINISHED))
    wait_until(lambda: not (recovery / "submitted-files" / stored.sha256).exists(), 5, "cleanup")


def test_a_restarted_master_keeps_what_recovered_drivers_need(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    recovery = tmp_path / "recovery"
    c = local_cluster(
        {"spark.deploy.recoveryMode": "FILESYSTEM", "spark.deploy.recoveryDirectory": str(recovery)}
    )
    _submit(c, _desc(pb.SubmittedFile(name="a.txt", kind=K.SUBMITTED_FILE_KIND_FILE, content=b"A")))
    store = recovery / "submitted-files"
    (store / ("f" * 64)).write_bytes(b"left over")  # no driver needs it
    c.restart_master()
    w = c.worker("w0")
    launch = w.wait_of(pb.LaunchDriver)[0]  # the recovered driver, with its file
    assert [f.content for f in launch.description.files] == [b"A"]
    assert sorted(p.name for p in store.iterdir()) == [hashlib.sha256(b"A").hexdigest()]


@pytest.mark.parametrize(
    "entry,pattern",
    [
        (pb.SubmittedFile(name="../x.py", kind=K.SUBMITTED_FILE_KIND_PY_FILE), "plain file name"),
        (pb.SubmittedFile(name="x.py"), "no kind"),
        (
            pb.SubmittedFile(name="a.rar", kind=K.SUBMITTED_FILE_KIND_ARCHIVE, content=b"x"),
            "must end with",
        ),
        (
            pb.SubmittedFile(name="x.txt", kind=K.SUBMITTED_FILE_KIND_FILE, alias="y"),
            "only archives",
        ),
        (
            pb.SubmittedFile(
                name="x.txt", kind=K.SUBMITTED_FILE_KIND_FILE, content=b"a", sha256="0" * 64
            ),
            "hash to",
        ),
        (
            pb.SubmittedFile(name="x.txt", kind=K.SUBMITTED_FILE_KIND_FILE, sha256="1" * 64),
            "holds no file",
        ),
        (pb.SubmittedFile(name="app.py", kind=K.SUBMITTED_FILE_KIND_FILE), "twice"),
        (
            pb.SubmittedFile(name="big.bin", kind=K.SUBMITTED_FILE_KIND_FILE, content=b"x" * 2048),
            "more than the 0.0 MiB",
        ),
    ],
)
def test_bad_submitted_files_are_refused_with_the_reason(
    local_cluster: MakeCluster, entry: pb.SubmittedFile, pattern: str
) -> None:
    c = local_cluster({"spark.sparkctl.submit.maxFilesSize": "1k"})
    with pytest.raises(RpcRemoteError, match=pattern):
        _submit(c, _desc(entry))
    assert c.state().active_drivers == []


def test_the_worker_writes_the_files_and_names_them_in_the_drivers_conf(
    tmp_path: pathlib.Path,
) -> None:
    files = [
        pb.SubmittedFile(
            name="helper.py",
            kind=K.SUBMITTED_FILE_KIND_PY_FILE,
            content=b"V = 1\n",
            source_path="/home/me/lib/helper.py",
        ),
        pb.SubmittedFile(name="deps.zip", kind=K.SUBMITTED_FILE_KIND_PY_FILE, content=b"z"),
        pb.SubmittedFile(name="words.txt", kind=K.SUBMITTED_FILE_KIND_FILE, content=b"a b"),
        pb.SubmittedFile(
            name="env.tgz", kind=K.SUBMITTED_FILE_KIND_ARCHIVE, content=b"t", alias="env"
        ),
    ]
    for f in files:
        f.sha256, f.size = hashlib.sha256(f.content).hexdigest(), len(f.content)
    msg = pb.LaunchDriver(driver_id="driver-1", description=_desc(*files))
    spec = driver_launch_spec(msg, tmp_path, "spark://m:7077")
    where = tmp_path / "driver-1" / "files"
    conf = json.loads(spec.env[SUBMIT_CONF_ENV])
    assert conf["spark.submit.pyFiles"] == f"{where / 'helper.py'},{where / 'deps.zip'}"
    assert conf["spark.files"] == str(where / "words.txt")
    assert conf["spark.archives"] == f"{where / 'env.tgz'}#env"
    assert json.loads(conf[SUBMITTED_FILES_KEY]) == {
        "/home/me/lib/helper.py": str(where / "helper.py")
    }
    assert spec.env["PYTHONPATH"].split(":")[:2] == [str(where), str(where / "deps.zip")]
    assert (where / "words.txt").read_bytes() == b"a b"
    # Bytes that are not those submitted (a Master without its copy sends none) fail the launch.
    files[2].content = b""
    with pytest.raises(ValueError, match="no intact copy"):
        place_submitted_files(files, tmp_path / "again", {})
