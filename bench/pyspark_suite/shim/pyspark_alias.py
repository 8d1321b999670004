"""Run PySpark's own test files against sparkctl: ``import pyspark`` means ``scheduler``.

A meta-path finder answers every ``pyspark`` and ``pyspark.<sub>`` import with a
*view* of ``scheduler``'s public namespace, since sparkctl keeps one flat public
surface where PySpark has many modules. A name that ``scheduler`` does not export
resolves to a placeholder class, so that a test file whose import line names one
missing class still runs its other tests; using the placeholder (calling it,
reading an attribute, an isinstance check, catching it) raises `NotInSparkctl` naming
the PySpark name.
`NotInSparkctl` derives from BaseException on purpose: a test's own
``assertRaises(Exception)`` must not take a missing API for the failure it expects.

Three module names get real content instead:

- ``pyspark.testing``, ``pyspark.testing.utils``, ``pyspark.testing.sqlutils``:
  our own test utilities (`pyspark_testing`), whose test cases start a real
  ``scheduler.SparkContext``.
- ``py4j.protocol.Py4JJavaError``: PySpark raises it when a job fails; here it is
  ``scheduler.SparkJobError``, the error sparkctl raises for the same event.

Packages whose docstring names them PySpark's (``scheduler.resource`` is
``pyspark.resource``, ``scheduler.errors`` is ``pyspark.errors``) answer for that
PySpark module first (see `equivalent`).

Installed in every Python process of a run (driver, executors, Python workers) by
this folder's ``sitecustomize.py``, so closures of the test modules unpickle on the
executors as they do on PySpark's.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

#: Submodules of PySpark that the test files import or reach as attributes.
PYSPARK_SUBMODULES = frozenset(
    {
        "accumulators",
        "broadcast",
        "cloudpickle",
        "conf",
        "context",
        "daemon",
        "errors",
        "files",
        "find_spark_home",
        "java_gateway",
        "join",
        "loose_version",
        "profiler",
        "rdd",
        "rddsampler",
        "resource",
        "resultiterable",
        "serializers",
        "shuffle",
        "sql",
        "statcounter",
        "status",
        "storagelevel",
        "taskcontext",
        "testing",
        "tests",
        "traceback_utils",
        "util",
        "version",
        "worker",
    }
)
#: Deeper PySpark modules the test files import.
PYSPARK_DEEP_MODULES = frozenset(
    {
        "resource.profile",
        "resource.requests",
        "resource.information",
        "sql.functions",
        "sql.types",
        "errors.exceptions",
    }
)
TESTING_MODULES = frozenset(
    {"pyspark.testing", "pyspark.testing.utils", "pyspark.testing.sqlutils"}
)


class NotInSparkctl(BaseException):
    """A PySpark name that sparkctl does not provide was used."""


def _private_home(name: str) -> str:
    """Where sparkctl defines `name` without exporting it (``scheduler.x.name``), or ''."""
    import pkgutil

    import scheduler

    for info in pkgutil.walk_packages(scheduler.__path__, "scheduler.", onerror=lambda _: None):
        try:
            module = importlib.import_module(info.name)
        except Exception:
            continue
        value = vars(module).get(name)
        if value is not None and getattr(value, "__module__", info.name) == info.name:
            return f"{info.name}.{name}"
    return ""


def _explain(qualname: str) -> str:
    short = qualname.rsplit(".", 1)[-1]
    home = _private_home(short)
    extra = f" (sparkctl has {home}, not exported)" if home else ""
    return f"{qualname} is not provided by sparkctl's public API{extra}"


class _MissingMeta(type):
    """Metaclass of placeholders: any use raises NotInSparkctl."""

    _qualname: str

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotInSparkctl(_explain(cls._qualname))

    def __instancecheck__(cls, instance: Any) -> bool:
        raise NotInSparkctl(_explain(cls._qualname))

    def __subclasscheck__(cls, subclass: type) -> bool:
        raise NotInSparkctl(_explain(cls._qualname))

    def __getattr__(cls, attr: str) -> Any:
        # Private names and pytest's markers are tools probing the class, not a test using it.
        if attr.startswith(("_", "pytest")):
            raise AttributeError(attr)
        raise NotInSparkctl(_explain(f"{cls._qualname}.{attr}"))


def missing(qualname: str) -> type:
    """A placeholder class for a PySpark name that sparkctl lacks."""
    short = qualname.rsplit(".", 1)[-1]
    return _MissingMeta(short, (Exception,), {"_qualname": qualname, "__module__": "pyspark"})


def equivalent(name: str) -> types.ModuleType | None:
    """sparkctl's own module for ``pyspark.<sub>[.<mod>]``, if it has one.

    That is ``scheduler.<sub>[.<mod>]`` when the module ``scheduler.<sub>`` says in its
    docstring that it is PySpark's ``pyspark.<sub>`` (as ``scheduler.resource`` and
    ``scheduler.errors`` do);
    sparkctl's other subpackages are its own layers, whatever their names.
    """
    rel = name.removeprefix("pyspark.")
    if rel == name:
        return None
    top = rel.split(".", 1)[0]
    try:
        package = importlib.import_module(f"scheduler.{top}")
    except ImportError:
        return None
    if f"`pyspark.{top}`" not in (package.__doc__ or ""):
        return None
    try:
        return importlib.import_module(f"scheduler.{rel}")
    except ImportError:
        return None


class _View(types.ModuleType):
    """``pyspark`` or ``pyspark.<sub>``: scheduler's public names, placeholders for others.

    A name is looked up in sparkctl's equivalent module first (see `equivalent`), then
    among ``scheduler``'s exports.
    """

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        import scheduler

        own = equivalent(self.__name__)
        if own is not None and attr in getattr(own, "__all__", ()):
            return getattr(own, attr)
        if own is not None and not hasattr(own, "__all__") and not attr.startswith("_"):
            value = getattr(own, attr, None)
            if value is not None:
                return value
        if attr in scheduler.__all__:
            return getattr(scheduler, attr)
        sub = f"{self.__name__}.{attr}"
        rel = sub.removeprefix("pyspark.")
        if rel in PYSPARK_SUBMODULES or rel in PYSPARK_DEEP_MODULES or sub in TESTING_MODULES:
            return importlib.import_module(sub)
        value = missing(sub)
        setattr(self, attr, value)
        return value


class _Py4JProtocol(types.ModuleType):
    def __getattr__(self, attr: str) -> Any:
        if attr == "Py4JJavaError":
            import scheduler

            return scheduler.SparkJobError
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return missing(f"py4j.protocol.{attr}")


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        name = spec.name
        if name in TESTING_MODULES:
            import pyspark_testing

            module = types.ModuleType(name)
            module.__dict__.update(
                {k: v for k, v in vars(pyspark_testing).items() if not k.startswith("__")}
            )
            return module
        if name == "py4j.protocol":
            return _Py4JProtocol(name)
        if name.startswith("py4j"):
            return types.ModuleType(name)
        return _View(name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # every view may have submodules


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        top = fullname.split(".", 1)[0]
        if top not in ("pyspark", "py4j"):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
