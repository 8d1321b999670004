"""Master URLs: local, local[N], local[*], local[N,F], spark://host:port[,host:port]
(the host may be a bracketed IPv6 address), local-cluster[N,C,M].

Parsing only; no I/O.
"""

from __future__ import annotations

import os
import re

__all__ = ["parse_local_cluster", "parse_master"]

_LOCAL_N = re.compile(r"^local\[(\*|\d+)\]$")
_LOCAL_CLUSTER = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")
_LOCAL_N_F = re.compile(r"^local\[(\*|\d+)\s*,\s*(\d+)\]$")
#: host:port, the host a name, an IPv4 address or a bracketed IPv6 one ([::1]:7077).
_HOST_PORT = re.compile(r"^(?:[^:/\s\[\]]+|\[[0-9A-Fa-f:.]+\]):\d+$")


def parse_local_cluster(master: str) -> tuple[int, int, int] | None:
    """(workers, cores per worker, MiB per worker) of a local-cluster URL, else None.

    Raises:
        ValueError: naming the URL when a number is zero.
    """
    match = _LOCAL_CLUSTER.match(master.strip())
    if match is None:
        return None
    workers, cores, memory_mb = (int(g) for g in match.groups())
    if min(workers, cores, memory_mb) < 1:
        raise ValueError(
            f"bad master URL {master!r}: local-cluster[N,C,M] needs N workers >= 1, "
            "C cores >= 1 and M MiB >= 1 each"
        )
    return workers, cores, memory_mb


def parse_master(master: str) -> tuple[str, int, int | None, list[str]]:
    """Parse a master URL into (kind, cores, max_failures, master_urls).

    kind is "local", "standalone" or "local-cluster" (cores: all the workers').

    Raises:
        ValueError: naming the URL when it is not one sparkctl understands.
    """
    master = master.strip()
    cpus = os.cpu_count() or 1
    if master == "local":
        return "local", 1, None, []
    match = _LOCAL_N.match(master)
    if match:
        n = cpus if match.group(1) == "*" else int(match.group(1))
        if n < 1:
            raise ValueError(f"bad master URL {master!r}: the number of cores must be >= 1")
        return "local", n, None, []
    match = _LOCAL_N_F.match(master)
    if match:
        n = cpus if match.group(1) == "*" else int(match.group(1))
        if n < 1:
            raise ValueError(f"bad master URL {master!r}: the number of cores must be >= 1")
        return "local", n, int(match.group(2)), []
    shape = parse_local_cluster(master)
    if shape is not None:
        return "local-cluster", shape[0] * shape[1], None, []
    if master.startswith("spark://"):
        urls = []
        for host_port in master[len("spark://") :].split(","):
            host_port = host_port.strip()
            if not _HOST_PORT.match(host_port):
                raise ValueError(
                    f"bad master URL {master!r}: expected spark://host:port[,host:port]"
                )
            urls.append("spark://" + host_port)
        return "standalone", 0, None, urls
    raise ValueError(
        f"bad master URL {master!r}: use local, local[N], local[*], local[N,F], "
        "spark://host:port or local-cluster[N,C,M]"
    )
