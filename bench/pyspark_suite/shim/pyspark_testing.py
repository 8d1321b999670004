"""The test utilities PySpark's test files import, written for sparkctl.

Served as ``pyspark.testing.utils`` and ``pyspark.testing.sqlutils`` by
`pyspark_alias`. The test cases start a real ``scheduler.SparkContext`` on
``local[4]``, as PySpark's do; ``SPARK_HOME`` is the Spark source tree the test
files came from (its ``python/test_support`` holds their data files).
"""

from __future__ import annotations

import functools
import importlib
import os
import struct
import sys
import time
import unittest
from collections.abc import Callable
from typing import Any

SPARK_HOME = os.environ.get("SPARKCTL_PYSPARK_SPARK_HOME", "")

#: The master PySpark's test cases use.
TEST_MASTER = "local[4]"


def have_package(name: str) -> bool:
    """Whether `name` imports (a test is skipped when its package is absent)."""
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


def _requirement(name: str) -> str | None:
    return None if have_package(name) else f"No module named '{name}'"


have_numpy = have_package("numpy")
numpy_requirement_message = _requirement("numpy")
have_scipy = have_package("scipy")
scipy_requirement_message = _requirement("scipy")
have_pandas = have_package("pandas")
pandas_requirement_message = _requirement("pandas")
have_pyarrow = have_package("pyarrow")
pyarrow_requirement_message = _requirement("pyarrow")
have_flameprof = have_package("flameprof")
flameprof_requirement_message = _requirement("flameprof")


def read_int(data: bytes) -> int:
    """A big-endian 4-byte int, as PySpark's framing writes it."""
    return int(struct.unpack("!i", data)[0])


def write_int(value: int) -> bytes:
    """The inverse of read_int."""
    return struct.pack("!i", value)


def eventually(
    timeout: float = 30.0, catch_assertions: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Retry a condition until it returns True or None, failing after `timeout` s."""
    if timeout <= 0:
        raise ValueError(f"eventually: timeout must be positive, not {timeout!r}")

    def decorate(condition: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(condition)
        def retry(*args: Any, **kwargs: Any) -> None:
            deadline = time.monotonic() + timeout
            last: Any = None
            while time.monotonic() < deadline:
                try:
                    last = condition(*args, **kwargs)
                except AssertionError as exc:
                    if not catch_assertions:
                        raise
                    last = exc
                if last is True or last is None:
                    return
                time.sleep(0.01)
            if isinstance(last, AssertionError):
                raise last
            raise AssertionError(f"condition still false after {timeout:g} s: {last!r}")

        return retry

    return decorate


class QuietTest:
    """PySpark lowers the JVM's log level here; sparkctl's driver logs nothing to quiet."""

    def __init__(self, sc: Any) -> None:
        self.sc = sc

    def __enter__(self) -> QuietTest:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class PySparkTestCase(unittest.TestCase):
    """A fresh context per test."""

    sc: Any

    def setUp(self) -> None:
        from scheduler import SparkContext

        self._old_sys_path = list(sys.path)
        self.sc = SparkContext(TEST_MASTER, type(self).__name__)

    def tearDown(self) -> None:
        self.sc.stop()
        sys.path = self._old_sys_path


class ReusedPySparkTestCase(unittest.TestCase):
    """One context per class; subclasses may override `conf` and `master`."""

    sc: Any

    @classmethod
    def conf(cls) -> Any:
        from scheduler import SparkConf

        return SparkConf()

    @classmethod
    def master(cls) -> str:
        return TEST_MASTER

    @classmethod
    def setUpClass(cls) -> None:
        from scheduler import SparkContext

        cls.sc = SparkContext(cls.master(), cls.__name__, conf=cls.conf())

    @classmethod
    def tearDownClass(cls) -> None:
        cls.sc.stop()

    def quiet(self) -> QuietTest:
        return QuietTest(self.sc)


class ByteArrayOutput:
    """A write-only byte sink."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data

    def close(self) -> None:
        return None


class PySparkErrorTestUtils:
    """``check_error`` against PySpark's error-class API (getCondition, getMessageParameters)."""

    def check_error(
        self,
        exception: BaseException,
        errorClass: str,
        messageParameters: dict[str, str] | None = None,
        **_: Any,
    ) -> None:
        case: Any = self
        condition = getattr(exception, "getCondition", None) or getattr(
            exception, "getErrorClass", None
        )
        case.assertIsNotNone(
            condition,
            f"{type(exception).__name__} has no PySpark error class (getCondition): {exception}",
        )
        case.assertEqual(errorClass, condition())
        if messageParameters is not None:
            case.assertEqual(messageParameters, exception.getMessageParameters())  # type: ignore[attr-defined]


def search_jar(*_: str) -> None:
    """No JVM build here: there is never a jar."""
    return None
