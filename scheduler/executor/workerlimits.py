"""Limits and checks of a Python worker process, as PySpark's worker applies them.

- `spark.executor.pyspark.memory`: each Python worker caps its address space
  (RLIMIT_AS) at the setting divided by `spark.executor.cores` over
  `spark.task.cpus`, rounded up (cores 1 when unset, as Spark's default, so
  `local[N]` and executors without that setting give each worker the whole
  amount, as PySpark 4.3 does) before it runs a task; a task
  that allocates past it gets a MemoryError (the task fails, the worker and its
  executor live on). An executor of a stage-level resource profile uses the
  profile's `pysparkMemory` (the app's setting when it sets none) over the
  tasks it runs at once (its cores over its task cpus, bounded by its custom
  resources; the app's `spark.executor.cores`, then 1, when no cores are
  known), as PySpark 4.3's DAGScheduler passes a stage's profile to its
  Python runner. A stage whose profile asks only task resources runs on the
  default executors with its own limit: the app's setting over the tasks of
  that stage an executor's `spark.executor.cores` hold, rounded up (down under
  dynamic allocation; the whole setting when those cores are unset); its tasks
  run in Python workers of that limit (the executor keeps workers per limit).
- The driver's Python major.minor travels in every stage's header; a worker
  on another minor version fails the task with PySpark's message.
- `spark.python.worker.faulthandler.enabled`: a worker writes `faulthandler`'s
  dump to a file of its own, which its executor reads when the worker dies of
  a signal, so a segfault is reported with the Python stack, not only an exit code.

This module only sets the worker's own limits and reads the files; it never
starts or stops a process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # the worker never imports the RPC layer
    from rpcenv import Conf
    from scheduler.resource.profile import ResourceProfile

__all__ = [
    "FAULTHANDLER_DIR_ENV",
    "FAULTHANDLER_ENV",
    "MEMORY_LIMIT_ENV",
    "apply_memory_limit",
    "crash_reason",
    "enable_faulthandler",
    "faulthandler_path",
    "profile_tasks_per_executor",
    "profile_worker_limit_mb",
    "read_crash_dump",
    "task_profile_worker_limit_mb",
    "version_mismatch",
    "worker_limits_env",
    "worker_memory_limit_mb",
]

#: One Python worker's share of `spark.executor.pyspark.memory` in MiB (set by the driver).
MEMORY_LIMIT_ENV = "SPARKCTL_PYTHON_WORKER_LIMIT_MB"
#: Set by the driver when `spark.python.worker.faulthandler.enabled` is true.
FAULTHANDLER_ENV = "SPARKCTL_PYTHON_FAULTHANDLER"
#: The directory where each worker writes its faulthandler file (set by the executor).
FAULTHANDLER_DIR_ENV = "SPARKCTL_PYTHON_FAULTHANDLER_DIR"

#: Signals on which faulthandler dumps the stack (it cannot catch SIGKILL).
_DUMPED_SIGNALS = frozenset(
    int(getattr(signal, name))
    for name in ("SIGSEGV", "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL")
    if hasattr(signal, name)
)

#: The open dump file: faulthandler writes to its descriptor, which must stay open.
_dump_file: list[IO[str]] = []


def worker_limits_env(conf: Conf) -> dict[str, str]:
    """What an executor needs of the app's conf to limit its workers (the driver's side).

    Raises:
        ValueError: spark.executor.pyspark.memory is not a size (the message names it).
    """
    env: dict[str, str] = {}
    from scheduler import settings  # the driver's side: a Python worker never reads conf

    size = conf.get(settings.EXECUTOR_PYSPARK_MEMORY)  # at least 1m: the entry's bound
    if size is not None:
        # PySpark 4.3's divisor: the tasks an executor's cores hold, not the workers
        # it runs. Rounded up (spark.executor.cores 3, spark.task.cpus 2: 2), except
        # under dynamic allocation with spark.executor.cores set, where the default
        # profile is sized as any profile: rounded down, capped by custom resources
        # (observed: local-cluster, 3 cores, 2 task cpus, 600m: 300 MiB, and 600 MiB
        # with dynamic allocation on; local[N] ignores dynamic allocation).
        cores = conf.get(settings.EXECUTOR_CORES)
        cpus = max(1, conf.get(settings.TASK_CPUS))
        if cores and _dynamic_allocation_on(conf):
            from scheduler.resource.profile import default_profile

            profile = default_profile(dict(conf.items()), cpus)
            tasks = profile_tasks_per_executor(profile, cores, cpus)
        else:
            tasks = -(-(cores or 1) // cpus)
        env[MEMORY_LIMIT_ENV] = str(worker_memory_limit_mb(size >> 20, tasks))
    if conf.get(settings.PYTHON_FAULTHANDLER):
        env[FAULTHANDLER_ENV] = "1"
    return env


def _dynamic_allocation_on(conf: Conf) -> bool:
    """Spark's test: asked for, and the master is not local mode (local-cluster is not)."""
    from scheduler import settings

    master = conf.get(settings.MASTER) or ""
    local = master == "local" or master.startswith("local[")
    return bool(conf.get(settings.DYN_ENABLED)) and not local


def profile_worker_limit_mb(pyspark_memory_mb: int | None, tasks_per_executor: int) -> int:
    """Each Python worker's limit in MiB on a profile's executors (0: none; the driver's side).

    Args:
        pyspark_memory_mb: the profile's `pysparkMemory`, else the app's
            `spark.executor.pyspark.memory` (None or 0: neither is set, no limit).
        tasks_per_executor: how many of the profile's tasks an executor runs at once
            (`profile_tasks_per_executor`).
    """
    if not pyspark_memory_mb:
        return 0
    return worker_memory_limit_mb(pyspark_memory_mb, tasks_per_executor)


