"""`spark-submit`: Spark's launcher command line, run as `sparkctl submit`.

Scripts and tools that call `spark-submit` (or `$SPARK_HOME/bin/spark-submit`)
keep working: this command reads spark-submit's grammar (options, then the
primary resource, then the application's arguments; `--flag value` or
`--flag=value`; `-c`/`--conf key=value`), maps each flag onto `sparkctl
submit`'s, and runs that command, so both behave the same. `--kill` and
`--status` become `sparkctl kill` / `sparkctl status`. Flags that only make
sense for JVM applications (`--class`, `--jars`, `--packages`, ...) or for
other cluster managers are refused with a message that names them; a
primary resource that is not a Python file is refused too. Usage errors
exit with status 2, as every sparkctl command does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

__all__ = ["main", "translate"]

#: spark-submit flags that take a value, mapped to `sparkctl submit`'s (same names).
_VALUE_FLAGS = (
    "--master",
    "--deploy-mode",
    "--name",
    "--py-files",
    "--files",
    "--archives",
    "--properties-file",
    "--driver-memory",
    "--driver-cores",
    "--executor-memory",
    "--executor-cores",
    "--total-executor-cores",
)
#: Flags of JVM applications or of other cluster managers: refused, saying why.
_REFUSED = {
    "--class": "it names a JVM main class; sparkctl runs Python applications (give app.py)",
    "--jars": "JVM jars have no use in sparkctl's Python executors",
    "--packages": "Maven packages are JVM jars; install Python packages on the workers instead",
    "--exclude-packages": "Maven packages are JVM jars",
    "--repositories": "Maven repositories serve JVM jars",
    "--driver-class-path": "it is a JVM class path",
    "--driver-java-options": "sparkctl's driver is a Python process, not a JVM",
    "--driver-library-path": "it is a JVM library path",
    "--proxy-user": "sparkctl does not impersonate users",
    "--principal": "Kerberos is not supported",
    "--keytab": "Kerberos is not supported",
    "--queue": "YARN queues do not exist on a standalone cluster",
    "--num-executors": "it is a YARN/Kubernetes flag; use --total-executor-cores",
}
_USAGE = """\
Usage: spark-submit [options] <app.py> [app arguments]
Usage: spark-submit --kill [submission ID] --master spark://host:port
Usage: spark-submit --status [submission ID] --master spark://host:port

