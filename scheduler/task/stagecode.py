"""A stage's code and its parallelized data, pickled apart.

Python workers unpickle a stage's code afresh for every task, so that state a
user's function captures (a module-level set, a callable object's counter, a
mutable default) starts anew in each task, as in PySpark, whose workers
deserialize the task's function per task. The data of `parallelize`, which can
be large and which tasks only read, is pickled beside the code, unpickled once
per worker and shared by the stage's tasks there.

A header in front of both, plain JSON, carries what a worker must set up
before it unpickles anything: the manifest of the files added with
addFile/addPyFile/addArchive (a task's function, or an object in its data, may
come from an added module), and the driver's Python major.minor version (a
worker on another minor version fails the task with PySpark's message rather
than unpickling code compiled for another interpreter).

Payload layout: 8 bytes (little endian) giving the header's length, the header
(JSON: the stage's files properties and `PYTHON_VERSION_KEY`), 8 bytes giving
the code pickle's length, the code pickle, then the data pickle (empty when
the stage has no parallelized data).
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import operator
import pickle
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from scheduler.task.sparkfiles import FILES_MANIFEST_PROPERTY, FILES_ROOT_PROPERTY

__all__ = [
    "DRIVER_PYTHON",
    "PYTHON_VERSION_KEY",
    "StageCode",
    "dumps_stage",
    "externalize",
    "has_private_state",
    "read_stage_header",
    "resolve",
    "stage_header",
    "stage_python_version",
]

#: Local properties a worker needs before it unpickles a stage (see the module doc).
_HEADER_KEYS = (FILES_ROOT_PROPERTY, FILES_MANIFEST_PROPERTY)

#: The header's entry naming the driver's Python version (not a property: never a task's).
PYTHON_VERSION_KEY = "sparkctl.python.version"
#: Major.minor of the Python that pickles stages: the driver's.
DRIVER_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"

_tracking = threading.local()


class _DataRef:
    """Stands in the code pickle for one piece of data pickled beside it."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (_DataRef, (self.index,))


#: id -> (function or class, its module's name) of those cloudpickle pickled by
#: reference (importable as module.name): most of a stage's objects, asked about again
#: for every stage (see `_StagePickler`).
_BY_REFERENCE: dict[int, tuple[Any, str]] = {}
#: cloudpickle's modules pickled by value, when `_BY_REFERENCE` was last valid.
_BY_VALUE_SEEN: frozenset[str] = frozenset()
_BY_REFERENCE_LIMIT = 4096


