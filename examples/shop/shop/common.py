"""What every shop service shares: its settings from the environment, health, metrics, SLI
recording.

`buttress lab examples/shop` starts each service with these variables (see docs/shop-lab.md):

    BUTTRESS_LAB_SPEC       the reliability.yaml the service reads its policies and SLOs from
    BUTTRESS_LAB_POLICIES   "on" (the default: Buttress's policies from reliability.yaml), "typical"
                            (what a team writes with tenacity, pybreaker and client timeouts:
                            shop/typical.py) or "off" (a plain call, no protection at all)
    BUTTRESS_LAB_UPSTREAMS  JSON {service: [base URL of each instance, through the fault proxy]}
    BUTTRESS_LAB_STORE      the SQLite store SLIs and policy states go to (optional)
    BUTTRESS_LAB_DATA       a directory for the service's own data (the datastore's database)
    BUTTRESS_LAB_INSTANCE   this instance's name (payments-1, ...)
    BUTTRESS_LAB_CONTROL    the instance's fault control file (crash loop, leak: shop/labfaults.py)
    BUTTRESS_LAB_MODE_STATE the shared degraded-mode file remediation switches (api; Buttress run)
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from buttress.dashboard import Publisher
from buttress.health import HealthApp, HealthRegistry
from buttress.lab.service import LabService
from buttress.slo import SLIRecorder, SLIStore
from buttress.telemetry import prometheus as telemetry

from .labfaults import with_lab_faults

MODES = ("on", "typical", "off")
HOME = Path(__file__).resolve().parent.parent  # examples/shop
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        return super().from_env(service, home=HOME, modes=MODES, env=env)

    def recorder(self) -> SLIRecorder | None:
        """An SLI recorder flushing every second into the store, or None without a store."""
        if self.store is None:
            return None
        rec = SLIRecorder(SLIStore(self.store), self.spec.slos, flush_every=1.0)
        rec.start()
        self._closers.append(rec.close)
        return rec

    def publisher(self) -> Publisher | None:
        """A publisher of policy states into the store (for the dashboard and the report)."""
        if self.store is None:
            return None
        pub = Publisher(self.store, source=self.instance)
        self._closers.append(pub.close)
        return pub

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()


def with_health(app: ASGIApp, registry: HealthRegistry) -> ASGIApp:
    """``/health/*`` answered by Buttress's health app, ``GET /metrics`` by :func:`with_metrics`,
    everything else by ``app``; under the lab, with its process faults played
    (:mod:`shop.labfaults`)."""
    return with_lab_faults(HealthApp(registry, app=with_metrics(app)), registry)


_metrics: list[ASGIApp] = []


def with_metrics(app: ASGIApp) -> ASGIApp:
    """``GET /metrics``: the process's Prometheus metrics (``prometheus_client.REGISTRY``), with
    Buttress's telemetry installed once per process (:mod:`buttress.telemetry.prometheus`: every
    policy event; the api adds its SLI events); everything else goes to ``app``.  `buttress lab
    --prometheus` scrapes it."""
    if not _metrics:
        import prometheus_client

        telemetry.install()
        _metrics.append(prometheus_client.make_asgi_app())
    exposition = _metrics[0]

    async def route(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/metrics":
            await exposition(scope, receive, send)
        else:
            await app(scope, receive, send)

    return route


class AttemptCounter:
    """Counts every HTTP attempt the api sends to each dependency instance, per wall-clock second,
    so the lab can tell how much load each protection puts on a failing dependency (retries
    included, however deep in a transport they happen)."""

    def __init__(self, upstreams: Mapping[str, list[str]]) -> None:
        # Per instance, named as the lab names them (payments-1, payments-2; a lone one by its
        # service): a fault on one instance is judged by the load on that instance.
        self.by_netloc: dict[str, str] = {}
        for service, urls in upstreams.items():
            for i, url in enumerate(urls, 1):
                name = service if len(urls) == 1 else f"{service}-{i}"
                self.by_netloc[httpx.URL(url).netloc.decode()] = name
        self.counts: dict[str, dict[int, int]] = {n: {} for n in self.by_netloc.values()}

    def count(self, url: httpx.URL) -> None:
        service = self.by_netloc.get(url.netloc.decode())
        if service is not None:
            per_second = self.counts[service]
            second = int(time.time())
            per_second[second] = per_second.get(second, 0) + 1

    def transport(self) -> CountingTransport:
        """A fresh httpx transport that counts into this counter."""
        return CountingTransport(self)

    def to_json(self) -> dict[str, dict[str, int]]:
        return {s: {str(t): n for t, n in c.items()} for s, c in self.counts.items()}


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting each request it sends."""

    def __init__(self, counter: AttemptCounter) -> None:
        self.counter = counter
        # No cap on connections: httpcore 1.0.9 leaks a pool slot for good when a request is
        # cancelled (a timeout) while its new connection is still connecting (encode/httpcore
        # #1093, #830); with a cap, enough leaked slots wedge the pool and every later call waits
        # for a slot that never frees, against healthy dependencies.  Uncapped, a leak costs an
        # idle socket, not the service.
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.counter.count(request.url)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
