"""Master URLs: local, local[N], local[*], local[N,F], spark://host:port[,host:port]
(the host may be a bracketed IPv6 address).

Parsing only; no I/O.
"""

from __future__ import annotations

import os
import re

__all__ = ["parse_master"]

_LOCAL_N = re.compile(r"^local\[(\*|\d+)\]$")
_LOCAL_N_F = re.compile(r"^local\[(\*|\d+)\s*,\s*(\d+)\]$")
#: host:port, the host a name, an IPv4 address or a bracketed IPv6 one ([::1]:7077).
_HOST_PORT = re.compile(r"^(?:[^:/\s\[\]]+|\[[0-9A-Fa-f:.]+\]):\d+$")


def parse_master(master: str) -> tuple[str, int, int | None, list[str]]:
    """Parse a master URL into (kind, cores, max_failures, master_urls).

    kind is "local" or "standalone".

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
        f"bad master URL {master!r}: use local, local[N], local[*], local[N,F] or spark://host:port"
    )
