"""`keyword_only`: the decorator PySpark exports for methods that take keywords only.

User code that defines parameter-setting classes in PySpark's style
(``@keyword_only def setParams(self, *, a=None): ... self._input_kwargs``)
imports it from ``pyspark``; here it is ``from scheduler import keyword_only``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["keyword_only"]

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
