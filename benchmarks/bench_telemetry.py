"""Cost of telemetry: a successful call through a two-policy pipeline (fallback + retry), with no
listener and with each shipped listener.

Each successful call emits two events when someone listens (``buttress_retry_attempt_succeeded``,
``buttress_pipeline_call_succeeded``); with no listener it emits none and builds none.  Figures are
the best of several timed loops (``time.perf_counter``), in ns per call; the group's baseline is the
pipeline with no listener.  The logging row has its logger at WARNING, as in production, so the
records are filtered out after the level check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from buttress import Fallback, Pipeline, Retry
from buttress.telemetry import logging as blog
from buttress.telemetry import otel, prometheus

GROUP = "telemetry: sync call, fallback + retry, success path"


def _ok() -> int:
    return 1


def _best_ns(call: Callable[[], Any], n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        dt = time.perf_counter() - t0
        best = min(best, dt)
    return best / n * 1e9


def run(quick: bool = False) -> list[dict[str, Any]]:
    n, repeats = (20_000, 3) if quick else (200_000, 7)
    pipeline = Pipeline([Fallback(None), Retry(budget=None)], name="bench")

    def call() -> None:
        pipeline.call(_ok)

    rows: list[dict[str, Any]] = []

    def measure(name: str, install: Callable[[], Callable[[], None]] | None, note: str) -> None:
        remove = install() if install is not None else None
        try:
            call()
            value = _best_ns(call, n, repeats)
        finally:
            if remove is not None:
                remove()
        rows.append(
            {
                "group": GROUP,
                "name": name,
                "value": value,
                "unit": "ns/call",
                "baseline": install is None,
                "lower_is_better": True,
                "note": note,
            }
        )

    measure("no listener", None, "no event is built")
    measure(
        "prometheus",
        lambda: prometheus.install(CollectorRegistry(), pipeline=pipeline),
        "counter + duration histogram, 2 events per call",
    )
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        measure(
            "opentelemetry (SDK)",
            lambda: otel.install(provider, pipeline=pipeline),
            "SDK MeterProvider with an in-memory reader",
        )
    finally:
        provider.shutdown()
    logger = logging.getLogger("bench.buttress")
    logger.setLevel(logging.WARNING)
    measure(
        "logging (level WARNING)",
        lambda: blog.install(logger, pipeline=pipeline),
        "records dropped at the level check",
    )
    seen: list[object] = []
    measure(
        "list.append listener",
        lambda: pipeline.add_listener(seen.append),
        "the cost of building and delivering the events alone",
    )
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(f"{row['name']:<28} {row['value']:10.0f} {row['unit']}")
