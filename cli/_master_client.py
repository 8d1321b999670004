"""How the command line talks to a running Master: through a client-mode RpcEnv.

`sparkctl status`, `kill` and cluster-mode `submit` ask the Master endpoint
with the public request messages of `master_service.proto`, so the CLI gets
the RpcEnv's authentication and TLS for free. With several masters
(`spark://h1:7077,h2:7077`) the ALIVE one is used (else the recovering leader,
else a standby, whose refusals say it is one). This module never starts a
cluster process and never prints: it returns messages or raises.

Without the cluster secret, an application's id and credential in the
environment (`SPARKCTL_APP_ID`, `SPARKCTL_APP_CREDENTIAL`; see docs/security.md)
let the client in, limited to that application: the state shows it alone, and
killing anything else fails with `RpcPermissionDeniedError`.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from google.protobuf.message import Message

from cli._settings import parse_master_list
from rpcenv import (
    Conf,
    RpcEndpointRef,
    RpcEnv,
    RpcError,
    RpcRemoteError,
)
from rpcenv.settings import RPC_BACKEND
from sparkctl.v1 import deploy_pb2, master_service_pb2

__all__ = [
    "MasterClient",
    "MasterNotFoundError",
    "MasterUnreachableError",
    "error_text",
    "parse_master_list",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

MASTER_ENDPOINT = "Master"


class MasterUnreachableError(ConnectionError):
    """No master answered at the given URL(s); the message says which and why."""


class MasterNotFoundError(LookupError):
    """The master does not know the driver or application asked about."""


def master_client_conf(conf: Conf) -> Conf:
    """`conf` for an env that talks to Masters: gRPC where it names the tcp backend.

    Masters speak gRPC only (they refuse spark.rpc.backend=tcp, which is local[N]'s);
    a spark-defaults.conf naming tcp left `status`, `kill` and `submit` failing with
    "connection closed".
    """
    if conf.get(RPC_BACKEND) == "tcp":
        return conf.merged({RPC_BACKEND.key: "grpc"})
    return conf


class MasterClient:
    """A connection to the active Master of a cluster.

    Args:
        master_url: `spark://host:port`, or a comma-separated list for HA.
        conf: settings for the RpcEnv (secret file, TLS, timeouts).
        timeout: seconds for each round trip.

    Raises:
        ValueError: the URL is malformed.
    """

    def __init__(self, master_url: str, conf: Conf, timeout: float = 10.0) -> None:
        self.master_url = master_url
        self._addresses = parse_master_list(master_url)
        self._conf = conf
        self._timeout = timeout
        self._env: RpcEnv | None = None
        self._ref: RpcEndpointRef | None = None

    def __enter__(self) -> MasterClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._env is not None:
            self._env.shutdown()
            self._env = None
            self._ref = None

    def connect(self) -> RpcEndpointRef:
        """Find the ALIVE master among the URLs.

        Raises:
            MasterUnreachableError: no master answered (each URL's reason is named).
        """
        if self._ref is not None:
            return self._ref
        if self._env is None:
            conf = master_client_conf(self._conf)
            self._env = RpcEnv.create("sparkctl-cli", "localhost", 0, conf, client_mode=True)
        reasons: list[str] = []
        fallback: RpcEndpointRef | None = None
        recovering: RpcEndpointRef | None = None
        for address in self._addresses:
            try:
                ref = self._env.endpoint_ref(address, MASTER_ENDPOINT, timeout=self._timeout)
                if len(self._addresses) == 1:
                    self._ref = ref
                    return ref
                state = ref.ask_sync(master_service_pb2.GetClusterStateRequest(), self._timeout)
            except RpcError as exc:
                reasons.append(f"{address.to_spark_url()}: {_first_line(exc)}")
                continue
            assert isinstance(state, master_service_pb2.GetClusterStateResponse)
            if state.status == deploy_pb2.MASTER_STATUS_ALIVE:
                self._ref = ref
                return ref
            if state.status == deploy_pb2.MASTER_STATUS_STANDBY:
                fallback = fallback or ref
                reasons.append(f"{address.to_spark_url()}: in standby")
            else:  # the elected leader, still recovering: it is the one to ask
                recovering = recovering or ref
                reasons.append(f"{address.to_spark_url()}: recovering")
        chosen = recovering or fallback
        if chosen is not None:
            # No ALIVE master yet: a recovering leader answers; a standby says why it refuses.
            self._ref = chosen
            return chosen
        raise MasterUnreachableError(
            f"cannot reach a master at {self.master_url}: " + "; ".join(reasons)
        )

    def _ask(self, request: Message, reply_type: type[M]) -> M:
        ref = self.connect()
        try:
            reply = ref.ask_sync(request, self._timeout)
        except RpcRemoteError as exc:
            if exc.remote_type.rsplit(".", 1)[-1] in ("KeyError", "LookupError", "NotFoundError"):
                raise MasterNotFoundError(exc.remote_message) from None
            raise
        if not isinstance(reply, reply_type):
            raise RpcError(
                f"the master answered {request.DESCRIPTOR.name} with "
                f"{reply.DESCRIPTOR.full_name}, expected {reply_type.DESCRIPTOR.full_name}"
            )
        return reply

    def cluster_state(self) -> master_service_pb2.GetClusterStateResponse:
        """Workers, applications and drivers."""
        return self._ask(
            master_service_pb2.GetClusterStateRequest(),
            master_service_pb2.GetClusterStateResponse,
        )

    def submit_driver(
        self, description: deploy_pb2.DriverDescription
    ) -> master_service_pb2.SubmitDriverResponse:
        """Submit a cluster-mode driver; the answer carries its id."""
        return self._ask(
            master_service_pb2.SubmitDriverRequest(description=description),
            master_service_pb2.SubmitDriverResponse,
        )

    def driver_status(self, driver_id: str) -> master_service_pb2.DriverSummary:
        """The state of one driver.

        Raises:
            MasterNotFoundError: unknown driver id.
        """
        reply = self._ask(
            master_service_pb2.GetDriverStatusRequest(driver_id=driver_id),
            master_service_pb2.GetDriverStatusResponse,
        )
        if not reply.HasField("driver"):
            raise MasterNotFoundError(f"no driver {driver_id}")
        return reply.driver

    def kill_driver(self, driver_id: str) -> master_service_pb2.KillDriverResponse:
        """Kill a driver by id."""
        return self._ask(
            master_service_pb2.KillDriverRequest(driver_id=driver_id),
            master_service_pb2.KillDriverResponse,
        )

    def kill_application(self, app_id: str) -> master_service_pb2.KillApplicationResponse:
        """Kill an application by id."""
        return self._ask(
            master_service_pb2.KillApplicationRequest(app_id=app_id),
            master_service_pb2.KillApplicationResponse,
        )


def error_text(exc: BaseException) -> str:
    """What to tell a user about `exc`: a remote failure's message without its traceback."""
    if isinstance(exc, RpcRemoteError):
        return exc.remote_message.strip() or exc.remote_type
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
