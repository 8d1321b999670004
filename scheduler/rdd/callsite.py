"""Call sites as PySpark shows them: "collect at /path/app.py:12".

The API function is the outermost frame in the `scheduler` package, the place
is the user's frame that called it (PySpark's traceback_utils.first_spark_call).
Stage names (status tracker, UI, event log) and the `callSite.short` property
of a job's tasks come from here. Walks frames only; never raises.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

__all__ = ["first_api_call", "stage_name", "task_set_name"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


_OURS: dict[str, bool] = {}


def first_api_call() -> str | None:
    """`"<api> at <file>:<line>"` for the current stack; None when no user code called us."""
    site = None
    api = None  # the outermost of our frames just inside the frame at hand
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        ours = _OURS.get(code.co_filename)
        if ours is None:
            ours = _OURS[code.co_filename] = os.path.abspath(code.co_filename).startswith(_PACKAGE)
        if ours:
            api = code.co_name
        else:
            if api is not None:  # the user's frame that called our API: the outermost wins
                site = f"{api} at {code.co_filename}:{frame.f_lineno}"
            api = None
        frame = frame.f_back
    return site


def stage_name(rdd: Any, properties: dict[str, str], is_map: bool) -> str:
    """A stage's name as Spark gives it: a map stage's RDD's creation site, else the job's."""
    site = getattr(rdd, "_creation_site", None) if is_map else properties.get("callSite.short")
    return site or repr(rdd)


def task_set_name(spec: Any) -> str:
    """The name of the stage a TaskSetSpec runs."""
    return stage_name(spec.rdd, spec.properties, spec.shuffle_dep is not None)
