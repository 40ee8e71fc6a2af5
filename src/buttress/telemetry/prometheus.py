"""Prometheus metrics from Buttress events, via ``prometheus-client``.

Metrics (see :mod:`buttress.telemetry` for why there is one counter):

* ``buttress_events_total{pipeline, policy, event}``: a counter, +1 per event;
* ``buttress_duration_seconds{pipeline, policy, event}``: a histogram of the ``duration`` of events
  that carry one (``buttress_pipeline_call_succeeded``, ``buttress_pipeline_call_failed``);
* ``buttress_delay_seconds{pipeline, policy, event}``: a histogram of the ``delay`` or ``waited`` of
  events that carry one (``buttress_retry_scheduled``, rate limiter and bulkhead waits);
* ``buttress_sli_events_total{sli, outcome}``: SLI events counted by :class:`SLICounter`
  (``outcome`` ``good`` or ``bad``), the counts an :class:`~buttress.slo.SLIRecorder` stores.

Usage::

    from buttress.telemetry import prometheus
    remove = prometheus.install()            # into prometheus_client.REGISTRY
    ...
    remove()                                 # stop listening and unregister the metrics

The library is imported when a listener is built, not when this module is imported; without it,
:class:`~buttress.errors.MissingExtra` says which extra to install.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError, MissingExtra

from . import DEFAULT_BUCKETS, EVENTS_TOTAL, HISTOGRAMS, LABELS, MetricsListener, listen

if TYPE_CHECKING:
    from buttress.pipeline import Pipeline

__all__ = ["SLI_EVENTS_TOTAL", "PrometheusListener", "SLICounter", "install", "sli_queries"]


def _import() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingExtra("Prometheus metrics", "telemetry", "prometheus_client") from None
    return prometheus_client


def _registry(prom: Any, registry: Any | None) -> Any:
    """``registry``, or the library's global ``REGISTRY`` for ``None``; anything else is refused."""
    chosen = prom.REGISTRY if registry is None else registry
    if not isinstance(chosen, prom.CollectorRegistry):
        raise ConfigError("registry", registry, "must be a prometheus_client.CollectorRegistry")
    return chosen


