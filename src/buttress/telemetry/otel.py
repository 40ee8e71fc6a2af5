"""OpenTelemetry metrics from Buttress events, via ``opentelemetry-api``.

The instruments carry the same names and attributes as the Prometheus metrics, so dashboards and
alerts read the same whichever path the numbers take:

* counter ``buttress_events_total`` (unit ``{event}``), +1 per event;
* histogram ``buttress_duration_seconds`` (unit ``s``) of events' ``duration`` field;
* histogram ``buttress_delay_seconds`` (unit ``s``) of events' ``delay`` or ``waited`` field;

each with the attributes ``pipeline``, ``policy`` and ``event``.  The histograms advise explicit
bucket boundaries (:data:`~buttress.telemetry.DEFAULT_BUCKETS`): the SDK's own defaults (0 to 10
000) are meant for milliseconds.  A Prometheus exporter that follows the OpenTelemetry compatibility
spec keeps these names unchanged: a counter name that already ends in ``_total``, and a name that
already ends in its unit's suffix, are not suffixed again.

Usage::

    from buttress.telemetry import otel
    remove = otel.install()                      # the global MeterProvider
    remove = otel.install(meter_provider=mp)     # or a given one

The library is imported when a listener is built, not when this module is imported.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError, MissingExtra
from buttress.version import __version__

from . import DEFAULT_BUCKETS, EVENTS_TOTAL, HISTOGRAMS, MetricsListener, listen

if TYPE_CHECKING:
    from buttress.pipeline import Pipeline

__all__ = ["METER_NAME", "OTelListener", "install"]

METER_NAME = "buttress"
"""The instrumentation scope name of the meter."""

_installed_lock = threading.Lock()
_installed: set[int] = set()  # ids of meter providers (0: the global one) with a live listener


def _import() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError:
        raise MissingExtra("OpenTelemetry metrics", "telemetry", "opentelemetry-api") from None
    return metrics


def _version() -> str:
    """The meter's instrumentation-scope version: Buttress's."""
    return __version__


class OTelListener(MetricsListener):
    """A listener that records events on OpenTelemetry instruments.

    :param meter_provider: a ``MeterProvider``; ``None`` (default) is the global one
        (``opentelemetry.metrics.get_meter_provider()``, a no-op until the application sets one).
    :param buckets: histogram bucket boundaries advised to the SDK, in seconds.

    Attribute dictionaries are built once per (event type, pipeline, policy) and reused.
    """

    __slots__ = ("counter", "histograms", "meter")

    def __init__(
        self, meter_provider: Any | None = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        metrics = _import()
        super().__init__(buckets)
        if meter_provider is not None and not hasattr(meter_provider, "get_meter"):
            raise ConfigError(
                "meter_provider", meter_provider, "must be an OpenTelemetry MeterProvider"
            )
        self.meter: Any = metrics.get_meter(METER_NAME, _version(), meter_provider=meter_provider)
        self.counter: Any = self.meter.create_counter(
            EVENTS_TOTAL,
            unit="{event}",
            description="Buttress policy events, by pipeline, policy instance and event name.",
        )
        self.histograms: dict[str, Any] = {
            name: self.meter.create_histogram(
                name,
                unit="s",
                description=doc,
                explicit_bucket_boundaries_advisory=list(self.buckets),
            )
            for name, doc in HISTOGRAMS.items()
        }

    def _counter(self, labels: dict[str, str]) -> Callable[[], Any]:
        return functools.partial(self.counter.add, 1, labels)

    def _histogram(self, name: str, labels: dict[str, str]) -> Callable[[float], Any]:
        return functools.partial(self.histograms[name].record, attributes=labels)

    def __repr__(self) -> str:
        return f"OTelListener(meter={self.meter!r})"


def install(
    meter_provider: Any | None = None,
    *,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    pipeline: Pipeline | None = None,
) -> Callable[[], None]:
    """Record Buttress events on OpenTelemetry instruments; returns the function that undoes it.

    :param meter_provider: default the global ``MeterProvider``.
    :param buckets: histogram bucket boundaries, seconds.
    :param pipeline: listen to this pipeline only; default every pipeline.

    A second install for the same provider while the first is live is refused
    (:class:`~buttress.errors.ConfigError`): it would count every event twice.  OpenTelemetry has no
    way to delete instruments, so removing stops the recording and leaves the instruments in place.
    """
    key = 0 if meter_provider is None else id(meter_provider)
    with _installed_lock:
        if key in _installed:
            raise ConfigError(
                "meter_provider",
                meter_provider,
                "already has a Buttress listener; call the remove function of the first install",
            )
        _installed.add(key)
    try:
        listener = OTelListener(meter_provider, buckets=buckets)
    except BaseException:
        with _installed_lock:
            _installed.discard(key)
        raise

    def forget() -> None:
        with _installed_lock:
            _installed.discard(key)

    return listen(listener, pipeline, forget)
