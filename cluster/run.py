"""`python -m cluster.run master|worker ...`: a Master or Worker in the foreground.

A minimal entry point for tests, benchmarks and supervisors: it starts the
service through `cluster.launch`, prints one JSON line (`{"ready": true,
"url": ..., ...}`) on stdout once the port listens (and, for a worker, once it
registered), and runs until SIGTERM or SIGINT. It never daemonizes and never
writes pid files; the `sparkctl` CLI is the user-facing way to do that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Sequence

from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker
from rpcenv import Conf, hide_process_environment, parse_size

__all__ = ["main"]


def _conf(pairs: Sequence[str]) -> Conf:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--conf expects key=value, got {pair!r}")
        values[key.strip()] = value.strip()
    return Conf(values)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cluster.run", description=__doc__)
    sub = parser.add_subparsers(dest="role", required=True)
    master = sub.add_parser("master", help="run a Master")
    master.add_argument("--host", default="127.0.0.1")
    master.add_argument("--port", type=int, default=7077)
    worker = sub.add_parser("worker", help="run a Worker")
    worker.add_argument("master_url", nargs="+", help="spark://host:port of the Master(s)")
    worker.add_argument("--host", default="127.0.0.1")
    worker.add_argument("--port", type=int, default=0)
    worker.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    worker.add_argument("--memory", default="1g", help="memory to offer, e.g. 512m or 4g")
    worker.add_argument("--webui-address", default="")
    worker.add_argument("--no-wait", action="store_true", help="do not wait for registration")
    for p in (master, worker):
        p.add_argument("--work-dir", type=pathlib.Path, default=pathlib.Path("work"))
        p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
        p.add_argument("--log-level", default="WARNING")
        p.add_argument(
            "--stop-on-stdin-eof",
            action="store_true",
            help="also stop when stdin closes (a harness whose process dies leaves no orphan)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run until signalled; returns the exit code."""
    started = time.monotonic()
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    conf = _conf(args.conf)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.stop_on_stdin_eof:

        def watch_stdin() -> None:
            # os.read, not sys.stdin: a daemon thread blocked in a buffered read holds
            # its lock, and the interpreter aborts when it exits while the lock is held.
            while os.read(sys.stdin.fileno(), 4096):  # b"" at EOF: the parent closed it, or died
                pass
            stop.set()

        threading.Thread(target=watch_stdin, name="stdin-eof", daemon=True).start()
    handle: MasterHandle | WorkerHandle
    ready: dict[str, object]
    try:
        if args.role == "master":
            handle = start_master(conf, args.host, args.port, args.work_dir)
            ready = {"ready": True, "url": handle.url, "pid": os.getpid()}
        else:
            hide_process_environment()  # executors must not read our secret
            memory_mb = parse_size(args.memory, "m") // (1 << 20)
            worker = start_worker(
                conf,
                args.master_url,
                args.cores,
                memory_mb,
                args.host,
                args.port,
                args.work_dir,
                args.webui_address,
            )
            handle = worker
            registered = args.no_wait or worker.wait_registered(30.0)
            ready = {
                "ready": True,
                "url": worker.url,
                "worker_id": worker.worker_id,
                "registered": registered,
                "pid": os.getpid(),
            }
    except (ValueError, OSError) as exc:
        print(json.dumps({"ready": False, "error": str(exc)}), flush=True)
        return 2
    ready["startup_s"] = round(time.monotonic() - started, 4)
    print(json.dumps(ready), flush=True)
    while not stop.wait(0.5):
        if handle.wait(0):
            break
    handle.stop()
    if isinstance(handle, MasterHandle) and handle.revoked:
        print(f"leadership revoked: {handle.revoked}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
