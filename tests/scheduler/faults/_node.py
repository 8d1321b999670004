"""Child process of the fault tests: one Master or one Worker, in a process of its own.

Usage: ``python _node.py master PORT WORK_DIR`` or
``python _node.py worker MASTER_URL WORK_DIR``. Prints ``READY <url>`` once
listening (a worker: once registered), then runs until stdin closes or it is
killed. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from cluster.launch import start_master, start_worker
    from rpcenv import Conf

    role, target, work_dir = argv[1], argv[2], Path(argv[3])
    conf = Conf({"spark.worker.timeout": "5"})
    if role == "master":
        handle = start_master(conf, "127.0.0.1", int(target), work_dir)
        print("READY", handle.url, flush=True)
    else:
        worker = start_worker(conf, [target], 1, 1024, "127.0.0.1", 0, work_dir)
        if not worker.wait_registered(30.0):
            print("FAILED not registered", flush=True)
            worker.stop()
            return 1
        handle = worker  # type: ignore[assignment]
        print("READY", worker.url, flush=True)
    try:
        sys.stdin.read()
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
