"""Configuration loading for the command line, in Spark's order of precedence.

    command-line flag  >  --conf key=value  >  --properties-file (or
    $SPARK_CONF_DIR/spark-defaults.conf)  >  SPARK_* environment variables  >  default

This module reads files and the environment and validates values; it never
starts anything. Secrets are never accepted here from the command line: they
come from SPARKCTL_SECRET or a secret file, which the RpcEnv reads itself.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import cluster.settings
import scheduler.settings
from rpcenv import SECRET_ENV_VAR, Conf, ConfigValueError, lookup_entry, parse_size
from rpcenv import settings as rpc_settings

# The layers' keys, declared where each layer lives; imported (as the entry points
# would) so that every key is checked even where the package metadata is stale.
_LAYERS = (cluster.settings.SECTION, scheduler.settings.SECTION)

__all__ = [
    "ConfigError",
    "Setting",
    "check_security",
    "check_values",
    "default_worker_memory_mb",
    "java_opts_conf",
    "load_conf",
    "parse_conf_pairs",
    "parse_memory_mb",
    "parse_port",
    "parse_positive_int",
    "parse_properties",
    "parse_properties_file",
    "resolve",
]

T = TypeVar("T")

#: Keys that must never be given on a command line (they would show in `ps`).
_SECRET_KEYS = (rpc_settings.AUTH_SECRET.key,)
#: The largest count the wire carries (int32 fields of the protobuf messages).
_INT32_MAX = 2**31 - 1
_JAVA_OPT = re.compile(r"^-D(spark\.[^=\s]+)=(.*)$")


class ConfigError(ValueError):
    """A configuration value is wrong; `source` names the flag, key or file."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(message)


def parse_properties(text: str, origin: str) -> dict[str, str]:
    """Parse `spark-defaults.conf` text: `key value`, `key=value` or `key: value` lines.

    Blank lines and lines starting with `#` or `!` are skipped, a line ending in a
    backslash goes on on the next one, and a key alone has the empty value, as in
    Java properties files (which is how Spark reads this file).

    Raises:
        ConfigError: a line that starts with a separator (it names no key).
    """
    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith(("#", "!")):
            continue
        while _continues(line):
            line = line[:-1] + (lines[index].strip() if index < len(lines) else "")
            index += 1
        match = re.match(r"^([^\s=:]+)(?:\s*[=:\s]\s*(.*))?$", line)
        if match is None:
            raise ConfigError(
                origin, f"{origin}:{number}: expected 'key value' (a key first), got {line!r}"
            )
        key, value = match.groups()
        values[key] = (value or "").strip()
    return values