def profile_tasks_per_executor(profile: ResourceProfile, app_cores: int, app_task_cpus: int) -> int:
    """Tasks a profile's executor runs at once, PySpark 4.3's divisor of its pyspark memory.

    Its cores (the app's `spark.executor.cores` when it sets none) over its task
    cpus, and no more than each custom resource allows; with no cores known, the
    app's `spark.executor.cores`, then 1, as PySpark.
    """
    cores = profile.executor_cores() or app_cores
    if not cores:
        return 1
    tasks = max(1, cores // max(1, profile.task_cpus(app_task_cpus)))
    executor = profile.custom_executor_resources()
    for name, (count, share) in profile.task_requirements().items():
        amount = executor.get(name, 0)
        if amount:
            tasks = min(tasks, int(amount // count / share) if count else tasks)
    return max(1, tasks)


def task_profile_worker_limit_mb(
    profile: ResourceProfile,
    pyspark_memory_mb: int,
    app_cores: int,
    app_task_cpus: int,
    dynamic: bool,
) -> int:
    """Each Python worker's limit in MiB for a stage of a task-only profile (0: none).

    Such a stage runs on the default executors, yet PySpark 4.3 sizes its Python
    workers by its own task cpus: the app's `spark.executor.pyspark.memory` over
    `spark.executor.cores` / the stage's task cpus, rounded up (observed on
    local-cluster: 4 cores, 800m: cpus(2) 400 MiB, cpus(3) 400, cpus(4) 800; 3 cores,
    600m, cpus(2): 300); under dynamic allocation (`dynamic`), as any profile's:
    rounded down (3 cores, 600m, cpus(2): 600). With `spark.executor.cores` unset
    (`app_cores` 0), the whole setting, as its Python runner then divides by its own
    default of 1 core over the task's cpus, at least 1 (observed: 800m, cpus(2): 800).
    """
    if not pyspark_memory_mb:
        return 0
    if dynamic:
        tasks = profile_tasks_per_executor(profile, app_cores, app_task_cpus)
    else:
        cpus = max(1, profile.task_cpus(app_task_cpus))
        tasks = -(-app_cores // cpus) if app_cores else 1
    return worker_memory_limit_mb(pyspark_memory_mb, tasks)


def worker_memory_limit_mb(total_mb: int, workers: int) -> int:
    """`total_mb` split `workers` ways (at least 1 MiB each)."""
    return max(1, total_mb // max(1, workers))


def apply_memory_limit(limit_mb: int) -> bool:
    """Cap this process's address space at `limit_mb` MiB; False when it cannot.

    Only ever lowers the limit (a worker may not raise its hard limit back), and
    does nothing where the `resource` module does not exist (Windows), as PySpark.
    """
    if limit_mb <= 0:
        return False
    try:
        import resource
    except ImportError:
        return False
    new_limit = limit_mb * 1024 * 1024
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY and new_limit >= soft:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_AS, (new_limit, new_limit))
    except (OSError, ValueError) as exc:
        print(f"could not set the Python worker's memory limit: {exc}", file=sys.stderr)
        return False
    return True


def version_mismatch(driver_version: str | None) -> str | None:
    """PySpark's error text when the driver's major.minor is not this worker's, else None."""
    if driver_version is None or driver_version == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return None
    worker = str(sys.version_info[:2])  # PySpark shows the tuple: "(3, 11)"
    return (
        f"[PYTHON_VERSION_MISMATCH] Python in worker has different version: {worker} than "
        f"that in driver: {driver_version}, PySpark cannot run with different minor versions.\n"
        "Please check environment variables PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON are "
        "correctly set."
    )


def faulthandler_path(directory: str, pid: int) -> str:
    """The dump file of the worker process `pid`."""
    return os.path.join(directory, str(pid))


def enable_faulthandler(directory: str) -> None:
    """Dump the Python stack of every thread to this worker's file on a fatal signal."""
    os.makedirs(directory, exist_ok=True)
    dump = open(faulthandler_path(directory, os.getpid()), "w")  # noqa: SIM115 - kept open
    _dump_file.append(dump)
    faulthandler.enable(file=dump, all_threads=True)


def read_crash_dump(directory: str, pid: int) -> str:
    """What the dead worker `pid`'s faulthandler wrote ("" if nothing); removes the file."""
    path = faulthandler_path(directory, pid)
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    with contextlib.suppress(OSError):
        os.remove(path)
    return text.strip()


def crash_reason(exit_code: int, fault_dir: str, pid: int) -> str:
    """Why the task of a Python worker that died with `exit_code` failed.

    Every reason starts as PySpark's ("Python worker exited unexpectedly
    (crashed)"). With the faulthandler on, its dump follows, as PySpark reports it;
    with it off and a signal the faulthandler would have caught, PySpark's hint
    to turn it on. The exit code, which PySpark's JVM never sees, comes last.
    """
    crashed = "Python worker exited unexpectedly (crashed)"
    dump = read_crash_dump(fault_dir, pid) if fault_dir else ""
    if dump:
        return f"{crashed}: {dump}\nThe worker's exit code: {exit_code}"
    reason = f"{crashed} with exit code {exit_code}"
    if not fault_dir and -exit_code in _DUMPED_SIGNALS:
        reason += (
            ". Consider setting 'spark.python.worker.faulthandler.enabled' to 'true' "
            "for the Python traceback."
        )
    return reason
