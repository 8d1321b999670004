"""The `sparkctl` command line: one click group over the command modules.

Usage errors (bad flag values, missing files, unknown master URL schemes,
unreachable masters) exit with status 2 and a message naming the flag;
other failures exit with status 1 and one line of explanation. A traceback
is printed only when SPARKCTL_DEBUG is set.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

__all__ = ["cli", "main"]

#: command name -> (module, attribute); modules load only when their command runs,
#: so `sparkctl stop-master` does not pay for gRPC or the web UI code.
_COMMANDS = {
    "start-master": ("cli._daemon_cmds", "start_master"),
    "start-worker": ("cli._daemon_cmds", "start_worker"),
    "stop-master": ("cli._daemon_cmds", "stop_master"),
    "stop-worker": ("cli._daemon_cmds", "stop_worker"),
    "submit": ("cli._submit", "submit"),
    "status": ("cli._status", "status"),
    "kill": ("cli._status", "kill"),
    "start-history-server": ("cli._history_cmds", "start_history_server"),
    "stop-history-server": ("cli._history_cmds", "stop_history_server"),
    "ui-token": ("cli._ui_token", "ui_token"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        command = getattr(importlib.import_module(target[0]), target[1])
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="sparkctl", prog_name="sparkctl")
def cli() -> None:
    """A Spark-style standalone cluster manager."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `sparkctl` console script."""
    run_command(cli, argv, "sparkctl")


def run_command(command: click.Command, argv: list[str] | None, prog_name: str) -> None:
    """Run a click command; what click did not turn into a message becomes one line."""
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=True)
    except Exception as exc:  # anything click did not turn into a message
        if os.environ.get("SPARKCTL_DEBUG"):
            raise
        message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        click.echo(f"Error: {message} (set SPARKCTL_DEBUG=1 for a traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
