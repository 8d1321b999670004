"""The `sparkctl` command line: one click group over the command modules.

Usage errors (bad flag values, missing files, unknown master URL schemes,
unreachable masters) exit with status 2 and a message naming the flag;
other failures exit with status 1 and one line of explanation. A traceback
is printed only when SPARKCTL_DEBUG is set.
"""

from __future__ import annotations

import os
import sys

import click

from cli._daemon_cmds import start_master, start_worker, stop_master, stop_worker
from cli._status import kill, status
from cli._submit import submit

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="sparkctl", prog_name="sparkctl")
def cli() -> None:
    """A Spark-style standalone cluster manager."""


for _command in (start_master, start_worker, stop_master, stop_worker, submit, status, kill):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `sparkctl` console script."""
    try:
        cli.main(args=argv, prog_name="sparkctl", standalone_mode=True)
    except Exception as exc:  # anything click did not turn into a message
        if os.environ.get("SPARKCTL_DEBUG"):
            raise
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        click.echo(f"Error: {message} (set SPARKCTL_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
