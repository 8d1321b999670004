"""The public `sparkctl.v1.MasterService`, served on the Master's port.

Each call is forwarded into the Master endpoint as an ask, so the Master's
state stays single-threaded; the endpoint's complaints come back as the
Python exception types that the RpcEnv maps onto gRPC status codes
(ValueError -> INVALID_ARGUMENT, LookupError -> NOT_FOUND, a standby Master's
refusal or a recovery record it cannot write -> UNAVAILABLE). A caller that
authenticated with an application's credential stays limited to that
application in the ask (the transport carries it into the ask's origin), so it
gets PERMISSION_DENIED where the Master's sender policy says so. This module
never reads or changes the Master's records itself.
"""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from cluster.master_base import StandbyMasterError
from cluster.persistence import PersistenceError
from rpcenv import (
    RpcConfigError,
    RpcEndpointRef,
    RpcEnv,
    RpcPermissionDeniedError,
    RpcRemoteError,
)
from sparkctl.v1 import master_service_pb2 as api

__all__ = ["MasterServiceImpl", "serve_master_service"]

log = logging.getLogger(__name__)

#: How long a public call waits for the Master endpoint.
CALL_TIMEOUT_S = 30.0


class MasterServiceImpl:
    """`MasterService` methods, each one ask to the Master endpoint."""

    def __init__(self, master: RpcEndpointRef, timeout: float = CALL_TIMEOUT_S) -> None:
        self._master = master
        self._timeout = timeout

    def _call(self, request: Message, response_type: type[Message]) -> Message:
        try:
            answer = self._master.ask_sync(request, self._timeout)
        except RpcRemoteError as exc:
            raise _local_error(exc) from None
        if not isinstance(answer, response_type):
            got = answer.DESCRIPTOR.full_name
            raise RuntimeError(f"the Master answered {got} to {request.DESCRIPTOR.full_name}")
        return answer

    def GetClusterState(self, request: api.GetClusterStateRequest) -> api.GetClusterStateResponse:
        """Workers, applications and drivers."""
        answer = self._call(request, api.GetClusterStateResponse)
        assert isinstance(answer, api.GetClusterStateResponse)
        return answer

    def SubmitDriver(self, request: api.SubmitDriverRequest) -> api.SubmitDriverResponse:
        """Submit a cluster-mode driver."""
        answer = self._call(request, api.SubmitDriverResponse)
        assert isinstance(answer, api.SubmitDriverResponse)
        return answer

    def GetDriverStatus(self, request: api.GetDriverStatusRequest) -> api.GetDriverStatusResponse:
        """One driver's state."""
        if not request.driver_id:
            raise ValueError("driver_id is required")
        answer = self._call(request, api.GetDriverStatusResponse)
        assert isinstance(answer, api.GetDriverStatusResponse)
        return answer

    def KillDriver(self, request: api.KillDriverRequest) -> api.KillDriverResponse:
        """Kill a driver."""
        if not request.driver_id:
            raise ValueError("driver_id is required")
        answer = self._call(request, api.KillDriverResponse)
        assert isinstance(answer, api.KillDriverResponse)
        return answer

    def KillApplication(self, request: api.KillApplicationRequest) -> api.KillApplicationResponse:
        """Kill an application."""
        if not request.app_id:
            raise ValueError("app_id is required")
        answer = self._call(request, api.KillApplicationResponse)
        assert isinstance(answer, api.KillApplicationResponse)
        return answer


def _local_error(exc: RpcRemoteError) -> Exception:
    """The endpoint's exception as a local one of the same family (for the status code)."""
    kind = exc.remote_type.rsplit(".", 1)[-1]
    if kind in ("LookupError", "KeyError"):
        return LookupError(exc.remote_message)
    if kind == "ValueError":
        return ValueError(exc.remote_message)
    if kind in ("PermissionError", RpcPermissionDeniedError.__name__):
        return RpcPermissionDeniedError(exc.remote_message)
    if kind == StandbyMasterError.__name__:
        return StandbyMasterError(exc.remote_message)
    if kind == PersistenceError.__name__:
        return PersistenceError(exc.remote_message)
    return exc


def serve_master_service(env: RpcEnv, master: RpcEndpointRef) -> bool:
    """Serve MasterService on `env`'s port; False when the backend cannot (e.g. local)."""
    service = api.DESCRIPTOR.services_by_name["MasterService"]
    try:
        env.serve_service(service, MasterServiceImpl(master))
    except RpcConfigError as exc:
        log.debug("MasterService not served: %s", exc)
        return False
    return True
