"""Custom resources (GPUs, FPGAs) of a process: found once at its start, as Spark finds them.

Shared by the Worker (`spark.worker.resource.*`, `spark.worker.resourcesFile`)
and the driver (`spark.driver.resource.*`, `spark.driver.resourcesFile`), which
may not import each other: it lives beside `Conf` for that reason alone.
`{prefix}{name}.amount` asks for `amount` addresses of `name`; they come from
the resources file (Spark's JSON allocation list) when it names them, else
from `{prefix}{name}.discoveryScript`, a program that prints
`{"name": "gpu", "addresses": ["0", "1"]}`. All addresses found are the
process's. This module runs the script and reads the file; it keeps no state
and sends nothing.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import subprocess
from collections.abc import Mapping

__all__ = [
    "DISCOVERY_TIMEOUT_S",
    "RESOURCE_PREFIX",
    "ResourceDiscoveryError",
    "discover_resources",
    "resource_names",
    "run_discovery_script",
]

#: The worker's keys: spark.worker.resource.{name}.{amount,discoveryScript,vendor}.
RESOURCE_PREFIX = "spark.worker.resource."
#: How long a discovery script may run (Spark waits forever; a hung start helps no one).
DISCOVERY_TIMEOUT_S = 60.0

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class ResourceDiscoveryError(ValueError):
    """A resource could not be found as configured; the message names the key or script."""


def resource_names(conf: Mapping[str, str], prefix: str = RESOURCE_PREFIX) -> list[str]:
    """The resource names that `prefix`{name}.* keys mention, sorted."""
    names = set()
    for key in conf:
        if key.startswith(prefix):
            name, dot, _setting = key[len(prefix) :].rpartition(".")
            if dot and name:
                names.add(name)
    return sorted(names)


def run_discovery_script(script: str, name: str, timeout: float = DISCOVERY_TIMEOUT_S) -> list[str]:
    """Run a discovery script and return the addresses it printed for `name`.

    Raises:
        ResourceDiscoveryError: the script is missing, fails, hangs, or prints
            something other than `{"name": name, "addresses": [...]}`.
    """
    if not os.path.isfile(script):
        raise ResourceDiscoveryError(f"Resource script: {script} to discover {name} doesn't exist!")
    try:
        try:
            done = _run([script], timeout)
        except OSError as exc:
            if exc.errno != errno.ENOEXEC:
                raise
            # No "#!" line: a shell runs it, as execvp and the JVM do (PySpark's own
            # tests write such scripts).
            done = _run(["/bin/sh", script], timeout)
    except subprocess.TimeoutExpired:
        raise ResourceDiscoveryError(
            f"discovery script {script} for {name} did not finish within {timeout:.0f} s"
        ) from None
    except OSError as exc:
        raise ResourceDiscoveryError(
            f"could not run discovery script {script} for {name}: {exc}"
        ) from None
    if done.returncode != 0:
        raise ResourceDiscoveryError(
            f"discovery script {script} for {name} exited with code {done.returncode}: "
            f"{done.stderr.strip()[-500:]}"
        )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise ResourceDiscoveryError(
            f"Error running the resource discovery script {script}: it printed "
            f"{done.stdout.strip()[:200]!r}, not JSON like "
            '{"name": "gpu", "addresses": ["0", "1"]}'
        ) from None
    return _checked_addresses(result, name, f"the resource discovery script {script}")


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _checked_addresses(result: object, name: str, source: str) -> list[str]:
    if not isinstance(result, dict) or not isinstance(result.get("addresses"), list):
        raise ResourceDiscoveryError(
            f"Error running {source}: expected a JSON object with 'name' and 'addresses', "
            f"got {str(result)[:200]}"
        )
    if result.get("name") != name:
        raise ResourceDiscoveryError(
            f"Error running {source}: script returned resource name {result.get('name')} "
            f"and we were expecting {name}."
        )
    addresses = [str(a) for a in result["addresses"]]
    if len(set(addresses)) != len(addresses):
        raise ResourceDiscoveryError(f"{source} gave {name} the same address twice: {addresses}")
    return addresses


def _from_file(path: str, component: str) -> dict[str, list[str]]:
    """Spark's resources file: [{"id": {"componentName", "resourceName"}, "addresses"}]."""
    try:
        entries = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ResourceDiscoveryError(f"Error parsing resources file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise ResourceDiscoveryError(f"Error parsing resources file {path}: not a JSON list")
    found: dict[str, list[str]] = {}
    for entry in entries:
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, dict) or "resourceName" not in ident:
            raise ResourceDiscoveryError(
                f"Error parsing resources file {path}: each entry needs "
                '{"id": {"componentName": ..., "resourceName": ...}, "addresses": [...]}'
            )
        if ident.get("componentName") != component:
            continue
        name = str(ident["resourceName"])
        found[name] = _checked_addresses(
            {"name": name, "addresses": entry.get("addresses")}, name, f"resources file {path}"
        )
    return found


def discover_resources(
    conf: Mapping[str, str],
    prefix: str = RESOURCE_PREFIX,
    resources_file: str | None = None,
    component: str = "spark.worker",
) -> dict[str, tuple[str, ...]]:
    """Every configured resource's addresses: from the resources file, else its script.

    Args:
        conf: the settings (`{prefix}{name}.amount`, `.discoveryScript`).
        prefix: `spark.worker.resource.` here; the driver passes its own.
        resources_file: a resources file's path (`spark.worker.resourcesFile`).
        component: the file entries' `componentName` that are ours.

    Raises:
        ResourceDiscoveryError: a bad amount or name, no script and no file entry, a
            failing script, or fewer addresses than the amount asks for.
    """
    from_file = _from_file(resources_file, component) if resources_file else {}
    found: dict[str, tuple[str, ...]] = {}
    for name in resource_names(conf, prefix):
        if not _NAME.match(name):
            raise ResourceDiscoveryError(f"bad resource name {name!r} in {prefix}{name}.*")
        raw = conf.get(f"{prefix}{name}.amount")
        if raw is None:
            raise ResourceDiscoveryError(
                f"You must specify an amount for {name} ({prefix}{name}.amount)"
            )
        try:
            amount = float(raw)
        except ValueError:
            raise ResourceDiscoveryError(
                f"{prefix}{name}.amount must be a whole number, not {raw!r}"
            ) from None
        if amount % 1 != 0 or amount < 0:
            raise ResourceDiscoveryError(
                f"Only tasks support fractional resources, please check your {component} "
                f"settings ({prefix}{name}.amount = {raw})"
            )
        if amount == 0:
            continue
        if name in from_file:
            addresses = from_file[name]
        else:
            script = conf.get(f"{prefix}{name}.discoveryScript")
            if not script:
                raise ResourceDiscoveryError(
                    f"User is expecting to use resource: {name}, but didn't specify a "
                    f"discovery script! ({prefix}{name}.discoveryScript)"
                )
            addresses = run_discovery_script(script, name)
        if len(addresses) < amount:
            raise ResourceDiscoveryError(
                f"Resource: {name}, with addresses: {','.join(addresses)} is less than what "
                f"the user requested: {int(amount)})"
            )
        found[name] = tuple(addresses)
    return found
