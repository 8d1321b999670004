"""The driver's addresses: what it listens on and what executors are told to dial.

A client-mode driver on a host of its own must advertise an address its
executors reach; by default that is the local end of its route to the master
(`rpcenv.local_addresses`), overridden by `spark.driver.host`,
`spark.driver.bindAddress`, `SPARK_LOCAL_HOSTNAME` and `SPARK_LOCAL_IP` as in
Spark. local[N] stays on loopback (its executors are its own children) unless
the conf says otherwise. Without a shared secret a driver that would have to
leave loopback refuses to start, with one error that says why and what to set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rpcenv import (
    SECRET_ENV_VAR,
    Conf,
    LocalAddresses,
    RpcAddress,
    RpcConfigError,
    is_loopback_host,
    local_addresses,
)
from rpcenv import settings as rpc_settings
from scheduler import settings

__all__ = ["check_driver_bind", "driver_addresses"]


def driver_addresses(
    conf: Conf, kind: str, master_urls: Sequence[str], environ: Mapping[str, str]
) -> LocalAddresses:
    """Where the driver listens and what it advertises (see the module docstring).

    Raises:
        ValueError: a master URL without a host and port.
    """
    host = conf.get(settings.DRIVER_HOST)
    bind = conf.get(settings.DRIVER_BIND_ADDRESS)
    if kind == "local":
        # Its executors are its own children: environment overrides meant for a cluster
        # (SPARK_LOCAL_IP in a worker's profile) must not take local[N] off loopback.
        return local_addresses([], host=host, bind_address=bind, environ={})
    masters = [_host_port(url) for url in master_urls]
    return local_addresses(masters, host=host, bind_address=bind, environ=environ)


def check_driver_bind(addresses: LocalAddresses, conf: Conf, environ: Mapping[str, str]) -> None:
    """Refuse, before anything listens, a driver that must leave loopback without a secret.

    The RpcEnv refuses such a bind too; this says why the driver wanted that address.

    Raises:
        RpcConfigError: naming SPARKCTL_SECRET, the address and where it came from.
    """
    if is_loopback_host(addresses.bind) or conf.get(rpc_settings.ALLOW_INSECURE):
        return
    given: tuple[str | None, ...] = (
        conf.get(rpc_settings.AUTH_SECRET),
        conf.get(rpc_settings.AUTH_SECRET_FILE),
        environ.get(SECRET_ENV_VAR),
        environ.get(f"{SECRET_ENV_VAR}_FILE"),
    )
    has_secret = any(given)
    if has_secret:
        return
    if addresses.from_route and addresses.bind == addresses.advertise:
        why = (
            f"its executors must reach it at {addresses.advertise}, this host's address on the "
            f"{addresses.source}"
        )
    else:
        why = f"it was asked to listen on {addresses.bind} ({addresses.bind_source})"
    raise RpcConfigError(
        f"the driver cannot start: {why}, and without a shared secret it listens on loopback "
        f"only. Set {SECRET_ENV_VAR} (or spark.authenticate.secret.file) to the cluster's "
        "secret, or set spark.rpc.allowInsecure=true to accept unauthenticated connections"
    )


def _host_port(url: str) -> tuple[str, int]:
    address = RpcAddress.from_uri(url)
    return address.host, address.port
