"""Threads that carry the driver thread's local properties (job group, pool, ...).

Local properties belong to the thread that set them, as in PySpark's pinned
thread mode; a thread started through `InheritableThread`, or a function
wrapped by `inheritable_thread_target`, sees a copy of its creator's.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["InheritableThread", "inheritable_thread_target"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _snapshot() -> dict[str, str] | None:
    from scheduler.api.context import SparkContext

    sc = SparkContext._active_spark_context
    return dict(sc._local_props()) if sc is not None else None


def _install(props: dict[str, str] | None) -> None:
    from scheduler.api.context import SparkContext

    sc = SparkContext._active_spark_context
    if sc is not None and props is not None:
        sc._thread_local.props = dict(props)


def inheritable_thread_target(f: _F) -> _F:
    """Wrap `f` so that, in whatever thread runs it, the caller's local properties apply."""
    props = _snapshot()

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _install(props)
        return f(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


class InheritableThread(threading.Thread):
    """A `threading.Thread` that starts with a copy of its creator's local properties."""

    def __init__(self, target: Callable[..., Any], **kwargs: Any) -> None:
        kwargs.pop("session", None)  # PySpark's SparkSession argument; there is none here
        kwargs["target"] = inheritable_thread_target(target)
        super().__init__(**kwargs)
