"""Call sites as PySpark shows them: "collect at /path/app.py:12".

The API function is the outermost frame in the `scheduler` package, the place
is the user's frame that called it (PySpark's traceback_utils.first_spark_call).
Stage names (status tracker, UI, event log) and the `callSite.short` property
of a job's tasks come from here. Walks frames only; never raises.
"""

from __future__ import annotations

import functools
import os
import sys
from types import FrameType
from typing import Any

__all__ = ["first_api_call", "stage_name", "task_set_name"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


@functools.lru_cache(maxsize=1024)
def _ours(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE)


def first_api_call() -> str | None:
    """`"<api> at <file>:<line>"` for the current stack; None when no user code called us."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    # Outermost first: the first frame of ours after the user's is the API they called.
    for outer, inner in zip(reversed(frames), reversed(frames[:-1]), strict=False):
        if _ours(inner.f_code.co_filename):
            if _ours(outer.f_code.co_filename):
                return None
            return f"{inner.f_code.co_name} at {outer.f_code.co_filename}:{outer.f_lineno}"
    return None


def stage_name(rdd: Any, properties: dict[str, str], is_map: bool) -> str:
    """A stage's name as Spark gives it: a map stage's RDD's creation site, else the job's."""
    site = getattr(rdd, "_creation_site", None) if is_map else properties.get("callSite.short")
    return site or repr(rdd)


def task_set_name(spec: Any) -> str:
    """The name of the stage a TaskSetSpec runs."""
    return stage_name(spec.rdd, spec.properties, spec.shuffle_dep is not None)
