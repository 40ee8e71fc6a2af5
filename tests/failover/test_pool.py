"""Endpoint pools on a fake clock: selection, failover between priorities, ejection and return,
panic, active health state, events, bad input."""

from __future__ import annotations

import collections
import random
from typing import Any

import pytest

from buttress.errors import ConfigError
from buttress.events import Event
from buttress.failover import (
    EjectionSkipped,
    Endpoint,
    EndpointEjected,
    EndpointHealthChanged,
    EndpointPool,
    EndpointReturned,
    HealthCheck,
    LeastRequest,
    OutlierDetection,
    PanicChanged,
    PriorityLoadChanged,
    WeightedRoundRobin,
)
from buttress.testing import FakeClock


def make_pool(
    endpoints: list[Any], clock: FakeClock, **kw: Any
) -> tuple[EndpointPool, list[Event]]:
    pool = EndpointPool(endpoints, clock=clock, rng=random.Random(7), **kw)
    seen: list[Event] = []
    pool.emitter.add_listener(seen.append)
    return pool, seen


def counts(pool: EndpointPool, n: int) -> collections.Counter[str]:
    c: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        ep = pool.acquire()
        pool.release(ep, None)
        c[ep.url] += 1
    return c


def test_smooth_weighted_round_robin_sequence(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(
        [
            {"url": "http://a", "weight": 5},
            {"url": "http://b", "weight": 1},
            {"url": "http://c", "weight": 1},
        ],
        fake_clock,
        selection="round_robin",
    )
    picks = []
    for _ in range(14):
        ep = pool.acquire()
        pool.release(ep)
        picks.append(ep.url[-1])
    assert list("aabacaa" * 2) == picks


def test_least_request_prefers_the_idle_endpoint(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(["http://a", "http://b"], fake_clock)
    busy = pool.endpoint("http://a")
    held = []
    # Hold 3 requests on a: with two endpoints, every pair drawn that contains b picks b.
    while sum(1 for e in held if e == busy) < 3:
        e = pool.acquire()
        held.append(e)
        if e != busy:
            pool.release(e)
            held.pop()
    c = counts(pool, 400)
    # P(a) = P(both draws are a) = 1/4 with uniform draws.
    assert 60 < c["http://a"] < 140
    assert 260 < c["http://b"] < 340


def test_least_request_weights_bias_the_draw(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(
        [{"url": "http://a", "weight": 3}, {"url": "http://b", "weight": 1}], fake_clock
    )
    c = counts(pool, 2000)
    # Idle pool: the first draw wins ties, so the share is the weight share, 3:1.
    assert 0.7 < c["http://a"] / 2000 < 0.8


def test_consecutive_failures_fail_over_to_the_next_priority_and_back(
    fake_clock: FakeClock,
) -> None:
    pool, seen = make_pool(
        [{"url": "http://primary", "priority": 0}, {"url": "http://backup", "priority": 1}],
        fake_clock,
    )
    primary = pool.endpoint("http://primary")
    assert {"http://primary": 100} == counts(pool, 100)
    for _ in range(5):
        ep = pool.acquire()
        assert primary == ep
        pool.release(ep, "local_failure")
    assert not pool.is_healthy(primary)
    assert {"http://backup": 100} == counts(pool, 100)
    ejected = [e for e in seen if isinstance(e, EndpointEjected)]
    assert [("http://primary", "consecutive_5xx", 30.0, 1)] == [
        (e.endpoint, e.reason, e.duration, e.times) for e in ejected
    ]
    failovers = [e for e in seen if isinstance(e, PriorityLoadChanged)]
    assert [((0, 100), (100, 0))] == [(e.loads, e.previous) for e in failovers]
    assert "buttress_endpoint_pool_failover" == failovers[0].name
    fake_clock.advance(30.0)
    assert {"http://primary": 50} == counts(pool, 50)
    assert [e.endpoint for e in seen if isinstance(e, EndpointReturned)] == ["http://primary"]
    assert ((100, 0), (0, 100)) == tuple(
        (e.loads, e.previous) for e in seen if isinstance(e, PriorityLoadChanged)
    )[-1]


def test_retry_excludes_tried_endpoints_even_across_priorities(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(
        [{"url": "http://p", "priority": 0}, {"url": "http://b", "priority": 1}], fake_clock
    )
    first = pool.acquire()
    second = pool.acquire(exclude=[first])
    assert ("http://p", "http://b") == (first.url, second.url)
    # All tried: it still answers (the level ignoring the exclusion).
    third = pool.acquire(exclude=[first, second])
    assert "http://p" == third.url


def test_panic_routes_to_all_endpoints_when_most_fail(fake_clock: FakeClock) -> None:
    urls = [f"http://h{i}" for i in range(4)]
    pool, seen = make_pool(urls, fake_clock, outlier_detection=None, health_check=HealthCheck())
    for u in urls[:3]:  # 3 of 4 down: 25% healthy < 50%
        pool.report_probe(pool.endpoint(u), "fail")
    load = pool.load
    assert (True,) == load.panic
    c = counts(pool, 400)
    assert set(urls) == set(c)  # the unhealthy ones get traffic too
    assert [((True,), (False,))] == [
        (e.panic, e.previous) for e in seen if isinstance(e, PanicChanged)
    ]
    # Without panic routing all traffic would crush the one survivor.
    pool2, _ = make_pool(urls, fake_clock, outlier_detection=None, health_check=HealthCheck())
    for u in urls[:2]:
        pool2.report_probe(pool2.endpoint(u), "fail")
    assert {"http://h2", "http://h3"} == set(counts(pool2, 200))


def test_active_thresholds(fake_clock: FakeClock) -> None:
    check = HealthCheck(healthy_threshold=2, unhealthy_threshold=3)
    pool, seen = make_pool(["http://a", "http://b"], fake_clock, health_check=check)
    a = pool.endpoint("http://a")
    pool.report_probe(a, "error")
    pool.report_probe(a, "error")
    assert pool.is_healthy(a)
    pool.report_probe(a, "error")
    assert not pool.is_healthy(a)
    pool.report_probe(a, "pass")
    assert not pool.is_healthy(a)
    pool.report_probe(a, "pass")
    assert pool.is_healthy(a)
    pool.report_probe(a, "fail", "status 500")  # a definite bad answer: at once
    assert not pool.is_healthy(a)
    changes = [(e.healthy, e.detail) for e in seen if isinstance(e, EndpointHealthChanged)]
    assert [(False, "error"), (True, "pass"), (False, "status 500")] == changes


def test_snapshot_reports_every_endpoint(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(["http://a", "http://b"], fake_clock)
    a = pool.acquire()
    snap = pool.snapshot()
    assert [1, 0] == sorted((s.active for s in snap.endpoints), reverse=True)
    assert all(s.healthy for s in snap.endpoints)
    pool.release(a)
    assert [0, 0] == [s.active for s in pool.snapshot().endpoints]


def test_ejection_cap_event(fake_clock: FakeClock) -> None:
    pool, seen = make_pool(
        ["http://a", "http://b", "http://c"],
        fake_clock,
        outlier_detection=OutlierDetection(always_eject_one=False),
    )
    a = pool.endpoint("http://a")
    pool.acquire()
    for _ in range(5):
        pool.release(a, "server_error")
    assert [("http://a", "cap", "consecutive_5xx")] == [
        (e.endpoint, e.reason, e.detector) for e in seen if isinstance(e, EjectionSkipped)
    ]


@pytest.mark.parametrize(
    ("endpoints", "parameter"),
    [
        (["not a url"], "endpoints[0].url"),
        (["http://ok", "ftp://x"], "endpoints[1].url"),
        (["http://host:99999"], "endpoints[0].url"),
        (["http://"], "endpoints[0].url"),
        (["http://a?x=1"], "endpoints[0].url"),
        ([{"url": "http://a", "priority": -1}], "endpoints[0].priority"),
        ([{"url": "http://a", "weight": 0}], "endpoints[0].weight"),
        ([{"uri": "http://a"}], "endpoints[0]"),
        (["http://a", "http://a/"], "endpoints[1].url"),
        ([], "endpoints"),
        ("http://a", "endpoints"),
    ],
)
def test_bad_endpoints_are_refused_at_build_time(endpoints: Any, parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        EndpointPool(endpoints)
    assert parameter == e.value.parameter


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"selection": "fastest"}, "selection"),
        ({"panic_threshold": 120}, "panic_threshold"),
        ({"overprovisioning_factor": 0.9}, "overprovisioning_factor"),
        ({"outlier_detection": {"interval": 1}}, "outlier_detection"),
        ({"health_check": 5}, "health_check"),
    ],
)
def test_bad_pool_settings(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        EndpointPool(["http://a"], **kwargs)
    assert parameter == e.value.parameter


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"interval": 0}, "interval"),
        ({"timeout": 10, "interval": 5}, "timeout"),
        ({"jitter": 2}, "jitter"),
        ({"healthy_threshold": 0}, "healthy_threshold"),
        ({"unhealthy_threshold": 1.5}, "unhealthy_threshold"),
        ({"path": "healthz"}, "path"),
        ({"kind": "udp"}, "kind"),
        ({"expected_statuses": [700]}, "expected_statuses"),
    ],
)
def test_bad_health_check_settings(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        HealthCheck(**kwargs)
    assert parameter == e.value.parameter


def test_release_checks_its_input(fake_clock: FakeClock) -> None:
    pool, _ = make_pool(["http://a"], fake_clock)
    ep = pool.acquire()
    with pytest.raises(ConfigError) as e:
        pool.release(ep, "meh")
    assert "outcome" == e.value.parameter
    with pytest.raises(ConfigError):
        pool.release(Endpoint("http://elsewhere"), "success")


def test_selectors_validate() -> None:
    with pytest.raises(ConfigError):
        LeastRequest(1)
    assert "WeightedRoundRobin()" == repr(WeightedRoundRobin())
