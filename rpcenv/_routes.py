"""Which local address a process advertises to its peers, and which it binds.

A driver or an executor on a host of its own must give peers an address they
can reach. The default is the local end of this host's route to the master
(what a UDP socket `connect()`ed toward it reports: no packet is sent), so a
process next to a loopback master stays on loopback and one on another host
picks the interface that reaches the cluster. Spark's settings and variables
override it in Spark's order. This module only computes addresses: it never
listens, and the loopback-without-secret rule stays with the RpcEnv.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Mapping, Sequence

__all__ = ["LOOPBACK", "LocalAddresses", "local_addresses", "route_address"]

#: Where a process with no master to reach (local[N]) listens.
LOOPBACK = "127.0.0.1"

_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def route_address(host: str, port: int = 7077) -> str | None:
    """The local address of this host's route to `host`, or None when there is none.

    Connecting a UDP socket only asks the kernel for a route: nothing is sent,
    so an unreachable or firewalled master costs nothing here.
    """
    target = host.strip("[]")
    if target in _WILDCARDS:
        return None
    try:
        infos = socket.getaddrinfo(target, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(sockaddr)
                local = str(probe.getsockname()[0])
        except OSError:
            continue
        local = local.split("%", 1)[0]  # an IPv6 link-local scope is not part of the address
        if local not in _WILDCARDS:
            return local
    return None


@dataclasses.dataclass(frozen=True, slots=True)
class LocalAddresses:
    """Where a process listens (`bind`) and what it tells its peers (`advertise`).

    `source` and `bind_source` name the settings that decided them, for error messages.
    """

    advertise: str
    bind: str
    source: str
    bind_source: str = ""

    @property
    def from_route(self) -> bool:
        """True when no setting chose the address: it is the route toward the master."""
        return self.source.startswith("route")


def local_addresses(
    masters: Sequence[tuple[str, int]],
    host: str | None = None,
    bind_address: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LocalAddresses:
    """The addresses of a driver (or of any process that must be reached from `masters`).

    Spark's order for what is advertised: `host` (`spark.driver.host`), then
    `SPARK_LOCAL_HOSTNAME`, then `SPARK_LOCAL_IP`, then (ours, where Spark asks
    the resolver for this host's name) the local end of the route to the first
    master that has one; loopback when `masters` is empty or none routes. The
    bind address is `bind_address` (`spark.driver.bindAddress`), else `host`,
    else `SPARK_LOCAL_IP`, else what is advertised.

    Args:
        masters: (host, port) of each master; empty for a process with no master.
        host: an explicit address to advertise (`spark.driver.host`).
        bind_address: an explicit address to listen on (`spark.driver.bindAddress`).
        environ: the environment (defaults to none: callers pass `os.environ`).
    """
    env = environ or {}
    local_ip = (env.get("SPARK_LOCAL_IP") or "").strip()
    local_hostname = (env.get("SPARK_LOCAL_HOSTNAME") or "").strip()
    host = (host or "").strip()
    bind_address = (bind_address or "").strip()
    if host:
        advertise, source = host, "spark.driver.host"
    elif local_hostname:
        advertise, source = local_hostname, "SPARK_LOCAL_HOSTNAME"
    elif local_ip:
        advertise, source = local_ip, "SPARK_LOCAL_IP"
    else:
        advertise, source = LOOPBACK, "loopback (no master to reach)"
        for master_host, master_port in masters:
            routed = route_address(master_host, master_port)
            if routed is not None:
                advertise, source = routed, f"route to the master at {master_host}"
                break
        else:
            if masters:
                source = "loopback (no route to the master)"
    bind, bind_source = next(
        (value, name)
        for value, name in (
            (bind_address, "spark.driver.bindAddress"),
            (host, "spark.driver.host"),
            (local_ip, "SPARK_LOCAL_IP"),
            (advertise, source),
        )
        if value
    )
    if advertise in _WILDCARDS:
        # A wildcard can be listened on but not dialled: advertise the route instead.
        routed = next((r for h, p in masters if (r := route_address(h, p)) is not None), LOOPBACK)
        advertise = routed
    return LocalAddresses(advertise, bind, source, bind_source)
