"""What the start commands resolved, and master URL parsing: plain data, cheap to import.

The daemon commands build these before anything is spawned, so that every
usage error is found in the calling process. This module never does I/O.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rpcenv import Conf, RpcAddress

__all__ = ["MasterSettings", "WorkerSettings", "parse_master_list"]


def parse_master_list(url: str) -> list[RpcAddress]:
    """Parse `spark://h1:7077[,h2:7077...]` into addresses.

    Raises:
        ValueError: not a spark:// URL, or a host/port is malformed.
    """
    text = url.strip()
    if not text.startswith("spark://"):
        scheme = text.split("://", 1)[0] if "://" in text else text
        raise ValueError(
            f"unknown master URL {url!r} (scheme {scheme!r}): expected spark://host:port"
        )
    addresses: list[RpcAddress] = []
    for part in text.removeprefix("spark://").split(","):
        if not part.strip():
            raise ValueError(f"empty host:port in master URL {url!r}")
        addresses.append(RpcAddress.from_uri(f"spark://{part.strip()}"))
    return addresses


@dataclasses.dataclass(frozen=True)
class MasterSettings:
    """Everything `start-master` resolved from flags, conf and environment."""

    host: str
    port: int
    webui_port: int
    work_dir: Path
    conf: Conf


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """Everything `start-worker` resolved from flags, conf and environment."""

    master_url: str
    masters: list[RpcAddress]
    cores: int
    memory_mb: int
    host: str
    port: int
    webui_port: int
    work_dir: Path
    conf: Conf
    register_timeout: float
