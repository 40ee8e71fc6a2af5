"""The standard gRPC health service (``grpc.health.v1.Health``) backed by a health registry.

Needs the ``grpc`` extra (``grpcio``, ``grpcio-health-checking``); importing this module without
it raises :class:`~buttress.errors.MissingExtra`.  Nothing else in :mod:`buttress.health` imports
it.

Service names map to groups (``services``; default: ``""`` -> readiness, the name the gRPC
health-checking protocol uses for the server as a whole, plus ``"liveness"``, ``"readiness"``,
``"startup"``).  A group that passes or warns is ``SERVING``, one that fails ``NOT_SERVING``.
``Check`` on an unknown service answers ``NOT_FOUND``; ``Watch`` on one streams
``SERVICE_UNKNOWN`` (both as the protocol specifies); ``List`` reports every mapped service.

::

    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(HealthServicer(registry), server)

For the thread-pool server (``grpc.server``), use :class:`SyncHealthServicer`, which evaluates on
the registry's own event-loop thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from buttress.errors import ConfigError, MissingExtra
from buttress.options import check_seconds

from .registry import LIVENESS, READINESS, STARTUP, HealthRegistry, HealthReport

try:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("the gRPC health servicer", "grpc", "grpcio-health-checking") from None

__all__ = ["DEFAULT_SERVICES", "HealthServicer", "SyncHealthServicer", "add_to_server"]

DEFAULT_SERVICES: Mapping[str, str] = {
    "": READINESS,
    LIVENESS: LIVENESS,
    READINESS: READINESS,
    STARTUP: STARTUP,
}

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def _services(registry: HealthRegistry, services: Mapping[str, str] | None) -> dict[str, str]:
    if not isinstance(registry, HealthRegistry):
        raise ConfigError("registry", registry, "must be a buttress.health.HealthRegistry")
    table = dict(DEFAULT_SERVICES if services is None else services)
    for name, group in table.items():
        if not isinstance(name, str):
            raise ConfigError("services", name, "service names must be strings")
        registry.check_group("services", group, allow_all=True)
    return table


def _status(report: HealthReport) -> Any:
    return _SERVING if report.ok else _NOT_SERVING


def _interval(value: float) -> float:
    return check_seconds("watch_interval", value, gt=0)


class _Servicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The configuration both servicers share (the parameters of :class:`HealthServicer`)."""

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        services: Mapping[str, str] | None = None,
        watch_interval: float = 1.0,
    ) -> None:
        self.registry = registry
        self.services = _services(registry, services)
        self.watch_interval = _interval(watch_interval)


class HealthServicer(_Servicer):
    """``grpc.health.v1.Health`` for ``grpc.aio`` servers.

    :param registry: the checks.
    :param services: service name -> group.  Default :data:`DEFAULT_SERVICES`.
    :param watch_interval: seconds between evaluations while a ``Watch`` stream is open (it sends
        a message only when the status changes).  Default 1 s.
    """

    async def Check(self, request: Any, context: Any) -> Any:
        group = self.services.get(request.service)
        if group is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return None
        report = await self.registry.evaluate(group)
        return health_pb2.HealthCheckResponse(status=_status(report))

    async def List(self, request: Any, context: Any) -> Any:
        reports = await asyncio.gather(*(self.registry.evaluate(g) for g in self.services.values()))
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=_status(r))
                for name, r in zip(self.services, reports, strict=True)
            }
        )

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        group = self.services.get(request.service)
        if group is None:
            yield health_pb2.HealthCheckResponse(status=_UNKNOWN)
            return
        last = None
        while True:
            status = _status(await self.registry.evaluate(group))
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            await asyncio.sleep(self.watch_interval)


class SyncHealthServicer(_Servicer):
    """``grpc.health.v1.Health`` for thread-pool servers (``grpc.server``); same parameters as
    :class:`HealthServicer`.  Evaluations run on the registry's own event-loop thread."""

    def Check(self, request: Any, context: Any) -> Any:
        group = self.services.get(request.service)
        if group is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            return None
        report = self.registry.evaluate_sync(group)
        return health_pb2.HealthCheckResponse(status=_status(report))

    def List(self, request: Any, context: Any) -> Any:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(
                    status=_status(self.registry.evaluate_sync(group))
                )
                for name, group in self.services.items()
            }
        )

    def Watch(self, request: Any, context: Any) -> Iterator[Any]:
        group = self.services.get(request.service)
        if group is None:
            yield health_pb2.HealthCheckResponse(status=_UNKNOWN)
            return
        last = None
        while context.is_active():
            status = _status(self.registry.evaluate_sync(group))
            if status != last:
                last = status
                yield health_pb2.HealthCheckResponse(status=status)
            time.sleep(self.watch_interval)


def add_to_server(
    server: Any, registry: HealthRegistry, *, services: Mapping[str, str] | None = None
) -> HealthServicer | SyncHealthServicer:
    """Register the health service on ``server``: :class:`HealthServicer` for a ``grpc.aio``
    server, :class:`SyncHealthServicer` otherwise.  Returns the servicer."""
    servicer: HealthServicer | SyncHealthServicer
    if isinstance(server, grpc.aio.Server):
        servicer = HealthServicer(registry, services=services)
    else:
        servicer = SyncHealthServicer(registry, services=services)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer
