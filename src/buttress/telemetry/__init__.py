"""Telemetry: listeners that turn :mod:`buttress.events` records into logs and metrics.

One naming scheme everywhere (logs, Prometheus, OpenTelemetry, docs, dashboard):

* every event has one **name**, ``buttress_<policy_type>_<kind>`` (``Event.name``), for example
  ``buttress_retry_gave_up``: the log message key and the value of the ``event`` label;
* **one counter**, :data:`EVENTS_TOTAL` = ``buttress_events_total``, counts every event, labelled by
  ``pipeline`` (the pipeline's name), ``policy`` (the policy instance's name) and ``event`` (the
  name);
* **histograms** for the events that carry a time span: an event field named ``duration`` is
  observed into :data:`DURATION_SECONDS` (``buttress_duration_seconds``), a field named ``delay``
  or ``waited`` into :data:`DELAY_SECONDS` (``buttress_delay_seconds``), with the same three
  labels.

Why one counter and not one counter per event type: the set of events is open (every policy module
adds its own), and one counter picks up a new event type with no registration and no code here;
``sum by (event) (rate(buttress_events_total[5m]))`` shows all activity in one query; the label
values are exactly the names grepped for in logs; and cardinality stays bounded by build-time
constants (pipelines x policies x event types).

Each backend installs with one call and returns the function that removes it::

    remove = buttress.telemetry.prometheus.install()          # prometheus_client.REGISTRY
    remove = buttress.telemetry.otel.install()                # the global MeterProvider
    remove = buttress.telemetry.logging.install()             # logger "buttress"

The backends import their libraries lazily and raise :class:`~buttress.errors.MissingExtra` when the
``telemetry`` extra is absent.  With no listener installed nothing here runs and no event is built.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError
from buttress.events import Event, add_listener

if TYPE_CHECKING:
    from buttress.pipeline import Pipeline

__all__ = [
    "DEFAULT_BUCKETS",
    "DELAY_SECONDS",
    "DURATION_SECONDS",
    "EVENTS_TOTAL",
    "HISTOGRAMS",
    "HISTOGRAM_FIELDS",
    "LABELS",
    "MetricsListener",
    "check_buckets",
    "event_fields",
    "event_name",
    "histogram_fields",
    "listen",
]

EVENTS_TOTAL = "buttress_events_total"
"""The one counter: every event, labelled by :data:`LABELS`."""

DURATION_SECONDS = "buttress_duration_seconds"
"""Histogram of the ``duration`` field (seconds) of events that carry one (call outcomes)."""

DELAY_SECONDS = "buttress_delay_seconds"
"""Histogram of the ``delay`` / ``waited`` field (seconds) of events that carry one (scheduled
retries, rate limiter and bulkhead waits)."""

LABELS: tuple[str, str, str] = ("pipeline", "policy", "event")
"""Label (attribute) names of every metric, in this order."""

HISTOGRAMS: dict[str, str] = {
    DURATION_SECONDS: "How long the call an event reports took, in seconds.",
    DELAY_SECONDS: (
        "How long a call was held back before it ran (a retry's backoff, a rate limiter's or a "
        "bulkhead's wait), in seconds."
    ),
}
"""Histogram name -> description."""

HISTOGRAM_FIELDS: dict[str, str] = {
    "duration": DURATION_SECONDS,
    "delay": DELAY_SECONDS,
    "waited": DELAY_SECONDS,
}
"""Event field name -> the histogram it is observed into.  A new event type gets a histogram by
naming its float field ``duration`` (a call's length) or ``delay`` / ``waited`` (time held back)."""

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram upper bounds in seconds (``+Inf`` is implied).  From 1 ms (an in-process or LAN call)
to 60 s (a generous total timeout); 10 s is the default backoff cap, so every default retry delay
falls in a finite bucket."""

_BASE_FIELDS = frozenset(("pipeline", "policy", "time"))
_lock = threading.Lock()
_names: dict[type[Event], str] = {}
_fields: dict[type[Event], tuple[str, ...]] = {}


def event_name(cls: type[Event]) -> str:
    """``buttress_<policy_type>_<kind>`` for an event class (cached; the same as ``Event.name``)."""
    name = _names.get(cls)
    if name is None:
        name = f"buttress_{cls.policy_type}_{cls.kind}"
        with _lock:
            _names[cls] = name
    return name


def event_fields(cls: type[Event]) -> tuple[str, ...]:
    """The fields an event class adds to ``pipeline``, ``policy`` and ``time``, in declaration
    order."""
    found = _fields.get(cls)
    if found is None:
        found = tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in _BASE_FIELDS and f.init
        )
        with _lock:
            _fields[cls] = found
    return found


def histogram_fields(cls: type[Event]) -> tuple[str, ...]:
    """The fields of an event class that feed a histogram (see :data:`HISTOGRAM_FIELDS`)."""
    return tuple(f for f in event_fields(cls) if f in HISTOGRAM_FIELDS)


def check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    """Validate histogram bounds: finite, strictly increasing, at least one; raise ConfigError."""
    try:
        out = tuple(float(b) for b in buckets)
    except (TypeError, ValueError):
        raise ConfigError("buckets", buckets, "must be a sequence of numbers") from None
    if not out:
        raise ConfigError("buckets", buckets, "needs at least one bound")
    if any(not math.isfinite(b) for b in out):
        raise ConfigError("buckets", buckets, "bounds must be finite (+Inf is implied)")
    if any(b >= c for b, c in itertools.pairwise(out)):
        raise ConfigError("buckets", buckets, "bounds must be strictly increasing")
    return out


Bound = tuple[Callable[[], Any], tuple[tuple[str, Callable[[float], Any]], ...]]
"""What a metrics listener records one kind of event with: the counter's increment, and per time
field the histogram's observe, already labelled."""


class MetricsListener(abc.ABC):
    """The events path shared by the Prometheus and OpenTelemetry listeners: per event, one dict
    lookup for its (event type, pipeline, policy) instruments, one counter increment and one
    observation per time field.  The instruments are bound to their labels once per key
    (:meth:`_bind`); a backend says how with :meth:`_counter` and :meth:`_histogram`."""

    __slots__ = ("_bound", "_lock", "buckets")

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = check_buckets(buckets)
        """The histograms' bucket bounds, seconds."""
        self._bound: dict[tuple[type[Event], str, str], Bound] = {}
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _counter(self, labels: dict[str, str]) -> Callable[[], Any]:
        """The function adding one to the events counter at ``labels`` (:data:`LABELS` to
        their values)."""

    @abc.abstractmethod
    def _histogram(self, name: str, labels: dict[str, str]) -> Callable[[float], Any]:
        """The function observing a value into histogram ``name`` at ``labels``."""

    def _bind(self, key: tuple[type[Event], str, str]) -> Bound:
        cls, pipeline, policy = key
        labels = dict(zip(LABELS, (pipeline, policy, event_name(cls)), strict=True))
        bound = (
            self._counter(labels),
            tuple((f, self._histogram(HISTOGRAM_FIELDS[f], labels)) for f in histogram_fields(cls)),
        )
        with self._lock:
            self._bound[key] = bound
        return bound

    def __call__(self, event: Event) -> None:
        key = (type(event), event.pipeline, event.policy)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bind(key)
        count, observers = bound
        count()
        for field, observe in observers:
            value = getattr(event, field)
            if value is not None:
                observe(value)


def listen(
    listener: Callable[[Event], None],
    pipeline: Pipeline | None = None,
    cleanup: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """Add ``listener`` to ``pipeline`` (default: every pipeline, a global listener).

    Returns the function that removes it and then runs ``cleanup``; calling it again does nothing.
    """
    stop = add_listener(listener) if pipeline is None else pipeline.add_listener(listener)
    done = [False]

    def remove() -> None:
        if done[0]:
            return
        done[0] = True
        stop()
        if cleanup is not None:
            cleanup()

    return remove
