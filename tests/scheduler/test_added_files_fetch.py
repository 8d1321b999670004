"""sc.addFile / addPyFile: executors fetch their own copies, never the driver's path.

Executors always fetch every added file from the driver, in chunks, into their own
local dir (as on another host); SPARKCTL_FORCE_REMOTE_FETCH also sends their shuffle
reads through the fetch path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import _compat_support as support
import pytest

pytestmark = pytest.mark.skipif(support.IMPL == "pyspark", reason="sparkctl's own test hook")


def test_workers_that_cannot_see_the_drivers_files_fetch_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scheduler import SparkContext, SparkFiles

    # Executors inherit this: they act as if on another host and fetch every file.
    monkeypatch.setenv("SPARKCTL_FORCE_REMOTE_FETCH", "1")
    sc = support.new_context("local[2]", "compat-files-fetch")
    try:
        assert isinstance(sc, SparkContext)
        assert sc.parallelize(range(2), 2).count() == 2
        big = tmp_path / "big.bin"
        payload = os.urandom((9 << 20) + 123)  # more than one fetch chunk
        big.write_bytes(payload)
        folder = tmp_path / "tree"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "leaf.txt").write_text("leaf\n")
        module = tmp_path / "compat_fetched_module.py"
        module.write_text("VALUE = 42\n")
        sc.addFile(str(big))
        sc.addFile(str(folder), recursive=True)
        sc.addPyFile(str(module))
        driver_root = SparkFiles.getRootDirectory()

        def inspect(_: int) -> tuple[str, bool, str, int]:
            import compat_fetched_module  # type: ignore[import-not-found]

            with open(SparkFiles.get("big.bin"), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            with open(os.path.join(SparkFiles.get("tree"), "sub", "leaf.txt")) as f:
                leaf = f.read()
            root = SparkFiles.getRootDirectory()
            return digest, root != driver_root, leaf, compat_fetched_module.VALUE

        expected = (hashlib.sha256(payload).hexdigest(), True, "leaf\n", 42)
        assert sc.parallelize(range(4), 4).map(inspect).collect() == [expected] * 4
    finally:
        sc.stop()
