"""Child process of the driver benchmark: one sparkctl master or worker on 127.0.0.1.

Usage:
    python bench/_bench_cluster.py master PORT WORK_DIR
    python bench/_bench_cluster.py worker MASTER_URL CORES MEMORY_MB WORK_DIR

Prints ``READY <master url>`` (master) or ``READY <worker id>`` (worker, once
registered), runs until its stdin closes, then stops. It binds only 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

REGISTER_TIMEOUT_S = 30.0
USAGE = "usage: _bench_cluster.py master PORT WORK_DIR | worker URL CORES MEMORY_MB WORK_DIR"


def main(argv: list[str]) -> int:
    from cluster.launch import start_master, start_worker
    from rpcenv import Conf

    conf = Conf({})
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
        sys.stdin.read()  # the parent closes stdin to stop us (EOF also if it dies)
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
