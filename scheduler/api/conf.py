"""SparkConf: an application's settings, PySpark's API over Spark's key names.

Defaults come from the `SPARKCTL_SUBMIT_CONF` environment variable (a JSON
object of key -> string, set by `sparkctl submit` and by a Worker launching a
cluster-mode driver); values set in code override them. This module never
interprets the settings it holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from rpcenv import Conf
from scheduler import settings as _settings  # noqa: F401  (declares the driver's keys)
from scheduler.errors import PySparkRuntimeError

__all__ = [
    "SUBMIT_CONF_ENV",
    "SYSTEM_PROPERTIES",
    "WARNED_KEYS_ENV",
    "SparkConf",
    "launcher_warned_keys",
]

#: The environment variable carrying submit-time settings as a JSON object.
SUBMIT_CONF_ENV = "SPARKCTL_SUBMIT_CONF"
#: The unknown keys (a JSON list) that `sparkctl submit` already warned about in the
#: same terminal: the app's SparkContext does not warn about them a second time.
WARNED_KEYS_ENV = "SPARKCTL_CONF_WARNED"

#: The driver process's "system properties" (SparkContext.setSystemProperty): the
#: `spark.*` ones are defaults of every SparkConf made afterwards, as the JVM's are.
SYSTEM_PROPERTIES: dict[str, str] = {}


def _submit_defaults() -> dict[str, str]:
    defaults = _submit_conf()
    defaults.update((k, v) for k, v in SYSTEM_PROPERTIES.items() if k.startswith("spark."))
    return defaults


def _submit_conf() -> dict[str, str]:
    text = os.environ.get(SUBMIT_CONF_ENV)
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{SUBMIT_CONF_ENV} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{SUBMIT_CONF_ENV} must be a JSON object of key -> value")
    return {str(k): str(v) for k, v in values.items()}


def launcher_warned_keys() -> set[str]:
    """The keys WARNED_KEYS_ENV lists (none when it is unset or not a JSON list)."""
    try:
        keys = json.loads(os.environ.get(WARNED_KEYS_ENV) or "[]")
    except json.JSONDecodeError:
        return set()
    return {k for k in keys if isinstance(k, str)} if isinstance(keys, list) else set()


class SparkConf:
    """Key/value settings of a Spark application (PySpark's `SparkConf`).

    Args:
        loadDefaults: read `SPARKCTL_SUBMIT_CONF` first.
    """

    def __init__(
        self, loadDefaults: bool = True, _jvm: object = None, _jconf: object = None
    ) -> None:
        self._values: dict[str, str] = _submit_defaults() if loadDefaults else {}

    def set(self, key: str, value: object) -> SparkConf:
        """Set `key` to `str(value)`."""
        self._values[str(key)] = str(value)
        return self

    def setIfMissing(self, key: str, value: object) -> SparkConf:
        """Set `key` unless it is already set."""
        if key not in self._values:
            self.set(key, value)
        return self

    def setMaster(self, value: str) -> SparkConf:
        """The master URL: local, local[N], local[*], local[N,F] or spark://host:port."""
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> SparkConf:
        """The application's name."""
        return self.set("spark.app.name", value)

    def setSparkHome(self, value: str) -> SparkConf:
        """Accepted for compatibility; sparkctl needs no Spark home."""
        return self.set("spark.home", value)

    def setExecutorEnv(
        self,
        key: str | None = None,
        value: str | None = None,
        pairs: Iterable[tuple[str, str]] | None = None,
    ) -> SparkConf:
        """Environment variables of the executors: one `key` and `value`, or `pairs`.

        Raises:
            PySparkRuntimeError: both or neither were given (KEY_VALUE_PAIR_REQUIRED).
        """
        if (key is not None and pairs is not None) or (key is None and pairs is None):
            raise PySparkRuntimeError(errorClass="KEY_VALUE_PAIR_REQUIRED", messageParameters={})
        if key is not None:
            self.set("spark.executorEnv." + key, value)
        else:
            for k, v in pairs or ():
                self.set("spark.executorEnv." + k, v)
        return self

    def setAll(self, pairs: Iterable[tuple[str, object]]) -> SparkConf:
        """Set several values."""
        for k, v in pairs:
            self.set(k, v)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        """The value of `key`, else `defaultValue`."""
        return self._values.get(key, defaultValue)

    def getAll(self) -> list[tuple[str, str]]:
        """Every (key, value) pair."""
        return list(self._values.items())

    def contains(self, key: str) -> bool:
        """Whether `key` is set."""
        return key in self._values

    def toDebugString(self) -> str:
        """One `key=value` line per setting."""
        return "\n".join(f"{k}={v}" for k, v in self._values.items())

    def to_conf(self) -> Conf:
        """An immutable `rpcenv.Conf` of these settings (with Spark's defaults behind)."""
        return Conf(dict(self._values))

    def copy(self) -> SparkConf:
        """An independent copy."""
        clone = SparkConf(loadDefaults=False)
        clone._values = dict(self._values)
        return clone

    def __repr__(self) -> str:
        return f"SparkConf({len(self._values)} settings)"