class _StagePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler, remembering which functions and classes go by reference.

    cloudpickle checks every function and class it meets for importability
    (module lookups, attribute walks, its by-value registry): about half the time
    of pickling a tiny job's stage, whose objects are nearly all the same library
    functions and classes each time. A remembered answer is used while the
    object is still its module's attribute of that name and the by-value
    registry is unchanged; anything else takes cloudpickle's own path.
    """

    def __init__(self, file: Any, protocol: int) -> None:
        # cloudpickle's table is a ChainMap over copyreg's, which the C pickler asks
        # through Python-level lookups (and a KeyError) for nearly every object; the
        # same entries as a dict are looked up in C.
        self.dispatch_table = _flat_dispatch_table()
        super().__init__(file, protocol=protocol)
        global _BY_VALUE_SEEN
        registry = _by_value_modules()
        if registry != _BY_VALUE_SEEN:  # a module was (un)registered: ask cloudpickle again
            _BY_REFERENCE.clear()
            _BY_VALUE_SEEN = registry

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is not types.FunctionType and kind is not type:
            if not issubclass(kind, type):  # cloudpickle reduces functions and classes only
                return NotImplemented
            return super().reducer_override(obj)
        hit = _BY_REFERENCE.get(id(obj))
        if hit is not None and hit[0] is obj:
            module = sys.modules.get(hit[1])
            if module is not None and getattr(module, "__dict__", {}).get(obj.__qualname__) is obj:
                return NotImplemented
        result = super().reducer_override(obj)
        name = getattr(obj, "__module__", None)
        if result is NotImplemented and isinstance(name, str) and "." not in obj.__qualname__:
            if len(_BY_REFERENCE) >= _BY_REFERENCE_LIMIT:
                _BY_REFERENCE.clear()
            _BY_REFERENCE[id(obj)] = (obj, name)
        return result


#: cloudpickle's dispatch table as one dict, and copies of the maps it was made from.
_FLAT_TABLE: tuple[dict[Any, Any], list[dict[Any, Any]]] = ({}, [])


def _flat_dispatch_table() -> dict[Any, Any]:
    """cloudpickle's ChainMap dispatch table as a dict, rebuilt only when a map changed.

    Flattening it costs ~15 µs, a tenth of pickling a tiny job's stage; comparing
    its maps (cloudpickle's reducers and copyreg's) with copies costs ~1 µs, and
    notices a `copyreg.pickle` registered since.
    """
    global _FLAT_TABLE
    maps = cloudpickle.Pickler.dispatch_table.maps
    flat, seen = _FLAT_TABLE
    if len(seen) != len(maps) or any(m != s for m, s in zip(maps, seen, strict=True)):
        flat = dict(cloudpickle.Pickler.dispatch_table)
        _FLAT_TABLE = (flat, [dict(m) for m in maps])
    return flat


def _by_value_modules() -> frozenset[str]:
    """The module names registered with cloudpickle.register_pickle_by_value."""
    modules = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", None)
    return frozenset(modules) if modules else frozenset()


def _dumps(obj: Any) -> bytes:
    with io.BytesIO() as buffer:
        _StagePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()


def _pickled(obj: Any, dump: Callable[[Any], bytes] = _dumps) -> bytes:
    """`obj` pickled (by `dump`), or the PicklingError PySpark raises for a task it cannot ship.

    A PicklingError naming the cause, so that one ``except pickle.PicklingError``
    catches every such job (an unpicklable object a closure captures, the
    SparkContext in a closure); a PicklingError raised by an object is its own.
    """
    try:
        return dump(obj)
    except pickle.PicklingError:
        raise
    except Exception as e:
        raise pickle.PicklingError(f"Could not serialize object: {type(e).__name__}: {e}") from e


class _TwoPickles:
    """One pickler for a stage's code and then its data: each pickle stands alone.

    Setting up a pickler (cloudpickle's, the by-value registry and dispatch table
    checks) costs about a tenth of pickling a tiny job's stage; the second pickle
    starts with an empty memo and no shared globals, as a fresh pickler would.
    """

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._pickler: _StagePickler | None = None

    def __call__(self, obj: Any) -> bytes:
        buffer = self._buffer
        pickler = self._pickler
        if pickler is None:
            pickler = self._pickler = _StagePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            pickler.clear_memo()
            pickler.globals_ref = {}
            buffer.seek(0)
            buffer.truncate()
        pickler.dump(obj)
        return buffer.getvalue()


#: Encoded stage headers by their entries: nearly every stage's is the same few bytes.
_ENCODED_HEADERS: dict[tuple[tuple[str, str], ...], bytes] = {}


def _encoded_header(fields: dict[str, str]) -> bytes:
    key = tuple(fields.items())
    header = _ENCODED_HEADERS.get(key)
    if header is None:
        header = json.dumps(fields).encode()
        if len(_ENCODED_HEADERS) >= _HEADERS_LIMIT:
            _ENCODED_HEADERS.clear()
        _ENCODED_HEADERS[key] = header
    return header


def dumps_stage(spec: Any) -> bytes:
    """The payload of a stage: its code, then the data `externalize` set aside.

    Raises:
        pickle.PicklingError: the code or the data cannot be pickled (see `_pickled`).
    """
    side: list[Any] = []
    dump = _TwoPickles()
    _tracking.side = side
    try:
        code = _pickled(spec, dump)
    finally:
        _tracking.side = None
    data = _pickled(side, dump) if side else b""
    properties = getattr(spec, "properties", None) or {}
    fields = {k: properties[k] for k in _HEADER_KEYS if k in properties}
    # The context's pythonVer (PySpark's tests set it to provoke the mismatch), reached
    # through the spec's RDD duck-typed: this layer knows neither RDDs nor contexts.
    host = getattr(getattr(spec, "rdd", None), "ctx", None)
    fields[PYTHON_VERSION_KEY] = str(getattr(host, "pythonVer", None) or DRIVER_PYTHON)
    header = _encoded_header(fields)
    return b"".join(
        (len(header).to_bytes(8, "little"), header, len(code).to_bytes(8, "little"), code, data)
    )


#: Parsed stage headers by their bytes: nearly every stage's header is the same few
#: bytes (the Python version), and json.loads of them cost a worker ~10 us per stage.
_HEADERS: dict[bytes, dict[str, str]] = {}
_HEADERS_LIMIT = 64


def _read_header(payload: bytes) -> dict[str, str]:
    """The header's entries (a dict of the caller's own, which it may change)."""
    length = int.from_bytes(payload[:8], "little")
    raw = bytes(payload[8 : 8 + length])
    header = _HEADERS.get(raw)
    if header is None:
        header = json.loads(raw)
        if len(_HEADERS) >= _HEADERS_LIMIT:
            _HEADERS.clear()
        _HEADERS[raw] = header
    return dict(header)


def stage_header(payload: bytes) -> dict[str, str]:
    """The properties in a stage payload's header, read without unpickling anything."""
    header = _read_header(payload)
    header.pop(PYTHON_VERSION_KEY, None)
    return header


def stage_python_version(payload: bytes) -> str | None:
    """The driver's Python major.minor from a payload's header (None if it has none)."""
    return _read_header(payload).get(PYTHON_VERSION_KEY)


def read_stage_header(payload: bytes) -> tuple[dict[str, str], str | None]:
    """`stage_header` and `stage_python_version` of a payload, parsing its header once."""
    header = _read_header(payload)
    return header, header.pop(PYTHON_VERSION_KEY, None)


def externalize(value: Any) -> Any:
    """While a stage is pickled, move `value` beside the code; otherwise `value` itself."""
    side: list[Any] | None = getattr(_tracking, "side", None)
    if side is None:
        return value
    side.append(value)
    return _DataRef(len(side) - 1)


