"""Jinja2 rendering shared by the web UIs: one autoescaping environment, filters.

Everything a page shows comes from the cluster, and ids, names and addresses
are chosen by users: autoescaping is on for every template, and links built
from reported addresses go through `safe_url`, which only lets http(s) through.
This module never fetches state itself.
"""

from __future__ import annotations

import datetime
import functools
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = ["format_duration", "format_mib", "format_time", "render_page", "safe_url"]

_TEMPLATES = Path(__file__).parent / "templates"


def format_mib(mib: int | float) -> str:
    """`1536` -> `1.5 GiB`, `300` -> `300.0 MiB`."""
    value = float(mib)
    for unit in ("MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def format_time(ms: int) -> str:
    """A millisecond timestamp as `2026-11-22 20:15:03` (UTC); empty for 0."""
    if ms <= 0:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(ms: int) -> str:
    """`950` -> `950 ms`, `61000` -> `1.0 min`, as Spark's UI shows durations."""
    if ms < 1000:
        return f"{max(ms, 0)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def safe_url(url: str) -> str:
    """`url` when it is an http(s) URL, else `#` (no javascript: or data: links)."""
    if not url:
        return "#"
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return "#"
    return url.rstrip("/")


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # on the first page, not at daemon start: an idle daemon stays smaller

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["mib"] = format_mib
    env.filters["time"] = format_time
    env.filters["duration"] = format_duration
    env.filters["safe_url"] = safe_url
    return env


def render_page(template: str, **context: Any) -> bytes:
    """Render `template` with `context` to UTF-8 bytes."""
    return _environment().get_template(template).render(**context).encode("utf-8")
