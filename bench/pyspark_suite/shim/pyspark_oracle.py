"""Oracle runs: the pinned test files on the installed PySpark, with three names put back.

The test files are from Spark's 4.0 development line; the PySpark the oracle installs
may be a later 4.x, whose test utilities moved three names the files import. Each is
added where the files look for it, pointing at the same object's new home, once the
module that should hold it has been imported. Nothing else of PySpark is touched.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable, Sequence

#: module -> (name, how to find the value once that module is loaded)
MOVED: dict[str, tuple[str, Callable[[], object]]] = {
    "pyspark.testing.utils": (
        "SPARK_HOME",
        lambda: importlib.import_module("pyspark.testing.sqlutils").SPARK_HOME,
    ),
    "pyspark.testing.sqlutils": (
        "have_pandas",
        lambda: importlib.import_module("pyspark.testing.utils").have_pandas,
    ),
    "pyspark.profiler": (
        "has_memory_profiler",
        lambda: importlib.import_module("pyspark.memory_profiler_ext").has_memory_profiler,
    ),
}


class _AddName(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader, fullname: str) -> None:
        self.real = real
        self.fullname = fullname

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.real.exec_module(module)
        name, value = MOVED[self.fullname]
        if not hasattr(module, name):
            setattr(module, name, value())


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _AddName(spec.loader, fullname)
        return spec


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
