"""Child process of the driver benchmark: a sparkctl master and workers on 127.0.0.1.

Usage: ``python bench/_bench_cluster.py PORT WORK_DIR WORKERS CORES MEMORY_MB``.
Prints ``READY <master url>`` once every worker is registered, runs until its
stdin closes, then stops the workers and the master. It binds only 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

REGISTER_TIMEOUT_S = 30.0


def main(argv: list[str]) -> int:
    from cluster.launch import start_master, start_worker
    from rpcenv import Conf

    port, work_dir = int(argv[1]), Path(argv[2])
    workers_wanted, cores, memory_mb = int(argv[3]), int(argv[4]), int(argv[5])
    conf = Conf({})
    master = start_master(conf, "127.0.0.1", port, work_dir / "master")
    workers = []
    try:
        for i in range(workers_wanted):
            workers.append(
                start_worker(
                    conf, [master.url], cores, memory_mb, "127.0.0.1", 0, work_dir / f"worker-{i}"
                )
            )
        for worker in workers:
            if not worker.wait_registered(REGISTER_TIMEOUT_S):
                print(f"worker not registered after {REGISTER_TIMEOUT_S}s", file=sys.stderr)
                return 1
        print("READY", master.url, flush=True)
        sys.stdin.read()  # the parent closes stdin to stop us (EOF also if it dies)
    finally:
        for worker in workers:
            worker.stop()
        master.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
