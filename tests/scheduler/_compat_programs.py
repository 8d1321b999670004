"""Run a whole driver program, as a user runs ``python app.py``, on sparkctl or PySpark.

Some behaviours belong to a program rather than to a SparkContext: the defaults
of a bare ``SparkContext()``, a ``SparkSession`` built from scratch, the
example programs. The compat tests write such a program with ``from scheduler
import ...`` lines; in oracle mode (``SPARKCTL_TEST_IMPL=pyspark``) each of
those lines is rewritten to the PySpark module that defines the name, which is
"the import line changes" the other way round.

The web UI is turned off through each implementation's launcher settings
(``SPARKCTL_SUBMIT_CONF`` / ``PYSPARK_SUBMIT_ARGS``), so programs need not say so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import _compat_support as support

#: A program's wall-clock limit (PySpark starts a JVM per program).
RUN_TIMEOUT_S = 120

#: Where PySpark defines the names our ``scheduler`` package exports.
_PYSPARK_HOME = {
    "SparkSession": "pyspark.sql",
    "Row": "pyspark.sql",
    "ResultIterable": "pyspark.resultiterable",
    "BasicProfiler": "pyspark.profiler",
}

_IMPORT = re.compile(r"^(\s*)from scheduler import (.+)$", re.MULTILINE)


def as_pyspark(source: str) -> str:
    """``source`` with each ``from scheduler import a, b`` line pointed at PySpark."""

    def replace(match: re.Match[str]) -> str:
        indent, names = match.group(1), [n.strip() for n in match.group(2).split(",")]
        lines = [f"{indent}from {_PYSPARK_HOME.get(n, 'pyspark')} import {n}" for n in names]
        return "\n".join(lines)

    return _IMPORT.sub(replace, source)


def launcher_env(conf: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a program: no web UI, this repository importable."""
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"}
    settings.update(conf or {})
    env = {**os.environ, "PYTHONPATH": str(support.REPO), "PYTHONHASHSEED": "0"}
    if support.IMPL == "pyspark":
        args = " ".join(f"--conf {k}={v}" for k, v in settings.items())
        env["PYSPARK_SUBMIT_ARGS"] = f"{args} pyspark-shell"
    else:
        env["SPARKCTL_SUBMIT_CONF"] = json.dumps(settings)
    return env


def write_program(source: str, directory: Path, name: str = "app.py") -> Path:
    """Write ``source`` (in the implementation's import form) to ``directory/name``."""
    script = directory / name
    script.write_text(as_pyspark(source) if support.IMPL == "pyspark" else source)
    return script


def run_program(
    source: str, directory: Path, args: list[str] | None = None, returncode: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as ``python app.py ARGS`` in ``directory``; check its exit status."""
    script = write_program(source, directory)
    done = subprocess.run(
        [sys.executable, str(script), *(args or [])],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=str(directory),
        env=launcher_env(),
        check=False,
    )
    assert done.returncode == returncode, (
        f"app.py exited {done.returncode}, not {returncode}:\n{done.stderr[-3000:]}"
    )
    return done
