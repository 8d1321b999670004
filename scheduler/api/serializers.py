"""PySpark's public serializers, and namedtuple classes that travel by value.

`SparkContext(serializer=MarshalSerializer())` is accepted as in PySpark;
sparkctl ships its own data with (cloud)pickle whatever is named, so the
choice changes nothing but what these objects do themselves.
`CloudPickleSerializer` is what ships closures: programs use it to check, on
the driver, that a function or object will travel.

A namedtuple class defined in a module the executors cannot import (one only
the driver has) makes every task that touches it fail to unpickle ("No module
named ..."); a program's `__main__` travels by value anyway. As PySpark 4
does when PYSPARK_ENABLE_NAMEDTUPLE_PATCH=1 (off by default there, as here),
importing `scheduler` then replaces `collections.namedtuple` with a version
whose classes pickle their instances by value (class name, field names,
values), rebuilt on the other side, and whose classes name no importable
module, so that cloudpickle ships them by value too; the namedtuple classes
already in `__main__` are changed as well. No I/O.
"""

from __future__ import annotations

import collections
import functools
import marshal
import pickle
import sys
from typing import Any

import cloudpickle

__all__ = [
    "NAMEDTUPLE_PATCH_ENV",
    "CPickleSerializer",
    "CloudPickleSerializer",
    "MarshalSerializer",
    "PickleSerializer",
    "pickle_namedtuples_by_value",
]

#: PySpark's switch for its namedtuple patch ("1" turns it on).
NAMEDTUPLE_PATCH_ENV = "PYSPARK_ENABLE_NAMEDTUPLE_PATCH"


class CPickleSerializer:
    """Objects to and from bytes with the pickle module (PySpark's default)."""

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)

    def loads(self, obj: bytes) -> Any:
        return pickle.loads(obj)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self).__name__)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MarshalSerializer(CPickleSerializer):
    """Objects to and from bytes with the marshal module (built-in types only, fast)."""

    def dumps(self, obj: Any) -> bytes:
        return marshal.dumps(obj)

    def loads(self, obj: bytes) -> Any:
        return marshal.loads(obj)


class PickleSerializer(CPickleSerializer):
    """The pickle serializer under the name `pyspark.serializers` also gives it."""


class CloudPickleSerializer(CPickleSerializer):
    """Objects to and from bytes with cloudpickle: lambdas, local functions and classes too.

    A failure to serialize is a `pickle.PicklingError` naming the cause, as in PySpark,
    so one ``except pickle.PicklingError`` catches every object that cannot travel.
    """

    def dumps(self, obj: Any) -> bytes:
        try:
            data: bytes = cloudpickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        except pickle.PicklingError:
            raise
        except Exception as e:
            raise pickle.PicklingError(
                f"Could not serialize object: {type(e).__name__}: {e}"
            ) from e
        return data


#: Classes rebuilt from pickles in this process, by (name, fields).
_REBUILT: dict[tuple[str, tuple[str, ...]], type] = {}
_ORIGINAL_NAMEDTUPLE = collections.namedtuple


def _rebuild_namedtuple(name: str, fields: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    """Unpickle a namedtuple instance: a class of that name and fields, made once here."""
    cls = _REBUILT.get((name, fields))
    if cls is None:
        cls = _REBUILT[(name, fields)] = _by_value(_ORIGINAL_NAMEDTUPLE(name, fields))
    return cls(*values)


def _reduce_by_value(self: Any) -> tuple[Any, ...]:
    return (_rebuild_namedtuple, (type(self).__name__, tuple(self._fields), tuple(self)))


def _by_value(cls: type) -> type:
    cls.__reduce__ = _reduce_by_value  # type: ignore[assignment]
    cls._is_namedtuple_ = True  # type: ignore[attr-defined]
    return cls


@functools.wraps(_ORIGINAL_NAMEDTUPLE)
def _namedtuple(*args: Any, **kwargs: Any) -> Any:
    return _by_value(_ORIGINAL_NAMEDTUPLE(*args, **kwargs))


def _is_namedtuple_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, tuple) and hasattr(value, "_fields")


def pickle_namedtuples_by_value() -> None:
    """Make namedtuple classes made from now on, and those of `__main__`, pickle by value."""
    if collections.namedtuple is not _namedtuple:
        collections.namedtuple = _namedtuple
    main = sys.modules.get("__main__")
    for value in list(vars(main).values()) if main is not None else []:
        if _is_namedtuple_class(value) and value.__module__ == "__main__":
            _by_value(value)
