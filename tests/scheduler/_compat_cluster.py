"""Child process of the compatibility suite: one master or one worker on 127.0.0.1.

Usage:
    python _compat_cluster.py master PORT WORK_DIR
    python _compat_cluster.py worker MASTER_URL CORES MEMORY_MB WORK_DIR

Prints ``READY <master url>`` (master) or ``READY <worker id>`` (worker, once
the master accepted it), then runs until its stdin closes (the parent test
session ending, or dying) and stops. Each master and worker is its own
process, as when users start them with sparkctl. It never binds anything but
127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

REGISTER_TIMEOUT_S = 30.0
USAGE = "usage: _compat_cluster.py master PORT WORK_DIR | worker URL CORES MEMORY_MB WORK_DIR"


def main(argv: list[str]) -> int:
    from cluster.launch import start_master, start_worker
    from rpcenv import Conf

    conf = Conf({"spark.worker.timeout": "10"})
    if len(argv) == 4 and argv[1] == "master":
        handle = start_master(conf, "127.0.0.1", int(argv[2]), Path(argv[3]))
        print("READY", handle.url, flush=True)
    elif len(argv) == 6 and argv[1] == "worker":
        url, cores, memory_mb, work_dir = argv[2], int(argv[3]), int(argv[4]), Path(argv[5])
        worker = start_worker(conf, [url], cores, memory_mb, "127.0.0.1", 0, work_dir)
        if not worker.wait_registered(REGISTER_TIMEOUT_S):
            worker.stop()
            print(f"worker not registered with {url} in {REGISTER_TIMEOUT_S}s", file=sys.stderr)
            return 1
        print("READY", worker.worker_id, flush=True)
        handle = worker  # type: ignore[assignment]
    else:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
