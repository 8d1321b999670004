"""Bounds on what a driver, an application or a worker may ask of the Master.

The Master refuses a request outside these bounds with a ValueError (the
caller gets INVALID_ARGUMENT) naming the field and the bound, instead of
accepting a driver that waits forever or a 1 MB path that lands in every
recovery record, log line and page. The bounds are of two kinds:

- *Size of one host.* No worker may register with more than `MAX_CORES`
  cores or `MAX_MEMORY_MB` of memory, so a driver or an executor asking for
  more could never be placed: it is refused. Both are far beyond any machine
  sold today (and beyond oversubscribed ones), and small enough that a sum
  over thousands of workers stays inside the protocol's int32 totals.
- *What one process launch can carry* on Linux: a single argument or
  environment string is at most 128 KiB (MAX_ARG_STRLEN), so an app argument
  over that, or a driver conf whose JSON (which travels in one environment
  variable) is over `MAX_CONF_JSON_BYTES`, would only fail later on the
  worker with E2BIG. Paths are at most `MAX_PATH_CHARS` (PATH_MAX).

A request within bounds that no worker registered *now* can hold is not
refused (a larger worker may join); `unplaceable_reason` says why it waits,
and the Master shows that in the driver's or application's status.

This module only checks values; it never reads or changes the Master's records.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence

from rpcenv import parse_size
from sparkctl.v1 import deploy_pb2 as pb

__all__ = [
    "MAX_ARGV_BYTES",
    "MAX_ARG_BYTES",
    "MAX_CONF_JSON_BYTES",
    "MAX_CORES",
    "MAX_MEMORY_MB",
    "MAX_NAME_CHARS",
    "MAX_PATH_CHARS",
    "MAX_SHOWN_ID_CHARS",
    "check_app_description",
    "check_driver_description",
    "conf_resources",
    "shown_id",
    "unplaceable_reason",
    "worker_resources_problem",
]

#: Cores of one host: a worker offers, and a driver or executor asks, at most this many.
MAX_CORES = 1 << 16
#: Memory of one host in MiB (128 TiB): the same bound, for memory.
MAX_MEMORY_MB = 1 << 27
#: A path or URL (app_resource, py_files, app_ui_url): Linux's PATH_MAX.
MAX_PATH_CHARS = 4096
#: One argument or environment string of a launched process (Linux MAX_ARG_STRLEN).
MAX_ARG_BYTES = 128 * 1024
#: All arguments of one launched process together (Linux's ARG_MAX is 2 MiB by default,
#: shared with the environment).
MAX_ARGV_BYTES = 1024 * 1024
#: A driver's conf as the JSON that carries it to the driver in one environment string,
#: with room left for what the worker adds (the master URL, py-file paths).
MAX_CONF_JSON_BYTES = 96 * 1024
#: An application's name or user: shown on every page and log line about it.
MAX_NAME_CHARS = 1024

_DIGITS = re.compile(r"^\s*\d+\s*$")
#: Conf keys naming resources, checked in a submitted driver's conf: (kind, lowest value).
_RESOURCE_KEYS: dict[str, tuple[str, int]] = {
    "spark.driver.cores": ("cores", 1),
    "spark.executor.cores": ("cores", 1),
    "spark.cores.max": ("count", 1),
    "spark.driver.memory": ("memory", 1),
    "spark.executor.memory": ("memory", 1),
}


#: Characters of a caller's id that an error message repeats (ids the Master makes
#: are far shorter; an unknown one may be any length).
MAX_SHOWN_ID_CHARS = 100


def shown_id(value: str) -> str:
    """`value` quoted for an error message, its first MAX_SHOWN_ID_CHARS and "..." if longer."""
    if len(value) <= MAX_SHOWN_ID_CHARS:
        return repr(value)
    return f"{value[:MAX_SHOWN_ID_CHARS]!r}... ({len(value)} characters)"


def check_driver_description(desc: pb.DriverDescription) -> None:
    """Refuse a driver description out of bounds (module docstring).

    Raises:
        ValueError: naming the field (`DriverDescription.cores`, a conf key, ...)
            and the bound it broke.
    """
    if not (desc.app_resource or desc.command.argv or desc.app_content):
        raise ValueError("DriverDescription needs app_resource, command.argv or app_content")
    _check_range("DriverDescription.cores", desc.cores, 0, MAX_CORES, "0 = spark.driver.cores")
    _check_range(
        "DriverDescription.memory_mb", desc.memory_mb, 0, MAX_MEMORY_MB, "0 = spark.driver.memory"
    )
    _check_path("DriverDescription.app_resource", desc.app_resource)
    for index, path in enumerate(desc.py_files):
        _check_path(f"DriverDescription.py_files[{index}]", path)
    _check_argv("DriverDescription.app_args", desc.app_args)
    _check_command("DriverDescription.command", desc.command)
    conf_json = len(json.dumps(dict(desc.conf), sort_keys=True).encode())
    if conf_json > MAX_CONF_JSON_BYTES:
        raise ValueError(
            f"DriverDescription.conf is {conf_json} bytes as JSON; at most "
            f"{MAX_CONF_JSON_BYTES} (it reaches the driver in one environment string)"
        )
    conf_resources(desc.conf)


def conf_resources(conf: Mapping[str, str]) -> dict[str, int]:
    """The resource keys of a driver's conf, parsed as the driver would and checked.

    Returns:
        The keys present, as cores or MiB.

    Raises:
        ValueError: naming the key, for a value that is not a number (`NaN`, `1e3`,
            `-1`), is out of bounds, or asks for bigger executors than spark.cores.max.
    """
    values: dict[str, int] = {}
    for key, (kind, lowest) in _RESOURCE_KEYS.items():
        text = conf.get(key)
        if text is None:
            continue
        if kind == "memory":
            try:
                value = parse_size(text, "m") >> 20
            except ValueError as exc:
                raise ValueError(f"conf {key}={text[:80]!r}: {exc}") from None
            _check_range(f"conf {key}", value, lowest, MAX_MEMORY_MB, "in MiB")
        else:
            if not _DIGITS.match(text):
                raise ValueError(f"conf {key}={text[:80]!r} is not a whole number of {kind}")
            value = int(text)
            top = MAX_CORES if kind == "cores" else 2**31 - 1
            _check_range(f"conf {key}", value, lowest, top, "")
        values[key] = value
    executor, total = values.get("spark.executor.cores"), values.get("spark.cores.max")
    if executor is not None and total is not None and executor > total:
        raise ValueError(
            f"conf spark.executor.cores={executor} is more than spark.cores.max={total}: "
            "the application could never get an executor"
        )
    return values


def check_app_description(desc: pb.ApplicationDescription, default_cores: int = 0) -> None:
    """Refuse an application description out of bounds.

    Args:
        desc: as the driver registered it.
        default_cores: the Master's spark.deploy.defaultCores (0 = none), which stands
            in for an unset max_cores.

    Raises:
        ValueError: naming the field and the bound it broke.
    """
    _check_range("ApplicationDescription.max_cores", desc.max_cores, 0, 2**31 - 1, "0 = no limit")
    _check_range(
        "ApplicationDescription.cores_per_executor", desc.cores_per_executor, 0, MAX_CORES, ""
    )
    _check_range(
        "ApplicationDescription.memory_per_executor_mb",
        desc.memory_per_executor_mb,
        0,
        MAX_MEMORY_MB,
        "",
    )
    if desc.HasField("initial_executor_limit"):
        _check_range(
            "ApplicationDescription.initial_executor_limit",
            desc.initial_executor_limit,
            0,
            2**31 - 1,
            "",
        )
    max_cores = desc.max_cores or default_cores
    if max_cores and desc.cores_per_executor > max_cores:
        source = "max_cores" if desc.max_cores else "the Master's spark.deploy.defaultCores"
        raise ValueError(
            f"ApplicationDescription.cores_per_executor={desc.cores_per_executor} is more than "
            f"{source}={max_cores}: the application could never get an executor"
        )
    for field in ("name", "user"):
        text: str = getattr(desc, field)
        if len(text) > MAX_NAME_CHARS:
            raise ValueError(
                f"ApplicationDescription.{field} has {len(text)} characters; at most "
                f"{MAX_NAME_CHARS}"
            )
    _check_path("ApplicationDescription.app_ui_url", desc.app_ui_url)
    _check_command("ApplicationDescription.command", desc.command)


def worker_resources_problem(cores: int, memory_mb: int) -> str:
    """Why a worker may not register with these resources ("" when it may)."""
    if not 0 <= cores <= MAX_CORES:
        return f"worker cores must be 0..{MAX_CORES}, not {cores}"
    if not 0 <= memory_mb <= MAX_MEMORY_MB:
        return f"worker memory must be 0..{MAX_MEMORY_MB} MiB, not {memory_mb}"
    return ""


def unplaceable_reason(
    cores: int, memory_mb: int, workers: Iterable[tuple[int, int]], what: str
) -> str:
    """Why a request of `cores` and `memory_mb` on one worker waits although workers are up.

    Args:
        cores: cores it needs on one worker (0 = any number).
        memory_mb: memory it needs on one worker.
        workers: (cores, memory_mb) of each ALIVE worker, idle or not.
        what: how to call the request ("the driver", "each executor").

    Returns:
        "" when some worker could hold it once idle, or when no worker is ALIVE (one
        may be starting); else a sentence saying what it needs and the largest offers.
    """
    sizes = list(workers)
    if not sizes or any(c >= max(cores, 1) and m >= memory_mb for c, m in sizes):
        return ""
    most_cores = max(c for c, _ in sizes)
    most_memory = max(m for _, m in sizes)
    needed = cores or 1
    return (
        f"waiting: {what} needs {needed} core{'' if needed == 1 else 's'} and {memory_mb} MiB "
        "on one worker, "
        f"which no ALIVE worker has even when idle (most cores {most_cores}, most memory "
        f"{most_memory} MiB); it waits until such a worker registers"
    )


def _check_range(field: str, value: float, lowest: int, highest: int, note: str) -> None:
    if math.isnan(value) or not lowest <= value <= highest:
        extra = f" ({note})" if note else ""
        raise ValueError(f"{field} must be {lowest}..{highest}{extra}, not {value}")


def _check_path(field: str, path: str) -> None:
    if len(path) > MAX_PATH_CHARS:
        raise ValueError(f"{field} has {len(path)} characters; at most {MAX_PATH_CHARS}")


def _check_argv(field: str, argv: Sequence[str]) -> None:
    total = 0
    for index, arg in enumerate(argv):
        size = len(arg.encode())
        if size > MAX_ARG_BYTES:
            raise ValueError(f"{field}[{index}] is {size} bytes; at most {MAX_ARG_BYTES}")
        total += size + 1
    if total > MAX_ARGV_BYTES:
        raise ValueError(f"{field} is {total} bytes in all; at most {MAX_ARGV_BYTES}")


def _check_command(field: str, command: pb.Command) -> None:
    _check_argv(f"{field}.argv", command.argv)
    _check_argv(
        f"{field}.environment", [f"{k}={v}" for k, v in sorted(command.environment.items())]
    )
