"""Configuration values: Spark's key names, its size and duration syntax, typed entries.

Every layer reads its settings through `Conf`, so a Spark user's
`spark-defaults.conf` carries over. A layer declares each key it owns once, in
its own `settings.py`, as an entry of a `ConfigSection` (kind, default, bounds,
doc), and reads it with `conf.get(ENTRY)`, which returns the typed value; a bad
value raises `ConfigValueError` naming the key, the value and what was expected.

This module knows no key of any layer. The registry is filled by the sections
that are imported (`rpcenv.settings` always), and, where every key must be known
(unknown-key warnings, the CLI's checks, docs/configuration.md), by the modules
of the `sparkctl.settings` entry-point group, which is how a layer above, or a
third party, declares keys without rpcenv naming it. Unknown `spark.*` keys are
warned about once, never silently ignored. This module parses; it never reads
files or the environment.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from rpcenv._errors import ConfigValueError

__all__ = [
    "BOOL",
    "DURATION",
    "FLOAT",
    "INT",
    "PORT",
    "SETTINGS_ENTRY_POINT_GROUP",
    "SIZE",
    "STRING",
    "BaseConfigEntry",
    "Conf",
    "ConfigEntry",
    "ConfigFamily",
    "ConfigSection",
    "Kind",
    "OptionalConfigEntry",
    "choice",
    "is_known_key",
    "lookup_entry",
    "parse_duration",
    "parse_size",
    "registered_entries",
    "registered_sections",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
D = TypeVar("D")

#: The entry-point group whose modules declare settings (see `load_settings_modules`).
SETTINGS_ENTRY_POINT_GROUP = "sparkctl.settings"

#: The largest count the wire carries (int32 fields of the protobuf messages).
INT32_MAX = 2**31 - 1

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TIME_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_UNIT_NAMES = {"b": "bytes", "k": "KiB", "m": "MiB", "g": "GiB", "s": "seconds", "ms": "ms"}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, default_unit: str = "b") -> int:
    """Parse a Spark size string (`512m`, `4g`, `1024`) into bytes.

    Args:
        text: the value, e.g. "4g" or "512mb".
        default_unit: unit of a bare number ("b", "k", "m", "g").

    Raises:
        ValueError: naming the text when it is not a size.
    """
    match = _NUMBER_UNIT.match(str(text))
    if match is None:
        raise ValueError(f"bad size {text!r}: expected a number with a unit like 512m or 4g")
    number, unit = match.groups()
    unit = unit.lower().removesuffix("ib").removesuffix("b") if len(unit) > 1 else unit.lower()
    unit = unit or default_unit.lower()
    if unit not in _SIZE_UNITS:
        raise ValueError(f"bad size unit {unit!r} in {text!r}: use b, k, m, g or t")
    return int(float(number) * _SIZE_UNITS[unit])


def parse_duration(text: str, default_unit: str = "s") -> float:
    """Parse a Spark duration string (`120s`, `3s`, `100ms`, `60`) into seconds.

    Raises:
        ValueError: naming the text when it is not a duration.
    """
    match = _NUMBER_UNIT.match(str(text))
    if match is None:
        raise ValueError(f"bad duration {text!r}: expected a number with a unit like 3s or 100ms")
    number, unit = match.groups()
    unit = (unit or default_unit).lower()
    if unit not in _TIME_UNITS:
        raise ValueError(f"bad duration unit {unit!r} in {text!r}: use ms, s, m, h or d")
    return float(number) * _TIME_UNITS[unit]


def _parse_bool(text: str, unit: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(text)


def _show_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _show_size(number: float, unit: str) -> str:
    for suffix in ("g", "m", "k"):
        scale = _SIZE_UNITS[suffix]
        if number >= scale and number % scale == 0:
            return f"{int(number) // scale}{suffix}"
    return f"{int(number)}b"


def _show_duration(number: float, unit: str) -> str:
    if number and number < 1:
        return f"{number * 1000:g}ms"
    return f"{number:g}s"


@dataclass(frozen=True)
class Kind(Generic[T]):
    """How values of one type are written: parsed, bounded, described.

    Attributes:
        name: the type as the configuration reference shows it ("duration").
        expected: what a value must look like, for errors ("a duration such as 30s").
        parse: `parse(text, unit) -> value`, raising ValueError; `unit` is the unit
            of a bare number (durations and sizes).
        show: renders a bound in the unit users write ("1m", "0s", "8").
        floor: the smallest value any entry of this kind accepts.
        ceiling: the largest value any entry of this kind accepts.
    """

    name: str
    expected: str
    parse: Callable[[str, str], T]
    show: Callable[[float, str], str] = lambda number, unit: _show_number(number)
    floor: float | None = None
    ceiling: float | None = None
    choices: tuple[str, ...] = ()


INT: Kind[int] = Kind("int", "an integer", lambda text, unit: int(text.strip()), ceiling=INT32_MAX)
FLOAT: Kind[float] = Kind("float", "a number", lambda text, unit: float(text.strip()))
BOOL: Kind[bool] = Kind("bool", "true or false", _parse_bool)
DURATION: Kind[float] = Kind(
    "duration",
    "a duration such as 30s, 100ms or 2min",
    lambda text, unit: parse_duration(text, unit or "s"),
    _show_duration,
)
SIZE: Kind[int] = Kind(
    "size",
    "a size such as 512m or 4g",
    lambda text, unit: parse_size(text, unit or "b"),
    _show_size,
)
STRING: Kind[str] = Kind("string", "text", lambda text, unit: text)
PORT: Kind[int] = Kind(
    "port", "a port number", lambda text, unit: int(text.strip()), floor=0, ceiling=65535
)


def choice(*values: str) -> Kind[str]:
    """A kind that accepts one of `values`, in any case, and returns its spelling here."""
    by_upper = {value.upper(): value for value in values}

    def parse(text: str, unit: str) -> str:
        return by_upper[text.strip().upper()]

    return Kind("enum", "one of " + ", ".join(values), parse, choices=tuple(values))


class BaseConfigEntry(Generic[T]):
    """What every declared key has: its kind, bounds and doc, and its section."""

    def __init__(
        self,
        section: ConfigSection,
        key: str,
        kind: Kind[T],
        doc: str,
        *,
        min: float | None = None,
        max: float | None = None,
        above: float | None = None,
        unit: str = "",
        internal: bool = False,
    ) -> None:
        self.section = section
        self.key = key
        self.kind = kind
        self.doc = " ".join(doc.split())
        self.unit = unit
        self.min = kind.floor if min is None else min
        self.max = kind.ceiling if max is None else max
        self.above = above
        self.internal = internal

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r}, {self.kind.name})"

    def constraint(self, full: bool = False) -> str:
        """The bounds in the unit users write: "> 0s", ">= 1", "1m..2047m" or "".

        Args:
            full: also the bounds every value of the kind has (a port's 0..65535).
        """

        def show(number: float) -> str:
            return self.kind.show(number, self.unit)

        low = self.min if full or self.min != self.kind.floor else None
        high = self.max if full or self.max != self.kind.ceiling else None
        parts = [f"> {show(self.above)}"] if self.above is not None else []
        if low is not None and high is not None:
            parts.append(f"{show(low)}..{show(high)}")
        elif low is not None:
            parts.append(f">= {show(low)}")
        elif high is not None:
            parts.append(f"<= {show(high)}")
        return ", ".join(parts)

    def expected(self) -> str:
        """What a value of this key must be: the kind, its bounds, a bare number's unit."""
        parts = [self.constraint(full=True)] if self.constraint(full=True) else []
        if self.unit and self.kind in (DURATION, SIZE):
            parts.append("a bare number is in " + _UNIT_NAMES.get(self.unit, self.unit))
        return f"{self.kind.expected} ({'; '.join(parts)})" if parts else self.kind.expected

    def parse(self, text: str) -> T:
        """The typed value of `text`.

        Raises:
            ConfigValueError: `text` is not of this kind or is out of bounds.
        """
        try:
            value = self.kind.parse(text, self.unit)
        except (ValueError, KeyError, TypeError):
            raise ConfigValueError(self.key, text, self.expected()) from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and self._outside(value):
            raise ConfigValueError(self.key, text, self.expected())
        return value

    def _outside(self, value: float) -> bool:
        return (
            (self.above is not None and not value > self.above)
            or (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        )

    def default_text(self) -> str | None:
        """The default as the configuration reference shows it (None: none)."""
        raise NotImplementedError


class ConfigEntry(BaseConfigEntry[T]):
    """A key with a default: `conf.get(ENTRY)` always returns a `T`.

    The default is the text a user would write (it goes through the same parser),
    or another entry whose value stands in, as `spark.rpc.askTimeout` falls back to
    `spark.network.timeout`.
    """

    def __init__(
        self,
        section: ConfigSection,
        key: str,
        kind: Kind[T],
        default: str | ConfigEntry[T],
        doc: str,
        **options: Any,
    ) -> None:
        super().__init__(section, key, kind, doc, **options)
        self.default = default
        self._parsed: list[T] = []

    def default_value(self, conf: Conf) -> T:
        """The value when `conf` does not set the key."""
        if isinstance(self.default, ConfigEntry):
            return conf.get(self.default)
        if not self._parsed:
            self._parsed.append(self.parse(self.default))
        return self._parsed[0]

    def default_text(self) -> str | None:
        if isinstance(self.default, ConfigEntry):
            return f"the value of {self.default.key}"
        return self.default


class OptionalConfigEntry(BaseConfigEntry[T]):
    """A key without a fixed default: `conf.get(ENTRY)` returns a `T` or None.

    `default_doc` says in words what the reader does without it ("every core of
    the machine").
    """

    def __init__(
        self,
        section: ConfigSection,
        key: str,
        kind: Kind[T],
        doc: str,
        default_doc: str = "",
        **options: Any,
    ) -> None:
        super().__init__(section, key, kind, doc, **options)
        self.default_doc = default_doc

    def default_text(self) -> str | None:
        return self.default_doc or None


@dataclass(frozen=True)
class ConfigFamily:
    """A prefix whose keys are accepted without a warning (`spark.executorEnv.`)."""

    prefix: str
    doc: str


class ConfigSection:
    """The keys one layer owns, in the order the reference lists them.

    Each layer makes one in its `settings.py` and declares its keys through it;
    declaring a key that another section owns is an error, so each key has one
    owner, one type and one default.
    """

    def __init__(self, name: str, title: str) -> None:
        self.name = name
        self.title = title
        self.entries: list[BaseConfigEntry[Any]] = []
        self.families: list[ConfigFamily] = []
        with _lock:
            _sections[name] = self

    def entry(
        self,
        key: str,
        kind: Kind[T],
        default: str | ConfigEntry[T],
        doc: str,
        *,
        min: float | None = None,
        max: float | None = None,
        above: float | None = None,
        unit: str = "",
        internal: bool = False,
    ) -> ConfigEntry[T]:
        """Declare `key` with a default (Spark's text, or an entry to fall back to).

        Args:
            key: the configuration key.
            kind: INT, FLOAT, BOOL, DURATION, SIZE, STRING, PORT or `choice(...)`.
            default: the default as a user writes it, or the entry it falls back to.
            doc: one or two sentences: what it does, in the reference.
            min: the smallest value allowed (seconds, bytes, a count).
            max: the largest value allowed.
            above: the value must be greater than this (durations that must be > 0).
            unit: the unit of a bare number ("s", "ms", "m" for MiB).
            internal: set by sparkctl itself, left out of the reference.
        """
        entry = ConfigEntry(
            self,
            key,
            kind,
            default,
            doc,
            min=min,
            max=max,
            above=above,
            unit=unit,
            internal=internal,
        )
        self._add(entry)
        return entry

    def optional(
        self,
        key: str,
        kind: Kind[T],
        doc: str,
        *,
        default_doc: str = "",
        min: float | None = None,
        max: float | None = None,
        above: float | None = None,
        unit: str = "",
        internal: bool = False,
    ) -> OptionalConfigEntry[T]:
        """Declare `key` without a fixed default; `default_doc` says what unset means."""
        entry = OptionalConfigEntry(
            self,
            key,
            kind,
            doc,
            default_doc,
            min=min,
            max=max,
            above=above,
            unit=unit,
            internal=internal,
        )
        self._add(entry)
        return entry

    def family(self, prefix: str, doc: str) -> ConfigFamily:
        """Accept every key under `prefix` without a warning (read by prefix, not by key)."""
        family = ConfigFamily(prefix, " ".join(doc.split()))
        with _lock:
            _families[prefix] = family
            self.families.append(family)
        return family

    def _add(self, entry: BaseConfigEntry[Any]) -> None:
        with _lock:
            owner = _entries.get(entry.key)
            if owner is not None and owner.section.name != self.name:
                raise ValueError(
                    f"{entry.key} is declared by both {owner.section.name} and {self.name}"
                )
            if owner is not None:
                self.entries.remove(owner)
            _entries[entry.key] = entry
            self.entries.append(entry)


_lock = threading.RLock()
_entries: dict[str, BaseConfigEntry[Any]] = {}
_families: dict[str, ConfigFamily] = {}
_sections: dict[str, ConfigSection] = {}
_loaded = False


def load_settings_modules() -> None:
    """Import every module of the `sparkctl.settings` entry-point group, once.

    A module that cannot be imported is logged and skipped: a broken plugin must
    not stop a daemon from starting.
    """
    global _loaded
    if _loaded:
        return
    import importlib
    import importlib.metadata  # slow to import: only a complete view needs it

    for point in importlib.metadata.entry_points(group=SETTINGS_ENTRY_POINT_GROUP):
        try:
            importlib.import_module(point.value.partition(":")[0])
        except Exception as exc:
            log.warning("cannot load the settings of %s (%s): %s", point.name, point.value, exc)
    _loaded = True


def registered_sections(complete: bool = True) -> list[ConfigSection]:
    """Every section, in layer order (rpcenv first); `complete` loads the entry points."""
    if complete:
        load_settings_modules()
    with _lock:
        return list(_sections.values())


def registered_entries(complete: bool = True) -> list[BaseConfigEntry[Any]]:
    """Every declared entry; `complete` loads the entry points first."""
    if complete:
        load_settings_modules()
    with _lock:
        return list(_entries.values())


def lookup_entry(key: str, complete: bool = False) -> BaseConfigEntry[Any] | None:
    """The entry that declares `key`, among those registered (or all, if `complete`)."""
    entry = _entries.get(key)
    if entry is None and complete and not _loaded:
        load_settings_modules()
        entry = _entries.get(key)
    return entry


def is_known_key(key: str) -> bool:
    """True for keys sparkctl declares (or families it accepts) and any non-spark key."""
    if not key.startswith("spark."):
        return True
    for _ in range(2):
        if key in _entries or any(key.startswith(prefix) for prefix in _families):
            return True
        if _loaded:
            return False
        load_settings_modules()
    return False


class Conf(Mapping[str, str]):
    """An immutable view of `key=value` settings with typed getters."""

    _warned: set[str] = set()

    def __init__(self, values: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> None:
        self._values: dict[str, str] = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: ("*****" if _is_secret(k) else v) for k, v in self._values.items()}
        return f"Conf({shown!r})"

    def with_values(self, **updates: str) -> Conf:
        """A copy with `updates` applied (keys with dots: pass a dict to `merged`)."""
        return self.merged(updates)

    def merged(self, updates: Mapping[str, str]) -> Conf:
        """A copy with `updates` taking precedence."""
        values = dict(self._values)
        values.update(updates)
        return Conf(values)

    @overload
    def get(self, key: ConfigEntry[T]) -> T: ...
    @overload
    def get(self, key: OptionalConfigEntry[T]) -> T | None: ...
    @overload
    def get(self, key: str) -> str | None: ...
    @overload
    def get(self, key: str, default: str) -> str: ...
    @overload
    def get(self, key: str, default: D) -> str | D: ...

    def get(self, key: Any, default: Any = None) -> Any:
        """The typed value of an entry; for a plain key, the raw value (as a Mapping).

        Raises:
            ConfigValueError: the entry's value does not read as its kind and bounds.
        """
        if isinstance(key, str):
            return self._values.get(key, default)
        text = self._values.get(key.key)
        if text is not None:
            return key.parse(text)
        if isinstance(key, ConfigEntry):
            return key.default_value(self)
        return None

    def get_str(self, key: str, default: str | None = None) -> str | None:
        """The raw value, else `default`, else the default of a registered entry."""
        if key in self._values:
            return self._values[key]
        if default is not None:
            return default
        entry = _entries.get(key)
        if isinstance(entry, ConfigEntry) and isinstance(entry.default, str):
            return entry.default
        return None

    def _typed(self, key: str, kind: Kind[T], unit: str = "") -> T | None:
        value = self.get_str(key)
        if value is None:
            return None
        try:
            return kind.parse(value, unit)
        except (ValueError, KeyError):
            raise ConfigValueError(key, value, kind.expected) from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        """A boolean value (`true`/`false`, case-insensitive) of an undeclared key."""
        value = self._typed(key, BOOL)
        return default if value is None else value

    def get_int(self, key: str, default: int | None = None) -> int | None:
        """An integer value of an undeclared key."""
        value = self._typed(key, INT)
        return default if value is None else value

    def get_float(self, key: str, default: float | None = None) -> float | None:
        """A float value of an undeclared key."""
        value = self._typed(key, FLOAT)
        return default if value is None else value

    def get_duration(self, key: str, default: float | None = None, unit: str = "s") -> float | None:
        """A duration in seconds of an undeclared key; a bare number is in `unit`."""
        value = self._typed(key, DURATION, unit)
        return default if value is None else value

    def get_size(self, key: str, default: int | None = None, unit: str = "b") -> int | None:
        """A size in bytes of an undeclared key; a bare number is in `unit`."""
        value = self._typed(key, SIZE, unit)
        return default if value is None else value

    def warn_unknown(self, warned_elsewhere: Iterable[str] = ()) -> list[str]:
        """Log one warning per unknown `spark.*` key; return the unknown keys.

        Keys in `warned_elsewhere` (e.g. by the `sparkctl submit` that launched this
        process) are returned but not logged again.
        """
        unknown = [k for k in self._values if not is_known_key(k)]
        quiet = set(warned_elsewhere)
        for key in unknown:
            if key not in Conf._warned and key not in quiet:
                Conf._warned.add(key)
                log.warning("ignoring unknown configuration key %s%s", key, _did_you_mean(key))
        return unknown


def _did_you_mean(key: str) -> str:
    """` (did you mean spark.x?)` for a likely typo of a declared key, else ""."""
    close = difflib.get_close_matches(key, list(_entries), n=1, cutoff=0.85)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_secret(key: str) -> bool:
    return "secret" in key.lower() or "password" in key.lower()