class PrometheusListener(MetricsListener):
    """A listener that counts events and observes their durations into Prometheus metrics.

    :param registry: a ``prometheus_client.CollectorRegistry``; ``None`` (default) is the library's
        global ``REGISTRY``, the one its HTTP exporters serve.
    :param buckets: histogram upper bounds in seconds; default
        :data:`~buttress.telemetry.DEFAULT_BUCKETS`.

    Building it registers the metrics; :meth:`unregister` removes them.  A registry that already has
    metrics of these names (say, a second listener) is refused with
    :class:`~buttress.errors.ConfigError` rather than counting every event twice.

    Per event the listener does one dict lookup for the (event type, pipeline, policy) children, one
    counter increment and one histogram observation per time field.
    """

    __slots__ = ("counter", "histograms", "registry")

    def __init__(
        self, registry: Any | None = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> None:
        prom = _import()
        super().__init__(buckets)
        self.registry: Any = _registry(prom, registry)
        self.counter: Any = prom.Counter(
            EVENTS_TOTAL,
            "Buttress policy events, by pipeline, policy instance and event name.",
            LABELS,
            registry=None,
        )
        self.histograms: dict[str, Any] = {
            name: prom.Histogram(name, doc, LABELS, registry=None, buckets=self.buckets)
            for name, doc in HISTOGRAMS.items()
        }
        done: list[Any] = []
        try:
            for collector in (self.counter, *self.histograms.values()):
                self.registry.register(collector)
                done.append(collector)
        except ValueError as e:
            for collector in done:
                self.registry.unregister(collector)
            raise ConfigError(
                "registry",
                self.registry,
                f"already holds a metric of the same name ({e}); remove the earlier listener first",
            ) from None

    def _counter(self, labels: dict[str, str]) -> Callable[[], Any]:
        return self.counter.labels(**labels).inc  # type: ignore[no-any-return]

    def _histogram(self, name: str, labels: dict[str, str]) -> Callable[[float], Any]:
        return self.histograms[name].labels(**labels).observe  # type: ignore[no-any-return]

    def unregister(self) -> None:
        """Remove this listener's metrics from the registry (idempotent)."""
        for collector in (self.counter, *self.histograms.values()):
            try:
                self.registry.unregister(collector)
            except KeyError:
                pass

    def __repr__(self) -> str:
        return f"PrometheusListener(registry={self.registry!r})"


def install(
    registry: Any | None = None,
    *,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    pipeline: Pipeline | None = None,
) -> Callable[[], None]:
    """Export Buttress events as Prometheus metrics; returns the function that undoes it.

    :param registry: the ``CollectorRegistry`` to register in; default
        ``prometheus_client.REGISTRY``.
    :param buckets: histogram upper bounds, seconds; default
        :data:`~buttress.telemetry.DEFAULT_BUCKETS`.
    :param pipeline: listen to this pipeline only; default every pipeline (a global listener).

    The returned function stops listening and unregisters the metrics; calling it twice is harmless.
    """
    listener = PrometheusListener(registry, buckets=buckets)
    return listen(listener, pipeline, listener.unregister)


SLI_EVENTS_TOTAL = "buttress_sli_events_total"
"""The counter of :class:`SLICounter`: SLI events labelled ``sli`` and ``outcome``."""


class SLICounter:
    """SLI events as a Prometheus counter, :data:`SLI_EVENTS_TOTAL` ``{sli, outcome}`` with
    ``outcome`` ``good`` or ``bad``: what an :class:`~buttress.slo.SLIRecorder` stores per minute,
    exposed for Prometheus to compute the same ratios (:func:`sli_queries`).

    :param slis: SLI names whose two series are created at 0 at once, so that the first event is
        an increase Prometheus sees (a series born at 1 would hide its first event from
        ``rate()``).
    :param registry: default ``prometheus_client.REGISTRY``.

    :meth:`record` has :meth:`buttress.slo.SLIRecorder.record`'s signature, so the counter can
    stand beside (or instead of) a recorder, e.g. as an ASGI middleware's recorder."""

    __slots__ = ("_children", "counter", "registry")

    def __init__(self, slis: Sequence[str] = (), *, registry: Any | None = None) -> None:
        prom = _import()
        self.registry: Any = _registry(prom, registry)
        self.counter: Any = prom.Counter(
            SLI_EVENTS_TOTAL,
            "SLI events by SLI name and outcome (good or bad).",
            ("sli", "outcome"),
            registry=None,
        )
        try:
            self.registry.register(self.counter)
        except ValueError as e:
            raise ConfigError(
                "registry", self.registry, f"already holds {SLI_EVENTS_TOTAL} ({e})"
            ) from None
        self._children: dict[str, tuple[Any, Any]] = {}
        for sli in slis:
            self._child(sli)

    def _child(self, sli: str) -> tuple[Any, Any]:
        pair = self._children.get(sli)
        if pair is None:
            pair = (self.counter.labels(sli, "good"), self.counter.labels(sli, "bad"))
            self._children[sli] = pair
        return pair

    def record(self, sli: str, good: int, total: int, at: object = None) -> None:
        """Count ``good`` good events and ``total - good`` bad ones of ``sli`` (``at`` is
        ignored: Prometheus stamps the counts when it scrapes them)."""
        if good < 0 or total < good:
            raise ConfigError("good", good, f"must be between 0 and total ({total})")
        good_child, bad_child = self._child(sli)
        if good:
            good_child.inc(good)
        if total > good:
            bad_child.inc(total - good)

    def unregister(self) -> None:
        """Remove the counter from the registry (idempotent)."""
        try:
            self.registry.unregister(self.counter)
        except KeyError:
            pass


def sli_queries(sli: str, selector: str = "") -> tuple[str, str]:
    """``(good, total)`` PromQL rates over :class:`SLICounter`'s counter for ``sli``, with the
    ``{{.window}}`` placeholder of an SLO's ratio SLI; ``selector`` adds label matchers
    (``job="api"``)."""
    extra = f",{selector.strip().strip('{}')}" if selector.strip().strip("{}") else ""
    sel = f'sli="{sli}"{extra}'
    good = f'sum(rate({SLI_EVENTS_TOTAL}{{{sel},outcome="good"}}[{{{{.window}}}}]))'
    total = f"sum(rate({SLI_EVENTS_TOTAL}{{{sel}}}[{{{{.window}}}}]))"
    return good, total
