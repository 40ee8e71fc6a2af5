"""Prometheus listener against a real prometheus_client registry, scraped with generate_latest."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from buttress import Backoff, ConfigError, MissingExtra, Pipeline, Retry
from buttress.events import Emitter, Event
from buttress.telemetry import DEFAULT_BUCKETS, prometheus
from buttress.testing import FakeClock

from .scenario import EXPECTED, EXPECTED_DELAYS, EXPECTED_DURATIONS, run_scenario


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def counter_values(text: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "buttress_events_total":
                out[(s.labels["pipeline"], s.labels["policy"], s.labels["event"])] = s.value
    return out


def histogram(text: str, metric: str) -> dict[tuple[str, str], dict[str, float]]:
    """(pipeline, event) -> {"count": n, "sum": s, "le=<bound>": cumulative count}."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for s in family.samples:
            key = (s.labels["pipeline"], s.labels["event"])
            d = out.setdefault(key, {})
            if s.name.endswith("_count"):
                d["count"] = s.value
            elif s.name.endswith("_sum"):
                d["sum"] = s.value
            elif s.name.endswith("_bucket"):
                d["le=" + s.labels["le"]] = s.value
    return out


async def test_scrape_after_failures_and_retries(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    remove = prometheus.install(registry)
    try:
        await run_scenario(clock)
        text = scrape(registry)
    finally:
        remove()
    # remove() unregistered the metrics.
    assert "buttress_" not in scrape(registry)

    assert {k: float(v) for k, v in EXPECTED.items()} == counter_values(text)

    durations = histogram(text, "buttress_duration_seconds")
    assert set(EXPECTED_DURATIONS) == set(durations)
    for key, (count, total) in EXPECTED_DURATIONS.items():
        assert count == durations[key]["count"]
        assert total == pytest.approx(durations[key]["sum"])
    delays = histogram(text, "buttress_delay_seconds")
    assert set(EXPECTED_DELAYS) == set(delays)
    for key, (count, total) in EXPECTED_DELAYS.items():
        assert count == delays[key]["count"]
        assert total == pytest.approx(delays[key]["sum"])

    # Buckets are cumulative, with the documented bounds: each 0.5 s delay is <= 0.5, none <= 0.25.
    payments = delays[("payments", "buttress_retry_scheduled")]
    assert {f"le={b}" for b in DEFAULT_BUCKETS} | {"le=+Inf"} == {
        k for k in payments if k.startswith("le=")
    }
    assert 0.0 == payments["le=0.25"]
    assert 4.0 == payments["le=0.5"]
    assert 4.0 == payments["le=+Inf"]
    # A call that took 1.0 s on the fake clock lands in the 1.0 bucket, not in 0.5.
    ok = durations[("payments", "buttress_pipeline_call_succeeded")]
    assert (0.0, 1.0) == (ok["le=0.5"], ok["le=1.0"])


async def test_exposition_passes_promtool_lint(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    remove = prometheus.install(registry)
    try:
        await run_scenario(clock)
        text = scrape(registry)
    finally:
        remove()
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (0, "") == (proc.returncode, proc.stdout + proc.stderr)


def test_default_registry_is_prometheus_client_global(clock: FakeClock) -> None:
    p = Pipeline(
        [Retry(attempts=2, backoff=Backoff.constant(0.1), budget=None, clock=clock)],
        name="global_registry_test",
        clock=clock,
    )
    remove = prometheus.install()
    try:
        with pytest.raises(ConnectionError):
            p.call(_fail)
        labels = {
            "pipeline": "global_registry_test",
            "policy": "retry",
            "event": "buttress_retry_attempt_failed",
        }
        assert 2.0 == prometheus_client.REGISTRY.get_sample_value("buttress_events_total", labels)
    finally:
        remove()
    assert None is prometheus_client.REGISTRY.get_sample_value("buttress_events_total", labels)


def _fail() -> None:
    raise ConnectionError("down")


def test_registries_are_separate_and_a_second_install_is_refused(clock: FakeClock) -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    pa = Pipeline([Retry(attempts=1, budget=None, clock=clock)], name="a", clock=clock)
    pb = Pipeline([Retry(attempts=1, budget=None, clock=clock)], name="b", clock=clock)
    remove_a = prometheus.install(a, pipeline=pa)
    remove_b = prometheus.install(b, pipeline=pb)
    try:
        with pytest.raises(ConfigError) as err:
            prometheus.install(a)
        assert "registry" == err.value.parameter
        assert "remove the earlier listener first" in str(err.value)
        for _ in range(3):
            pa.call(lambda: 1)
        pb.call(lambda: 1)
        ca, cb = counter_values(scrape(a)), counter_values(scrape(b))
        assert 3.0 == ca[("a", "a", "buttress_pipeline_call_succeeded")]
        assert 1.0 == cb[("b", "b", "buttress_pipeline_call_succeeded")]
        assert not any(k[0] == "b" for k in ca)
        assert not any(k[0] == "a" for k in cb)
    finally:
        remove_a()
        remove_b()
    remove_a()  # idempotent
    # After removal the registry is free again and the pipeline is silent.
    remove = prometheus.install(a)
    remove()
    assert not pa.emitter.active


@dataclass(frozen=True, slots=True)
class CacheRefreshed(Event):
    """An event type defined outside buttress.telemetry, as other policy modules do."""

    policy_type: ClassVar[str] = "cache"
    kind: ClassVar[str] = "refreshed"
    duration: float


@dataclass(frozen=True, slots=True)
class QueueWaited(Event):
    policy_type: ClassVar[str] = "queue"
    kind: ClassVar[str] = "waited"
    waited: float


def test_new_event_types_need_no_registration() -> None:
    registry = CollectorRegistry()
    em = Emitter("catalog")
    remove = prometheus.install(registry)
    try:
        em.emit(CacheRefreshed("catalog", "cache", 0.0, 0.2))
        em.emit(CacheRefreshed("catalog", "cache", 0.0, 0.4))
        em.emit(QueueWaited("catalog", "queue", 0.0, 0.03))
        text = scrape(registry)
    finally:
        remove()
    assert {
        ("catalog", "cache", "buttress_cache_refreshed"): 2.0,
        ("catalog", "queue", "buttress_queue_waited"): 1.0,
    } == counter_values(text)
    h = histogram(text, "buttress_duration_seconds")[("catalog", "buttress_cache_refreshed")]
    assert (2.0, 0.6) == (h["count"], pytest.approx(h["sum"]))
    # A ``waited`` field is time held back: it goes to the delay histogram, not the duration one.
    w = histogram(text, "buttress_delay_seconds")[("catalog", "buttress_queue_waited")]
    assert (1.0, 0.03, 0.0, 1.0) == (
        w["count"],
        pytest.approx(w["sum"]),
        w["le=0.025"],
        w["le=0.05"],
    )
    assert ("catalog", "buttress_queue_waited") not in histogram(text, "buttress_duration_seconds")


@pytest.mark.parametrize(
    "buckets", [[], [1.0, 0.5], [0.5, 0.5], [0.1, float("inf")], ["x"], [float("nan")]]
)
def test_bad_buckets_are_refused(buckets: list[object]) -> None:
    registry = CollectorRegistry()
    with pytest.raises(ConfigError) as err:
        prometheus.install(registry, buckets=buckets)  # type: ignore[arg-type]
    assert "buckets" == err.value.parameter
    assert "" == scrape(registry)  # nothing left registered


def test_custom_buckets_are_used(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    p = Pipeline([Retry(attempts=1, budget=None, clock=clock)], name="c", clock=clock)
    remove = prometheus.install(registry, buckets=[0.5, 2.0], pipeline=p)
    try:
        p.call(lambda: 1)
        h = histogram(scrape(registry), "buttress_duration_seconds")[
            ("c", "buttress_pipeline_call_succeeded")
        ]
    finally:
        remove()
    assert {"le=0.5", "le=2.0", "le=+Inf"} == {k for k in h if k.startswith("le=")}


def test_not_a_registry_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        prometheus.install("localhost:9090")
    assert "registry" == err.value.parameter


def test_missing_library_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingExtra) as err:
        prometheus.install(CollectorRegistry())
    assert "buttress[telemetry]" in str(err.value)
    assert "prometheus_client" in str(err.value)


def sli_values(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.labels["sli"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == prometheus.SLI_EVENTS_TOTAL
    }


def test_sli_counter_counts_good_and_bad_and_starts_at_zero() -> None:
    registry = CollectorRegistry()
    counter = prometheus.SLICounter(["checkout", "browse"], registry=registry)
    try:
        # Created at 0 before any event: Prometheus sees the first event as an increase.
        assert {
            ("checkout", "good"): 0.0,
            ("checkout", "bad"): 0.0,
            ("browse", "good"): 0.0,
            ("browse", "bad"): 0.0,
        } == sli_values(scrape(registry))
        counter.record("checkout", 1, 1)
        counter.record("checkout", 0, 1)
        counter.record("checkout", 7, 10)
        counter.record("search", 2, 2)  # an SLI not declared up front
        values = sli_values(scrape(registry))
        with pytest.raises(ConfigError) as err:
            counter.record("checkout", 3, 2)
        assert "good" == err.value.parameter
        with pytest.raises(ConfigError):
            prometheus.SLICounter(registry=registry)  # a second one would count twice
    finally:
        counter.unregister()
        counter.unregister()  # idempotent
    assert {
        ("checkout", "good"): 8.0,
        ("checkout", "bad"): 4.0,
        ("browse", "good"): 0.0,
        ("browse", "bad"): 0.0,
        ("search", "good"): 2.0,
        ("search", "bad"): 0.0,
    } == values
    assert "" == scrape(registry)


def test_sli_queries_read_the_counter() -> None:
    good, total = prometheus.sli_queries("checkout", 'job="api"')
    selector = 'buttress_sli_events_total{sli="checkout",job="api"'
    assert f'sum(rate({selector},outcome="good"}}[{{{{.window}}}}]))' == good
    assert f"sum(rate({selector}}}[{{{{.window}}}}]))" == total
    assert "{sli=" in prometheus.sli_queries("checkout")[1]
