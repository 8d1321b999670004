"""PySpark's two public serializers, for programs that name one.

`SparkContext(serializer=MarshalSerializer())` is accepted as in PySpark;
sparkctl ships its own data with (cloud)pickle whatever is named, so the
choice changes nothing but what these objects do themselves. No I/O.
"""

from __future__ import annotations

import marshal
import pickle
from typing import Any

__all__ = ["CPickleSerializer", "MarshalSerializer"]


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
