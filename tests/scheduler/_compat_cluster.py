"""Child process of the compatibility suite: a master and two workers on 127.0.0.1.

Usage: ``python _compat_cluster.py MASTER_PORT WORK_DIR``. Prints ``READY <master url>``
once both workers are registered, then runs until its stdin closes (the parent
test session ending, or dying), and stops the workers and the master.

It exists so that the cluster lives in its own process (as it does for users)
and the test session can stop all of it by one PID. It never binds anything
but 127.0.0.1.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Each worker offers one core, so the cluster has local[2]'s parallelism.
WORKER_CORES = 1
WORKER_MEMORY_MB = 1024
REGISTER_TIMEOUT_S = 30.0


def main(argv: list[str]) -> int:
    from cluster.launch import start_master, start_worker

    from rpcenv import Conf

    port, work_dir = int(argv[1]), Path(argv[2])
    conf = Conf({"spark.worker.timeout": "10"})
    master = start_master(conf, "127.0.0.1", port, work_dir / "master")
    workers = []
    try:
        for i in range(2):
            worker = start_worker(
                conf,
                [master.url],
                WORKER_CORES,
                WORKER_MEMORY_MB,
                "127.0.0.1",
                0,
                work_dir / f"worker-{i}",
            )
            workers.append(worker)
        for worker in workers:
            worker.wait_registered(REGISTER_TIMEOUT_S)
        print("READY", master.url, flush=True)
        # The parent closes our stdin to stop us; EOF also comes if it dies.
        sys.stdin.read()
    finally:
        for worker in workers:
            worker.stop()
        master.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
