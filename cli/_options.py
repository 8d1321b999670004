"""Click parameter types and option groups shared by the sparkctl commands.

Bad values are rejected while parsing, so click exits with status 2 and a
message that names the flag. This module holds no command logic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from cli._config import parse_memory_mb

__all__ = ["COUNT", "MEMORY", "conf_options", "usage_error"]

F = TypeVar("F", bound=Callable[..., Any])


class _MemoryType(click.ParamType[int]):
    """A memory amount such as `4g` or `512m`, converted to MiB."""

    name = "memory"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_memory_mb(str(value))
        except ValueError as exc:
            text = str(exc)
            hint = "" if "512m or 4g" in text else " (expected e.g. 512m or 4g)"
            self.fail(f"{text}{hint}", param, ctx)


MEMORY = _MemoryType()

#: A number of cores or executors: at least 1, and at most what the wire's int32 carries
#: (a larger one failed to serialize: a worker never registered, an app died).
COUNT = click.IntRange(min=1, max=2**31 - 1)


def conf_options(function: F) -> F:
    """Add `--conf key=value` (repeatable) and `--properties-file FILE`."""
    function = click.option(
        "--properties-file",
        type=click.Path(exists=True, dir_okay=False, readable=True, resolve_path=True),
        help="Spark properties file (default: $SPARK_CONF_DIR/spark-defaults.conf).",
    )(function)
    function = click.option(
        "--conf",
        "conf_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="A Spark configuration property (repeatable).",
    )(function)
    return function


def usage_error(flag: str, message: str) -> click.BadParameter:
    """A usage error naming `flag`; click exits with status 2."""
    return click.BadParameter(message, param_hint=f"'{flag}'" if flag.startswith("-") else flag)