Options (as Spark's, run by `sparkctl submit`):
  --master MASTER_URL         spark://host:port, local, local[N], local[*] (default local[*])
  --deploy-mode MODE          client (default) or cluster
  --name NAME                 application name (default: the app file's name)
  --py-files PY_FILES         comma-separated .zip, .egg or .py files for the PYTHONPATH
  --files FILES               comma-separated files for SparkFiles.get(name)
  --archives ARCHIVES         comma-separated archives unpacked in the executors
  --conf, -c PROP=VALUE       a Spark configuration property (repeatable)
  --properties-file FILE      extra properties (default: conf/spark-defaults.conf)
  --driver-memory MEM         driver memory, e.g. 1g
  --driver-cores NUM          driver cores (cluster deploy mode)
  --executor-memory MEM       memory per executor, e.g. 1g
  --executor-cores NUM        cores per executor
  --total-executor-cores NUM  cores for the whole application
  --supervise                 restart the driver when it fails (cluster deploy mode)
  --kill SUBMISSION_ID        kill a driver (with --master)
  --status SUBMISSION_ID      print a driver's status (with --master)
  --verbose, -v               print the parsed arguments
  --version                   print the version
  --help, -h                  print this help
"""


class SubmitUsageError(click.UsageError):
    """A spark-submit flag that sparkctl does not take; exits with status 2."""


def translate(argv: Sequence[str]) -> tuple[str, list[str], list[str]]:
    """spark-submit's arguments as (sparkctl command, its arguments, verbose lines).

    Raises:
        SubmitUsageError: a refused flag, a flag without its value, or no application.
    """
    options: dict[str, str] = {}
    confs: list[str] = []
    flags: list[str] = []
    action: tuple[str, str] | None = None
    verbose = False
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, has_value, inline = arg.partition("=")
        if name in ("-h", "--help"):
            return "help", [], []
        if name == "--version":
            return "version", [], []
        if name in ("-v", "--verbose"):
            verbose = True
            i += 1
            continue
        if name == "--supervise":
            flags.append(name)
            i += 1
            continue
        if name in _REFUSED:
            raise SubmitUsageError(f"spark-submit {name} is not supported: {_REFUSED[name]}")
        if name not in (*_VALUE_FLAGS, "--conf", "-c", "--kill", "--status"):
            raise SubmitUsageError(f"unrecognized option {name!r} (see spark-submit --help)")
        if has_value:
            value = inline
        elif i + 1 < len(args):
            i += 1
            value = args[i]
        else:
            raise SubmitUsageError(f"spark-submit {name} needs a value")
        if name in ("--conf", "-c"):
            if "=" not in value:
                raise SubmitUsageError(f"--conf {value!r}: expected KEY=VALUE")
            confs.append(value)
        elif name in ("--kill", "--status"):
            action = (name[2:], value)
        else:
            options[name] = value
        i += 1
    command_args: list[str] = []
    for key in ("--master", "--properties-file"):
        if key in options:
            command_args += [key, options[key]]
    for conf in confs:
        command_args += ["--conf", conf]
    if action is not None:
        command, submission = action
        action_lines = [f"Action: {command} {submission}"] if verbose else []
        return command, [submission, *command_args], action_lines
    rest = args[i:]
    if not rest:
        raise SubmitUsageError("missing the application: spark-submit [options] <app.py> [args]")
    app, app_args = rest[0], rest[1:]
    if not app.endswith(".py"):
        raise SubmitUsageError(
            f"{app!r} is not a Python file: sparkctl runs Python applications (app.py)"
        )
    for key, value in options.items():
        if key not in ("--master", "--properties-file"):
            command_args += [key, value]
    if "--name" not in options and not any(c.startswith("spark.app.name=") for c in confs):
        # spark-submit names an application after its primary resource's file name.
        command_args += _default_name(options.get("--properties-file"), os.path.basename(app))
    command_args += flags
    lines: list[str] = []
    if verbose:
        lines.append("Parsed arguments:")
        for key in _VALUE_FLAGS:
            lines.append(f"  {key[2:]:<24}{options.get(key, 'null')}")
        lines.append(f"  {'supervise':<24}{'--supervise' in flags}")
        lines.append(f"  {'primaryResource':<24}{Path(app).resolve()}")
        lines.append(f"  {'childArgs':<24}[{' '.join(app_args)}]")
        lines.append("Spark properties given with --conf:")
        lines.extend(f"  ({c.partition('=')[0]},{c.partition('=')[2]})" for c in confs)
    return "submit", [*command_args, app, *app_args], lines


def _default_name(properties_file: str | None, file_name: str) -> list[str]:
    """`--name FILE_NAME`, unless the properties (file or defaults) name the application."""
    from cli._config import ConfigError, load_conf
    from scheduler.settings import APP_NAME

    try:
        base = load_conf((), Path(properties_file) if properties_file else None, os.environ)
    except ConfigError:
        return []  # sparkctl submit reports the bad file, naming it
    return [] if base.get(APP_NAME) else ["--name", file_name]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `spark-submit` console script."""
    args = sys.argv[1:] if argv is None else argv
    try:
        command, command_args, lines = translate(args)
    except SubmitUsageError as exc:
        click.echo(f"Error: {exc.message}", err=True)
        click.echo("Run with --help for usage help.", err=True)
        sys.exit(2)
    if command == "help":
        click.echo(_USAGE, nl=False)
        return
    if command == "version":
        from importlib.metadata import version

        click.echo(f"spark-submit (sparkctl {version('sparkctl')}), for PySpark applications")
        return
    for line in lines:
        click.echo(line, err=True)
    _run(command, command_args)


def _run(command: str, args: list[str]) -> None:
    """Run a sparkctl command as `spark-submit`, with sparkctl's handling of failures."""
    if command == "submit":
        from cli._submit import submit as target
    elif command == "kill":
        from cli._status import kill as target
    else:
        from cli._status import status as target
    from cli.main import run_command

    run_command(target, args, "spark-submit")


if __name__ == "__main__":
    main()