def resolve(value: Any) -> Any:
    """On unpickling: the data a stand-in refers to, or `value` itself."""
    if isinstance(value, _DataRef):
        data: list[Any] = _tracking.data
        return data[value.index]
    return value


class StageCode:
    """A worker's view of a stage payload: the data once, a fresh spec per task.

    Unpickling a stage's functions costs about as much as running a tiny task, so
    a spec whose functions hold no state of their own (`has_private_state`) is
    shared by the stage's later tasks in this worker. The walk that tells costs as
    much as the unpickling, so it waits for a second task: a worker that runs one
    task of a stage (each task of a tiny job) never pays for it.
    """

    def __init__(self, payload: bytes) -> None:
        view = memoryview(payload)
        start = 8 + int.from_bytes(view[:8], "little")  # past the header
        length = int.from_bytes(view[start : start + 8], "little")
        self._code = view[start + 8 : start + 8 + length]
        rest = view[start + 8 + length :]
        self._data: list[Any] = cloudpickle.loads(rest) if len(rest) else []
        self._shared: Any = None
        self._unpickled = 0

    def spec(self) -> Any:
        """The stage's code and functions, new for this task unless they hold no state."""
        if self._shared is not None:
            return self._shared
        _tracking.data = self._data
        try:
            spec = cloudpickle.loads(self._code)
        finally:
            _tracking.data = None
        self._unpickled += 1
        if self._unpickled == 2 and not has_private_state(spec):
            self._shared = spec
        return spec


#: Values that can never carry state from one task to the next.
_ATOMS = (
    int, float, complex, str, bytes, bool, type(None), range, type(Ellipsis),
    operator.itemgetter, operator.attrgetter, operator.methodcaller,
)  # fmt: skip
#: Containers of a library object larger than this hold data, not functions: not walked.
_WALK_LIMIT = 1000
#: Attributes that hold a stage's data (shared on purpose, read only).
_DATA_ATTRIBUTES = frozenset({"_slices"})


def _is_library(obj: Any) -> bool:
    module = getattr(type(obj), "__module__", "") or ""
    return module == "scheduler" or module.startswith("scheduler.")


def _own_globals(function: types.FunctionType) -> bool:
    """Whether `function` came by value (its globals are not a real module's)."""
    module = sys.modules.get(function.__module__ or "")
    return module is None or function.__globals__ is not module.__dict__


def has_private_state(root: Any) -> bool:
    """Whether a user's function in `root` captures something a task could change.

    Walks the stage's objects: our own (RDDs, dependencies, aggregators, their
    closures) attribute by attribute; a user's function pickled by value through
    the globals it names, its closure cells and its defaults. Any list, dict, set,
    instance of a user's class or method bound to one found there counts as state
    (a read-only lookup table too: it then costs a fresh copy per task, never a
    wrong result). Modules, classes, numbers, strings and functions do not.
    """
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or type(obj) in _ATOMS:
            continue
        seen.add(id(obj))
        if isinstance(obj, (types.ModuleType, type)):
            continue
        if isinstance(obj, types.FunctionType):
            user = not _is_library_function(obj)
            if user and _own_globals(obj):
                names = obj.__code__.co_names
                stack.extend(obj.__globals__[n] for n in names if n in obj.__globals__)
            for cell in obj.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell has no contents
                    stack.append(cell.cell_contents)
            stack.extend(obj.__defaults__ or ())
            stack.extend((obj.__kwdefaults__ or {}).values())
            continue
        if isinstance(obj, functools.partial):
            stack.extend((obj.func, *obj.args, *obj.keywords.values()))
            continue
        if isinstance(obj, (types.MethodType, types.BuiltinMethodType)):
            owner = getattr(obj, "__self__", None)
            if owner is not None and not isinstance(owner, types.ModuleType):
                stack.append(owner)
            stack.append(getattr(obj, "__func__", None))
            continue
        if isinstance(obj, (tuple, frozenset)):
            stack.extend(obj)
            continue
        if _is_library(obj):
            stack.extend(_library_parts(obj))
            continue
        return True  # a list, dict, set or object a user's function holds on to
    return False


def _is_library_function(function: types.FunctionType) -> bool:
    module = function.__module__ or ""
    return module == "scheduler" or module.startswith("scheduler.")


def _library_parts(obj: Any) -> list[Any]:
    """The attributes of one of our objects worth walking (never its data)."""
    parts: list[Any] = []
    state = getattr(obj, "__dict__", None)
    values: list[tuple[str, Any]] = list(state.items()) if isinstance(state, dict) else []
    for name in getattr(type(obj), "__slots__", ()):
        if hasattr(obj, name):
            values.append((name, getattr(obj, name)))
    for name, value in values:
        if name in _DATA_ATTRIBUTES:
            continue
        if isinstance(value, (list, set)) and len(value) <= _WALK_LIMIT:
            parts.extend(value)
        elif isinstance(value, dict) and len(value) <= _WALK_LIMIT:
            parts.extend(value.values())
        elif not isinstance(value, (list, set, dict)):
            parts.append(value)
    return parts
