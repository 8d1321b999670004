"""SparkSession for RDD programs: PySpark's entry point, without Spark SQL.

Today's PySpark programs start with ``SparkSession.builder...getOrCreate()``
and reach the RDD API through ``spark.sparkContext``. This module gives them
that: the builder (``appName``, ``master``, ``config``, ``enableHiveSupport``,
``getOrCreate``), the session's runtime ``conf``, ``stop`` and ``with``, and
the active session. It also reads text files the way today's examples do
(``spark.read.text(path).rdd``). Everything else of Spark SQL (DataFrames,
``sql``, ``createDataFrame``, ``table``, ``udf``, catalogs, streaming) raises
one error, :class:`SparkSQLNotSupportedError`, that says so. It never runs a
job itself; the SparkContext does.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from scheduler.api.conf import SparkConf
from scheduler.api.context import SparkContext
from scheduler.errors import SparkSQLNotSupportedError

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = [
    "AnalysisException",
    "RuntimeConfig",
    "SparkNoSuchElementException",
    "SparkSQLNotSupportedError",
    "SparkSession",
]

#: Session settings that configure Spark SQL only: they stay in the session's conf.
_SQL_PREFIX = "spark.sql."

#: Attributes of PySpark's SparkSession (and of what it returns) that belong to Spark SQL.
_SQL_ATTRIBUTES = frozenset(
    {
        "catalog", "createDataFrame", "dataSource", "profile", "readStream", "sql", "streams",
        "table", "tvf", "udf", "udtf", "range", "addArtifact", "addArtifacts", "copyFromLocalToFs",
        "interruptAll", "interruptTag", "interruptOperation", "addTag", "removeTag", "getTags",
        "clearTags", "client", "registerProgressHandler",
    }
)  # fmt: skip


class SparkNoSuchElementException(LookupError):
    """A session setting that is not set was read without a default (PySpark's error)."""


class AnalysisException(ValueError):
    """A Spark core setting was changed on a running session (PySpark's error class)."""


class RuntimeConfig:
    """``spark.conf``: the session's settings, those of its SparkContext behind them."""

    def __init__(self, session_values: dict[str, str], context: SparkContext) -> None:
        self._values = session_values
        self._context = context

    def get(self, key: str, default: Any = ...) -> str | None:
        """The value of `key`; `default` when unset (an error when no default is given).

        Raises:
            SparkNoSuchElementException: `key` is unset and no default was given.
        """
        if key in self._values:
            return self._values[key]
        if default is ...:
            raise SparkNoSuchElementException(
                f'[SQL_CONF_NOT_FOUND] The SQL config "{key}" cannot be found. '
                "Please verify that the config exists."
            )
        return None if default is None else str(default)

    def set(self, key: str, value: Any) -> None:
        """Set a session setting (``True`` becomes ``"true"``, as in Spark).

        Raises:
            AnalysisException: `key` configures Spark core, fixed once the context runs.
        """
        if not self.isModifiable(key) and _is_core_key(key):
            raise AnalysisException(
                f'[CANNOT_MODIFY_CONFIG] Cannot modify the value of the Spark config: "{key}".'
            )
        self._values[key] = str(value).lower() if isinstance(value, bool) else str(value)

    def unset(self, key: str) -> None:
        """Forget a session setting."""
        self._values.pop(key, None)

    def isModifiable(self, key: str) -> bool:
        """Whether `key` may change on a running session (Spark SQL's runtime settings)."""
        return key.startswith(_SQL_PREFIX)

    @property
    def getAll(self) -> dict[str, str]:
        """Every session setting (a property, as in PySpark 4)."""
        return dict(self._values)


def _is_core_key(key: str) -> bool:
    from rpcenv import is_known_key

    return key.startswith("spark.") and is_known_key(key) and not key.startswith(_SQL_PREFIX)


class Builder:
    """``SparkSession.builder``: collects settings, then ``getOrCreate()``."""

    _lock: ClassVar[threading.RLock] = threading.RLock()

    def __init__(self) -> None:
        self._options: dict[str, str] = {}

    def config(
        self,
        key: str | None = None,
        value: Any = None,
        conf: SparkConf | None = None,
        *,
        map: dict[str, Any] | None = None,
    ) -> Builder:
        """Set one setting, every setting of a SparkConf, or a dict of them."""
        if conf is not None:
            for k, v in conf.getAll():
                self._options[k] = v
        for k, v in (map or {}).items():
            self._options[k] = _conf_string(v)
        if key is not None:
            self._options[key] = _conf_string(value)
        return self

    def appName(self, name: str) -> Builder:
        """The application's name (spark.app.name)."""
        return self.config("spark.app.name", name)

    def master(self, master: str) -> Builder:
        """The master URL (spark.master)."""
        return self.config("spark.master", master)

    def enableHiveSupport(self) -> Builder:
        """Accepted, as a setting only: sparkctl has no catalog for it to reach."""
        return self.config("spark.sql.catalogImplementation", "hive")

    def remote(self, url: str) -> Builder:
        """Spark Connect, which is part of Spark SQL.

        Raises:
            SparkSQLNotSupportedError: always.
        """
        raise SparkSQLNotSupportedError(f"SparkSession.builder.remote({url!r}) (Spark Connect)")

    def create(self) -> SparkSession:
        """A new session (Spark Connect's), which sparkctl does not have.

        Raises:
            SparkSQLNotSupportedError: always.
        """
        raise SparkSQLNotSupportedError("SparkSession.builder.create() (Spark Connect)")

    def getOrCreate(self) -> SparkSession:
        """The active session with these settings applied, else a new one (and context)."""
        with Builder._lock:
            session = SparkSession._instantiated
            if session is None or session._sc._stopped:
                conf = SparkConf()
                for key, value in self._options.items():
                    if not key.startswith(_SQL_PREFIX):
                        conf.set(key, value)
                # An existing context is kept with its own settings, as in PySpark.
                sc = SparkContext.getOrCreate(conf)
                session = SparkSession(sc, options=self._options)
            else:
                session._session_values.update(self._options)
            SparkSession._active = session
            return session


def _conf_string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class _BuilderDescriptor:
    """``SparkSession.builder`` is a fresh Builder at every access, as in PySpark."""

    def __get__(self, instance: object, owner: type) -> Builder:
        return Builder()


class SparkSession:
    """The entry point of a PySpark program, for the RDD API: ``spark.sparkContext``."""

    builder = _BuilderDescriptor()

    _instantiated: ClassVar[SparkSession | None] = None
    _active: ClassVar[SparkSession | None] = None

    def __init__(self, sparkContext: SparkContext, options: dict[str, Any] | None = None) -> None:
        self._sc = sparkContext
        values = dict(sparkContext.getConf().getAll())
        values.update((k, _conf_string(v)) for k, v in (options or {}).items())
        self._session_values = values
        if SparkSession._instantiated is None or SparkSession._instantiated._sc._stopped:
            SparkSession._instantiated = self

    @property
    def sparkContext(self) -> SparkContext:
        """The SparkContext that runs this session's jobs."""
        return self._sc

    @property
    def conf(self) -> RuntimeConfig:
        """The session's settings (``spark.conf.get``/``set``)."""
        return RuntimeConfig(self._session_values, self._sc)

    @property
    def version(self) -> str:
        """The Spark version this session answers to."""
        return self._sc.version

    @property
    def read(self) -> DataFrameReader:
        """Reads text files into an RDD of rows (``spark.read.text(path).rdd``) only."""
        return DataFrameReader(self)

    def newSession(self) -> SparkSession:
        """Another session with its own settings, on the same SparkContext."""
        return SparkSession(self._sc)

    @classmethod
    def getActiveSession(cls) -> SparkSession | None:
        """The session of this program, or None when none runs."""
        session = cls._active
        if session is None or session._sc._stopped:
            return None
        return session

    @classmethod
    def active(cls) -> SparkSession:
        """The running session, else a new one from the default builder."""
        return cls.getActiveSession() or cls.builder.getOrCreate()

    def stop(self) -> None:
        """Stop the SparkContext, and with it this session."""
        self._sc.stop()
        with Builder._lock:
            if SparkSession._instantiated is self:
                SparkSession._instantiated = None
            if SparkSession._active is self:
                SparkSession._active = None

    def __enter__(self) -> SparkSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __getattr__(self, name: str) -> Any:
        if name in _SQL_ATTRIBUTES:
            raise SparkSQLNotSupportedError(f"SparkSession.{name}")
        raise AttributeError(f"'SparkSession' object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<SparkSession sparkContext={self._sc!r}>"


class DataFrameReader:
    """``spark.read``: only ``text(paths)``, whose result offers only ``.rdd``."""

    def __init__(self, session: SparkSession) -> None:
        self._session = session

    def text(
        self,
        paths: str | list[str],
        wholetext: bool = False,
        lineSep: str | None = None,
        **options: Any,
    ) -> TextLines:
        """The lines of text files (a file, directory or glob, or a list of them).

        Raises:
            SparkSQLNotSupportedError: for `wholetext`, `lineSep` or other reader options.
        """
        if wholetext or lineSep is not None or options:
            raise SparkSQLNotSupportedError("spark.read.text with options")
        return TextLines(self._session, [paths] if isinstance(paths, str) else list(paths))

    def __getattr__(self, name: str) -> Any:
        raise SparkSQLNotSupportedError(f"spark.read.{name}")


class TextLines:
    """What ``spark.read.text`` returns: its ``.rdd`` of ``Row(value=line)``, nothing more."""

    def __init__(self, session: SparkSession, paths: list[str]) -> None:
        self._session = session
        self._paths = paths

    @property
    def rdd(self) -> RDD:
        """The lines as ``Row(value=line)`` items, in Spark SQL's file partitions."""
        from scheduler.rdd.textscan import TextScanRDD

        return TextScanRDD(self._session.sparkContext, self._paths)

    def __getattr__(self, name: str) -> Any:
        raise SparkSQLNotSupportedError(f"DataFrame.{name}")
