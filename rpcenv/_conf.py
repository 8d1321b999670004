"""Configuration values: Spark's key names, its size and duration syntax.

Every layer reads its settings through `Conf`, so a Spark user's
`spark-defaults.conf` carries over. Unknown keys are warned about once, never
silently ignored. This module parses; it never reads files or the environment.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping

__all__ = ["KNOWN_KEYS", "KNOWN_PREFIXES", "Conf", "parse_duration", "parse_size"]

log = logging.getLogger(__name__)

#: Keys sparkctl understands, with Spark's defaults (None = no default).
KNOWN_KEYS: dict[str, str | None] = {
    "spark.master": None,
    "spark.app.name": None,
    "spark.submit.deployMode": "client",
    "spark.submit.pyFiles": None,
    "spark.files": None,
    "spark.archives": None,
    "spark.driver.host": None,
    "spark.driver.port": "0",
    "spark.driver.bindAddress": None,
    "spark.pyspark.python": None,
    "spark.pyspark.driver.python": None,
    "spark.driver.memory": "1g",
    "spark.driver.cores": "1",
    "spark.driver.supervise": "false",
    "spark.executor.cores": None,
    "spark.executor.memory": "1g",
    "spark.executor.instances": None,
    "spark.executor.heartbeatInterval": "10s",
    "spark.cores.max": None,
    "spark.default.parallelism": None,
    "spark.task.cpus": "1",
    "spark.task.maxFailures": "4",
    "spark.stage.maxConsecutiveAttempts": "4",
    "spark.locality.wait": "3s",
    "spark.speculation": "false",
    "spark.speculation.interval": "100ms",
    "spark.speculation.multiplier": "1.5",
    "spark.speculation.quantile": "0.75",
    "spark.barrier.sync.timeout": "365d",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "15s",
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "40",
    "spark.worker.timeout": "60",
    "spark.worker.cores": None,
    "spark.worker.memory": None,
    "spark.worker.cleanup.enabled": "true",
    "spark.worker.cleanup.interval": "1800",
    "spark.worker.cleanup.appDataTtl": "604800",
    "spark.deploy.spreadOut": "true",
    "spark.deploy.maxExecutorRetries": "10",
    "spark.deploy.recoveryMode": "NONE",
    "spark.deploy.recoveryDirectory": None,
    "spark.deploy.zookeeper.url": None,
    "spark.deploy.zookeeper.dir": "/spark",
    "spark.deploy.retainedApplications": "200",
    "spark.deploy.retainedDrivers": "200",
    "spark.deploy.defaultCores": None,
    "spark.rpc.backend": "grpc",
    "spark.rpc.askTimeout": None,
    "spark.rpc.lookupTimeout": None,
    "spark.rpc.message.maxSize": "128",
    "spark.rpc.connect.threads": None,
    "spark.rpc.allowInsecure": "false",
    "spark.rpc.keepalive.interval": "20s",
    "spark.rpc.dispatcher.numThreads": None,
    "spark.rpc.io.serverThreads": None,
    "spark.rpc.io.connectionTimeout": "30s",
    "spark.network.timeout": "120s",
    "spark.authenticate": "false",
    "spark.authenticate.secret": None,
    "spark.authenticate.secret.file": None,
    "spark.ssl.rpc.enabled": "false",
    "spark.ssl.rpc.certChain": None,
    "spark.ssl.rpc.privateKey": None,
    "spark.ssl.rpc.trustStore": None,
    "spark.ssl.rpc.needClientAuth": "false",
    "spark.ui.enabled": "true",
    "spark.ui.port": "4040",
    "spark.master.ui.port": "8080",
    "spark.worker.ui.port": "8081",
    "spark.port.maxRetries": "16",
    "spark.ui.showConsoleProgress": "true",
    "spark.ui.retainedJobs": "1000",
    "spark.ui.retainedStages": "1000",
    "spark.ui.retainedTasks": "100000",
    "spark.ui.retainedDeadExecutors": "100",
    "spark.redaction.regex": "(?i)secret|password|token|access[.]?key",
    "spark.python.worker.memory": "512m",
    "spark.driver.maxResultSize": "1g",
    "spark.files.maxPartitionBytes": "128m",
    "spark.files.openCostInBytes": "4m",
    "spark.python.worker.reuse": "true",
    "spark.python.profile": "false",
    "spark.python.profile.dump": None,
    "spark.python.worker.faulthandler.enabled": "false",
    "spark.executor.pyspark.memory": None,
    "spark.local.dir": None,
    "spark.eventLog.enabled": "false",
    "spark.eventLog.dir": "file:/tmp/spark-events",
    "spark.eventLog.compress": "false",
    # Spark's default is zstd; sparkctl writes gzip only (Python's stdlib has no zstd).
    "spark.eventLog.compression.codec": None,
    "spark.eventLog.overwrite": "false",
    "spark.history.fs.logDirectory": "file:/tmp/spark-events",
    "spark.history.ui.port": "18080",
    "spark.history.retainedApplications": "50",
    "spark.shuffle.compress": "true",
    "spark.shuffle.service.enabled": "false",
    # Where an executor serves its shuffle blocks to other executors (0 = any free port).
    "spark.blockManager.port": "0",
    "spark.dynamicAllocation.enabled": "false",
    "spark.log.level": None,
}

#: Families of keys accepted without a warning.
KNOWN_PREFIXES: tuple[str, ...] = (
    "spark.dynamicAllocation.",
    "spark.worker.cleanup.",
    "spark.eventLog.",
    "spark.executorEnv.",
    "spark.hadoop.",
    "spark.sparkctl.",
)

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TIME_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, default_unit: str = "b") -> int:
    """Parse a Spark size string (`512m`, `4g`, `1024`) into bytes.

    Args:
        text: the value, e.g. "4g" or "512mb".
        default_unit: unit of a bare number ("b", "k", "m", "g").

    Raises:
        ValueError: naming the text when it is not a size.
    """
    match = _NUMBER_UNIT.match(str(text))
    if match is None:
        raise ValueError(f"bad size {text!r}: expected a number with a unit like 512m or 4g")
    number, unit = match.groups()
    unit = unit.lower().removesuffix("ib").removesuffix("b") if len(unit) > 1 else unit.lower()
    unit = unit or default_unit.lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"bad size unit {unit!r} in {text!r}: use b, k, m, g or t")
    return int(float(number) * _SIZE_UNITS[unit])


def parse_duration(text: str, default_unit: str = "s") -> float:
    """Parse a Spark duration string (`120s`, `3s`, `100ms`, `60`) into seconds.

    Raises:
        ValueError: naming the text when it is not a duration.
    """
    match = _NUMBER_UNIT.match(str(text))
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected a number with a unit like 3s or 100ms")
    number, unit = match.groups()
    unit = (unit or default_unit).lower()
    if unit not in _TIME_UNITS:
        raise ValueError(f"bad duration unit {unit!r} in {text!r}: use ms, s, m, h or d")
    return float(number) * _TIME_UNITS[unit]


class Conf(Mapping[str, str]):
    """An immutable view of `key=value` settings with typed getters."""

    _warned: set[str] = set()

    def __init__(self, values: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._values: dict[str, str] = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: ("*****" if _is_secret(k) else v) for k, v in self._values.items()}
        return f"Conf({shown!r})"

    def with_values(self, **updates: str) -> Conf:
        """A copy with `updates` applied (keys with dots: pass a dict to `merged`)."""
        return self.merged(updates)

    def merged(self, updates: Mapping[str, str]) -> Conf:
        """A copy with `updates` taking precedence."""
        values = dict(self._values)
        values.update(updates)
        return Conf(values)

    def get_str(self, key: str, default: str | None = None) -> str | None:
        """The raw value, else `default`, else Spark's default for the key."""
        if key in self._values:
            return self._values[key]
        if default is not None:
            return default
        return KNOWN_KEYS.get(key)

    def get_bool(self, key: str, default: bool = False) -> bool:
        """A boolean value (`true`/`false`, case-insensitive)."""
        value = self.get_str(key)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(f"bad boolean {value!r} for {key}: expected true or false")

    def get_int(self, key: str, default: int | None = None) -> int | None:
        """An integer value."""
        value = self.get_str(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"bad integer {value!r} for {key}") from None

    def get_float(self, key: str, default: float | None = None) -> float | None:
        """A float value."""
        value = self.get_str(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"bad number {value!r} for {key}") from None

    def get_duration(self, key: str, default: float | None = None, unit: str = "s") -> float | None:
        """A duration in seconds; a bare number is in `unit`."""
        value = self.get_str(key)
        if value is None:
            return default
        try:
            return parse_duration(value, unit)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    def get_size(self, key: str, default: int | None = None, unit: str = "b") -> int | None:
        """A size in bytes; a bare number is in `unit`."""
        value = self.get_str(key)
        if value is None:
            return default
        try:
            return parse_size(value, unit)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    def warn_unknown(self) -> list[str]:
        """Log one warning per unknown `spark.*` key; return the unknown keys."""
        unknown = [k for k in self._values if not is_known_key(k)]
        for key in unknown:
            if key not in Conf._warned:
                Conf._warned.add(key)
                log.warning("ignoring unknown configuration key %s", key)
        return unknown


def is_known_key(key: str) -> bool:
    """True for keys sparkctl reads (or families it accepts)."""
    return key in KNOWN_KEYS or key.startswith(KNOWN_PREFIXES) or not key.startswith("spark.")


def _is_secret(key: str) -> bool:
    return "secret" in key.lower() or "password" in key.lower()
