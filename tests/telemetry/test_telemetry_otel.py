"""OpenTelemetry listener against the real SDK: a MeterProvider read by an InMemoryMetricReader."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from buttress import ConfigError, MissingExtra, Pipeline, Retry
from buttress.telemetry import DEFAULT_BUCKETS, otel, prometheus
from buttress.testing import FakeClock

from .scenario import EXPECTED, EXPECTED_DELAYS, EXPECTED_DURATIONS, run_scenario
from .test_telemetry_prometheus import counter_values


@pytest.fixture
def provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    yield mp, reader
    mp.shutdown()


def metrics_by_name(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    out: dict[str, Any] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert "buttress" == sm.scope.name
            for m in sm.metrics:
                out[m.name] = m
    return out


def key(point: Any) -> tuple[str, str, str]:
    a = point.attributes
    return (a["pipeline"], a["policy"], a["event"])


async def test_same_numbers_as_prometheus(
    clock: FakeClock, provider: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    mp, reader = provider
    registry = CollectorRegistry()
    remove_otel = otel.install(mp)
    remove_prom = prometheus.install(registry)
    try:
        await run_scenario(clock)
        text = generate_latest(registry).decode()
    finally:
        remove_otel()
        remove_prom()

    found = metrics_by_name(reader)
    assert {"buttress_events_total", "buttress_duration_seconds", "buttress_delay_seconds"} == set(
        found
    )
    events = found["buttress_events_total"]
    assert "{event}" == events.unit
    assert events.data.is_monotonic
    otel_counts = {key(p): p.value for p in events.data.data_points}
    assert EXPECTED == otel_counts
    # One naming scheme: the same series, names and labels as the Prometheus listener.
    assert counter_values(text) == {k: float(v) for k, v in otel_counts.items()}

    for metric, expected in (
        ("buttress_duration_seconds", EXPECTED_DURATIONS),
        ("buttress_delay_seconds", EXPECTED_DELAYS),
    ):
        h = found[metric]
        assert "s" == h.unit
        got = {(key(p)[0], key(p)[2]): p for p in h.data.data_points}
        assert set(expected) == set(got)
        for k, (count, total) in expected.items():
            assert count == got[k].count
            assert total == pytest.approx(got[k].sum)
            assert DEFAULT_BUCKETS == tuple(got[k].explicit_bounds)
    # The four 0.5 s delays of "payments" fall in the bucket (0.25, 0.5].
    payments = {key(p)[0]: p for p in found["buttress_delay_seconds"].data.data_points}["payments"]
    i = DEFAULT_BUCKETS.index(0.5)
    assert 4 == payments.bucket_counts[i]
    assert 4 == sum(payments.bucket_counts)


def test_remove_stops_recording_and_allows_reinstall(
    clock: FakeClock, provider: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    mp, reader = provider
    p = Pipeline([Retry(attempts=1, budget=None, clock=clock)], name="once", clock=clock)
    remove = otel.install(mp, pipeline=p)
    with pytest.raises(ConfigError) as err:
        otel.install(mp)
    assert "meter_provider" == err.value.parameter
    p.call(lambda: 1)
    remove()
    remove()  # idempotent
    p.call(lambda: 1)
    points = metrics_by_name(reader)["buttress_events_total"].data.data_points
    assert {
        ("once", "once", "buttress_pipeline_call_succeeded"): 1,
        ("once", "retry", "buttress_retry_attempt_succeeded"): 1,
    } == {key(pt): pt.value for pt in points}
    otel.install(mp)()  # the provider is free again


def test_bad_input_is_refused(provider: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    mp, _ = provider
    with pytest.raises(ConfigError) as err:
        otel.install(mp, buckets=[2.0, 1.0])
    assert "buckets" == err.value.parameter
    with pytest.raises(ConfigError) as err:
        otel.install(object())
    assert "meter_provider" == err.value.parameter
    otel.install(mp)()  # the failed installs left nothing behind


def test_missing_library_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingExtra) as err:
        otel.install()
    assert "buttress[telemetry]" in str(err.value)
