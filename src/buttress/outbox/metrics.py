"""Outbox gauges for Prometheus, read from the table at scrape time.

Delivery latency, retries, dead-lettering and fencing are events (:mod:`buttress.outbox.events`)
and reach Prometheus through :func:`buttress.telemetry.prometheus.install` like every other
policy's events.  Depth and the age of the oldest message are *state*, not events: a collector
reads them from the outbox when Prometheus scrapes, so they are right even when no relay runs.

* ``buttress_outbox_depth{queue}``: live messages (due, waiting or in flight);
* ``buttress_outbox_in_flight{queue}``: live messages under a lease;
* ``buttress_outbox_dead_letters{queue}``: messages in the dead-letter queue;
* ``buttress_outbox_oldest_age_seconds{queue}``: how long the oldest live message has waited (the
  SLI of an "outbox age" SLO: ``max(...) < 60``).

A scrape during a store outage returns no outbox samples (and logs why) rather than failing the
whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from buttress.errors import MissingExtra

from .errors import StoreUnavailable
from .store import Outbox

__all__ = ["OutboxCollector", "install"]

GAUGES: dict[str, str] = {
    "buttress_outbox_depth": "Live outbox messages: due, waiting for a retry, or in flight.",
    "buttress_outbox_in_flight": "Live outbox messages under a relay's lease.",
    "buttress_outbox_dead_letters": "Outbox messages in the dead-letter queue.",
    "buttress_outbox_oldest_age_seconds": "Seconds the oldest live outbox message has waited.",
}


class OutboxCollector:
    """A ``prometheus_client`` collector of one outbox's gauges (see the module's docs)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            status = self.outbox.status()
        except StoreUnavailable as e:
            logging.getLogger("buttress.outbox").warning("outbox metrics unavailable: %s", e)
            return
        now = self.outbox.now()
        families = {n: GaugeMetricFamily(n, doc, labels=["queue"]) for n, doc in GAUGES.items()}
        for s in status:
            families["buttress_outbox_depth"].add_metric([s.queue], s.pending)
            families["buttress_outbox_in_flight"].add_metric([s.queue], s.in_flight)
            families["buttress_outbox_dead_letters"].add_metric([s.queue], s.dead)
            families["buttress_outbox_oldest_age_seconds"].add_metric([s.queue], s.age(now))
        yield from families.values()

    def describe(self) -> list[Any]:
        return []  # collected on demand: no describe-time query against the database


def install(outbox: Outbox, registry: Any | None = None) -> Callable[[], None]:
    """Register the outbox's gauges in ``registry`` (default ``prometheus_client.REGISTRY``);
    returns the function that unregisters them."""
    try:
        import prometheus_client
    except ImportError:
        raise MissingExtra("outbox metrics", "telemetry", "prometheus_client") from None
    reg = registry if registry is not None else prometheus_client.REGISTRY
    collector = OutboxCollector(outbox)
    reg.register(collector)

    def remove() -> None:
        try:
            reg.unregister(collector)
        except KeyError:
            pass

    return remove