def _continues(line: str) -> bool:
    """Whether `line` ends with an odd number of backslashes (an unescaped one)."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def parse_properties_file(path: Path, origin: str = "--properties-file") -> dict[str, str]:
    """Read and parse a properties file (UTF-8; a byte-order mark is skipped).

    Raises:
        ConfigError: the file cannot be read or decoded, or is malformed.
    """
    try:
        # utf-8-sig: a BOM written by an editor otherwise became part of the first key,
        # which was then ignored as unknown.
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(origin, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            origin, f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None
    return parse_properties(text, str(path))


def parse_conf_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """Parse repeated `--conf key=value` flags.

    Raises:
        ConfigError: a pair has no `=`, an empty key, or is a secret.
    """
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--conf", f"expected key=value, got {pair!r}")
        if key in _SECRET_KEYS:
            raise ConfigError(
                "--conf",
                f"{key} must not be given on the command line (it would be visible to every "
                "user of this machine): set SPARKCTL_SECRET or spark.authenticate.secret.file",
            )
        values[key] = value
    return values


def check_values(values: Mapping[str, str], source: str) -> None:
    """Check the values of the declared keys among `values`, which came from `source`.

    Every layer's entries are checked (`rpcenv.settings`, `cluster.settings`,
    `scheduler.settings`, and any module of the `sparkctl.settings` entry points), read
    as the code that uses them reads them: a bad one is a usage error naming its key
    and source, not a failure of the daemon or a traceback of the app minutes later.

    Raises:
        ConfigError: naming `source`, the key, its value and what was expected.
    """
    for key in values:
        entry = lookup_entry(key, complete=True)
        if entry is None:
            continue
        try:
            entry.parse(values[key])
        except ConfigValueError as exc:
            raise ConfigError(source, str(exc)) from None


_TLS_FILES = (
    rpc_settings.SSL_PRIVATE_KEY,
    rpc_settings.SSL_CERT_CHAIN,
    rpc_settings.SSL_TRUST_STORE,
)


def check_security(conf: Conf, environ: Mapping[str, str], serving: bool) -> None:
    """Check the secret file and the TLS files before anything dials or listens.

    The RpcEnv reads them the same way, but only once a process runs: a daemon then
    failed with status 1, an app with a traceback, and a dial waited out its timeout.

    Args:
        conf: the settings.
        environ: the environment (SPARKCTL_SECRET, SPARKCTL_SECRET_FILE).
        serving: whether this command's process listens (daemons, a client-mode
            driver): TLS then needs a private key and a certificate chain.

    Raises:
        ConfigError: naming the setting that is wrong.
    """
    _check_secret_file(conf, environ)
    if not conf.get(rpc_settings.SSL_ENABLED):
        return
    for entry in _TLS_FILES:
        key, path = entry.key, conf.get(entry)
        if not path:
            if serving and entry is not rpc_settings.SSL_TRUST_STORE:
                raise ConfigError(key, f"spark.ssl.rpc.enabled is true but {key} is not set")
            continue
        try:
            with open(path, "rb") as handle:
                pem = b"-----BEGIN " in handle.read()
        except OSError as exc:
            raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
        if not pem:
            raise ConfigError(key, f"{path} is not a PEM file (no '-----BEGIN' line)")


def _check_secret_file(conf: Conf, environ: Mapping[str, str]) -> None:
    """A secret given directly wins over a file, as in the RpcEnv."""
    if conf.get(rpc_settings.AUTH_SECRET) or environ.get(SECRET_ENV_VAR):
        return
    source, path = rpc_settings.AUTH_SECRET_FILE.key, conf.get(rpc_settings.AUTH_SECRET_FILE)
    if not path:
        source, path = f"{SECRET_ENV_VAR}_FILE", environ.get(f"{SECRET_ENV_VAR}_FILE")
    if not path:
        return
    try:
        with open(path, "rb") as handle:
            empty = not handle.read().strip()
    except OSError as exc:
        raise ConfigError(
            source, f"cannot read the secret file {path}: {exc.strerror or exc}"
        ) from None
    if empty:
        raise ConfigError(source, f"the secret file {path} is empty")


def java_opts_conf(text: str) -> dict[str, str]:
    """`-Dspark.key=value` entries of a SPARK_MASTER_OPTS-style variable."""
    values: dict[str, str] = {}
    for token in text.split():
        match = _JAVA_OPT.match(token)
        if match is not None:
            values[match.group(1)] = match.group(2)
    return values


def load_conf(
    conf_pairs: Iterable[str],
    properties_file: Path | None,
    environ: Mapping[str, str],
    opts_var: str | None = None,
) -> Conf:
    """Merge the configuration sources below the flags into one `Conf`.

    Args:
        conf_pairs: the `--conf key=value` flags.
        properties_file: `--properties-file`; without it,
            `$SPARK_CONF_DIR/spark-defaults.conf` when that exists.
        environ: the environment to read.
        opts_var: an env variable holding `-Dspark.k=v` options (e.g. SPARK_MASTER_OPTS),
            lowest in precedence.

    Raises:
        ConfigError: naming the flag or file that is wrong.
    """
    values: dict[str, str] = {}
    if opts_var and environ.get(opts_var):
        values.update(_checked(java_opts_conf(environ[opts_var]), opts_var))
    if properties_file is not None:
        values.update(_checked(parse_properties_file(properties_file), "--properties-file"))
    elif environ.get("SPARK_CONF_DIR"):
        defaults = Path(environ["SPARK_CONF_DIR"]) / "spark-defaults.conf"
        if defaults.is_file():
            values.update(
                _checked(parse_properties_file(defaults, "SPARK_CONF_DIR"), str(defaults))
            )
    values.update(_checked(parse_conf_pairs(conf_pairs), "--conf"))
    conf = Conf(values)
    conf.warn_unknown()
    return conf


def _checked(values: dict[str, str], source: str) -> dict[str, str]:
    check_values(values, source)
    return values


@dataclasses.dataclass(frozen=True)
class Setting:
    """Where one daemon setting may come from, in precedence order.

    Attributes:
        flag: the flag's name for messages (e.g. "--cores").
        conf_key: a Spark conf key that sets it, if any.
        env_vars: environment variables that set it, first found wins.
    """

    flag: str
    conf_key: str | None = None
    env_vars: tuple[str, ...] = ()


def resolve(
    setting: Setting,
    flag_value: str | int | None,
    conf: Conf,
    environ: Mapping[str, str],
    default: T,
    parse: Callable[[str], T],
) -> T:
    """The value of `setting`: flag, then conf key, then env, then `default`.

    Raises:
        ConfigError: the chosen value does not parse; the message names its source.
    """
    candidates: list[tuple[str, str]] = []
    if flag_value is not None:
        candidates.append((setting.flag, str(flag_value)))
    if setting.conf_key and setting.conf_key in conf:
        candidates.append((setting.conf_key, conf[setting.conf_key]))
    candidates.extend((var, environ[var]) for var in setting.env_vars if environ.get(var))
    if not candidates:
        return default
    source, text = candidates[0]
    try:
        return parse(text)
    except ValueError as exc:
        hint = setting.flag if source == setting.flag else f"{source} (for {setting.flag})"
        raise ConfigError(setting.flag, f"invalid value for {hint}: {exc}") from None


def parse_memory_mb(text: str) -> int:
    """A memory amount in MiB: `4g`, `512m`, or a bare number of MiB.

    Raises:
        ValueError: not a size, or less than 1 MiB.
    """
    size = parse_size(text.strip(), "m")
    mb = size // (1 << 20)
    if mb < 1:
        raise ValueError(f"{text!r} is less than 1 MiB")
    if mb > 2**31 - 1:
        raise ValueError(f"{text!r} is too large")
    return mb


def parse_positive_int(text: str) -> int:
    """A whole number >= 1.

    Raises:
        ValueError: not an integer, or below 1.
    """
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{value} must be at least 1")
    if value > _INT32_MAX:
        raise ValueError(f"{value} is too large (at most {_INT32_MAX})")
    return value


def parse_port(text: str) -> int:
    """A TCP port, 0 meaning any free port.

    Raises:
        ValueError: not an integer in 0..65535.
    """
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"port {value} is out of range 0..65535")
    return value


def default_worker_memory_mb() -> int:
    """Spark's default: the machine's memory less 1 GiB, at least 1 GiB."""
    import psutil

    total_mb = psutil.virtual_memory().total // (1 << 20)
    return max(1024, total_mb - 1024)


def environ_snapshot() -> dict[str, str]:
    """A copy of the process environment (tests pass their own mapping instead)."""
    return dict(os.environ)
