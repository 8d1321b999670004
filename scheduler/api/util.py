"""Small public helpers PySpark programs import: `keyword_only`, `VersionUtils`.

User code that defines parameter-setting classes in PySpark's style
(``@keyword_only def setParams(self, *, a=None): ... self._input_kwargs``)
imports it from ``pyspark``; here it is ``from scheduler import keyword_only``.
`VersionUtils` (``pyspark.util.VersionUtils``) parses a version string such as
``sc.version`` into (major, minor), for programs that branch on the Spark version.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["VersionUtils", "keyword_only"]

F = TypeVar("F", bound=Callable[..., Any])


def keyword_only(method: F) -> F:
    """Make `method` refuse positional arguments and record its keywords.

    The keywords a call passed (only those) are kept on the instance as
    ``self._input_kwargs`` before the method runs, so the method can tell what
    was given from what defaulted. A positional argument raises TypeError.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"Method {method.__name__} forces keyword arguments.")
        self._input_kwargs = kwargs
        return method(self, **kwargs)

    return wrapper  # type: ignore[return-value]


#: "major.minor", then nothing or "." and anything (so "2.3.0-SNAPSHOT", not "2.3-SNAPSHOT").
_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)(?:\..*)?$")


class VersionUtils:
    """Spark version strings, as ``pyspark.util.VersionUtils``."""

    @staticmethod
    def majorMinorVersion(sparkVersion: str) -> tuple[int, int]:
        """The (major, minor) numbers of `sparkVersion`: (2, 0) for "2.0.1-SNAPSHOT".

        Raises:
            ValueError: the string does not start with "<major>.<minor>" followed by
                nothing or a dot.
        """
        match = _MAJOR_MINOR.match(sparkVersion)
        if match is None:
            raise ValueError(
                f"Spark tried to parse {sparkVersion!r} as a Spark version string, but it "
                "could not find the major and minor version numbers."
            )
        return int(match.group(1)), int(match.group(2))
