"""PySpark's error classes: `pyspark.errors`, the few sparkctl raises.

PySpark tags the errors it raises itself with an error class (a stable name
such as ``CONTEXT_ONLY_VALID_ON_DRIVER``) and message parameters, so that
programs and tests match the class rather than the wording. These exceptions
carry the same three accessors; their messages are sparkctl's own, filled from
`MESSAGES`. `SparkSQLNotSupportedError` is sparkctl's own: what every Spark SQL
entry point raises (not one of PySpark's names, so not in ``__all__``; the
session module exports it). A leaf module: every subpackage may import it, it
imports none.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PySparkException",
    "PySparkRuntimeError",
    "PySparkTypeError",
    "PySparkValueError",
]

#: Message templates by error class; ``<name>`` is replaced by that message parameter.
MESSAGES: dict[str, str] = {
    "CONTEXT_ONLY_VALID_ON_DRIVER": (
        "SparkContext should only be created and accessed on the driver: it cannot be "
        "used in a broadcast variable, an action or a transformation that runs in tasks."
    ),
    "INCORRECT_CONF_FOR_PROFILE": (
        "`spark.python.profile` or `spark.python.profile.memory` configuration must be "
        "set to `true` to enable Python profile."
    ),
    "INVALID_BROADCAST_OPERATION": "Broadcast can only be <operation> in driver.",
    "RDD_TRANSFORM_ONLY_VALID_ON_DRIVER": (
        "It appears that you are attempting to broadcast an RDD or reference an RDD from "
        "an action or transformation. RDD transformations and actions can only be invoked "
        "by the driver, not inside of other transformations."
    ),
    "KEY_VALUE_PAIR_REQUIRED": "Pass either a key and its value or a list of (key, value) pairs.",
}


def _fill(errorClass: str | None, params: dict[str, str]) -> str:
    template = MESSAGES.get(errorClass or "", errorClass or "")
    for name, value in params.items():
        template = template.replace(f"<{name}>", str(value))
    return template


class PySparkException(Exception):
    """An error sparkctl raises by PySpark's rules, named by its error class."""

    def __init__(
        self,
        message: str | None = None,
        errorClass: str | None = None,
        messageParameters: dict[str, str] | None = None,
    ) -> None:
        self._errorClass = errorClass
        self._messageParameters = dict(messageParameters or {})
        self._message = (
            message if message is not None else _fill(errorClass, self._messageParameters)
        )
        super().__init__(self._message)

    def getCondition(self) -> str | None:
        """The error class (PySpark 4's name for it)."""
        return self._errorClass

    def getErrorClass(self) -> str | None:
        """The error class, e.g. ``CONTEXT_ONLY_VALID_ON_DRIVER``."""
        return self._errorClass

    def getMessageParameters(self) -> dict[str, str]:
        """The values filled into the error class's message."""
        return dict(self._messageParameters)

    def getMessage(self) -> str:
        """``[ERROR_CLASS] message``, as str() gives it."""
        return str(self)

    def getSqlState(self) -> str | None:
        """The SQLSTATE: None, as for every error PySpark raises in Python for RDD code."""
        return None

    def getQueryContext(self) -> list[Any]:
        """Where in a SQL query the error arose: none here (sparkctl runs no SQL)."""
        return []

    def getBreakingChangeInfo(self) -> Any:
        """Spark 4.1's note on a breaking change behind the error: none here."""
        return None

    def __str__(self) -> str:
        if self._errorClass is None:
            return self._message
        return f"[{self._errorClass}] {self._message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only state: the default reduce would pass str(self) as `message` only.
        return (_rebuild, (type(self), self._message, self._errorClass, self._messageParameters))


def _rebuild(
    cls: type[PySparkException], message: str, errorClass: str | None, params: dict[str, str]
) -> PySparkException:
    return cls(message, errorClass, params)


class PySparkRuntimeError(PySparkException, RuntimeError):
    """A PySpark error that is also a RuntimeError."""


class PySparkValueError(PySparkException, ValueError):
    """A PySpark error that is also a ValueError."""


class PySparkTypeError(PySparkException, TypeError):
    """A PySpark error that is also a TypeError."""


class SparkSQLNotSupportedError(NotImplementedError):
    """Raised by every Spark SQL feature: sparkctl runs PySpark's RDD API only."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: Spark SQL is not part of sparkctl, which runs PySpark's RDD API only; "
            "use spark.sparkContext and RDDs (spark.read.text(path).rdd reads text files)"
        )
