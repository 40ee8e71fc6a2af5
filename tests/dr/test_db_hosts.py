"""buttress.db per host, on real clusters: breakers, choice of standby, events, metrics."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from buttress.db import ReadPool, WritePool
from buttress.db.events import HostBreakerOpened
from buttress.db.hosts import HOST_BREAKER, READ_OUTLIER_DETECTION, HostBreaker, endpoint_pool
from buttress.errors import ConfigError
from buttress.events import Event, add_listener
from buttress.telemetry import prometheus
from buttress.testing import FakeClock

from .pg import Cluster, clusters, wait_until
from .test_db_failover import PromotionProbe


def _port(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT inet_server_port()").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def black_hole(port: int) -> Iterator[None]:
    """Listen on ``port`` and never accept: a connection attempt hangs until libpq's
    ``connect_timeout``, as it does when a host vanished from the network (a killed server on
    loopback refuses at once, which would hide the cost the breaker saves)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        yield


def _reads_until(pool: ReadPool, done: Callable[[float], bool]) -> list[tuple[float, float, int]]:
    """(start, latency, port that served) of every read made until ``done(now)``."""
    out = []
    while not done(time.monotonic()):
        t0 = time.monotonic()
        port = pool.read(_port)
        out.append((t0, time.monotonic() - t0, port))
        time.sleep(0.01)
    return out


def _counts(registry: CollectorRegistry, policy: str, *kinds: str) -> dict[str, float]:
    """``buttress_events_total`` of each ``buttress_db_pool_<kind>`` (read before the listener is
    removed: removing it unregisters the metrics)."""
    out = {}
    for kind in kinds:
        labels = {"pipeline": "app", "policy": policy, "event": f"buttress_db_pool_{kind}"}
        out[kind] = registry.get_sample_value("buttress_events_total", labels) or 0.0
    return out


@pytest.mark.serial
def test_a_dead_standby_opens_its_breaker_and_reads_stop_paying_its_connect_timeout() -> None:
    with clusters() as made:
        primary = made.primary()
        primary.start()
        dead, alive = made.standby_of(primary, "standby_a"), made.standby_of(primary, "standby_b")
        dead.start()
        alive.start()
        dsn = (
            f"host=127.0.0.1,127.0.0.1 port={dead.port},{alive.port} user=postgres dbname=postgres"
        )
        registry = CollectorRegistry()
        remove = prometheus.install(registry)
        opened: list[HostBreakerOpened] = []
        stop_listening = add_listener(
            lambda e: opened.append(e) if isinstance(e, HostBreakerOpened) else None
        )
        try:
            with ReadPool(dsn, max_lag=5, check_interval=0.2, name="app") as reads:
                wait_until(
                    lambda: {reads.read(_port) for _ in range(20)} == {dead.port, alive.port}
                )
                dead.stop("immediate")
                with black_hole(dead.port):
                    # Until 4 s after it opened (or 20 s: the assertions below then fail).
                    end = time.monotonic() + 20
                    served = _reads_until(
                        reads, lambda now: now > min(end, opened[0].time + 4 if opened else end)
                    )
                    with ReadPool(dsn, max_lag=5, check_interval=0.2, breaker=None) as bare:
                        end = time.monotonic() + 3
                        unguarded = _reads_until(bare, lambda now: now > end)
            counted = _counts(registry, "read_pool", "breaker_opened", "host_health_changed")
        finally:
            stop_listening()
            remove()
        assert {port for _, _, port in served} == {alive.port}  # no read failed, none on the dead
        assert {e.host for e in opened} == {f"127.0.0.1:{dead.port}"}
        at = opened[0].time
        first_break = HOST_BREAKER.break_function()(1)
        after = [lat for t0, lat, _ in served if t0 > at]
        slow_after = [lat for lat in after if lat > 1.0]
        during_break = [lat for t0, lat, _ in served if at < t0 < at + first_break - 0.05]
        slow_before = [lat for t0, lat, _ in served if t0 <= at and lat > 1.0]
        assert len(during_break) > 20
        assert max(during_break) < 0.5  # no read waited for the dead host's connect timeout
        assert len(slow_before) <= HOST_BREAKER.minimum_calls  # the failures that opened it
        # Over 4 s: one probe at the end of the 1 s break (it fails: the next break is 2 s).
        assert len(slow_after) <= 2 and len(after) > 100
        slow_unguarded = [lat for _, lat, _ in unguarded if lat > 1.0]
        assert len(slow_unguarded) >= len(unguarded) - 1  # without it nearly every read pays
        fast_after = sorted(lat for lat in after if lat <= 1.0)
        print(
            f"breaker opened {at - served[0][0]:.2f} s after the kill, "
            f"{len(slow_before)} reads paid a connect timeout before; in the 4 s after: "
            f"{len(after)} reads, {len(slow_after)} paid it (the half-open probe), the others "
            f"max {fast_after[-1] * 1000:.1f} ms; without a breaker: {len(slow_unguarded)} of "
            f"{len(unguarded)} reads over 1 s "
            f"(median {sorted(lat for _, lat, _ in unguarded)[len(unguarded) // 2]:.2f} s)"
        )
        assert counted["breaker_opened"] == len(opened)  # through the Prometheus listener
        assert counted["host_health_changed"] >= 1.0


def _kinds(events: list[Event], policy: str) -> list[tuple[str, str]]:
    out = []
    for e in events:
        if e.policy_type == "db_pool" and e.pipeline == "app" and e.policy == policy:
            where = getattr(e, "host", None) or getattr(e, "primary", "")
            out.append((e.kind, where))
    return out


@pytest.mark.serial
def test_a_demotion_and_a_promotion_are_reported_in_order_and_counted() -> None:
    """The primary is stopped and comes back as a standby; the pool's probes open its breaker,
    half-open it, find it demoted; the standby is promoted and becomes the primary."""
    with clusters() as made:
        old = made.primary()
        old.start()
        with psycopg.connect(old.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
        new = made.standby_of(old)
        new.start()
        dsn = f"host=127.0.0.1,127.0.0.1 port={old.port},{new.port} user=postgres dbname=postgres"
        registry = CollectorRegistry()
        remove = prometheus.install(registry)
        seen: list[Event] = []
        stop_listening = add_listener(seen.append)
        breaker = HOST_BREAKER.replace(break_duration=1.0)
        try:
            with (
                WritePool(dsn, min_size=1, check_interval=0, breaker=breaker, name="app") as w,
                ReadPool(f"{new.dsn}", check_interval=0, fallback=w, name="app") as r,
            ):
                w.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
                wait_until(lambda: r.read(_port) == new.port)
                old.stop("fast")
                writer = threading.Thread(
                    target=w.transaction, args=(lambda c: c.execute("INSERT INTO t VALUES (2)"),)
                )
                writer.start()
                wait_until(lambda: ("breaker_opened", _label(old)) in _kinds(seen, "write_pool"))
                _restart_as_standby(old)
                wait_until(lambda: ("demoted", _label(old)) in _kinds(seen, "write_pool"))
                new.promote()
                writer.join(30)
                assert w.primary == ("127.0.0.1", str(new.port))
                assert r.read(_port) == new.port  # through the write pool: no standby left
            writes_counted = _counts(registry, "write_pool", "demoted", "primary_lost")
            reads_counted = _counts(registry, "read_pool", "read_fell_back")
            labels = {"pipeline": "app", "policy": "write_pool"}
            moves = registry.get_sample_value(
                "buttress_duration_seconds_count",
                {**labels, "event": "buttress_db_pool_primary_found"},
            )
        finally:
            stop_listening()
            remove()
        writes = _kinds(seen, "write_pool")
        a, b = _label(old), _label(new)
        assert writes[:2] == [("primary_found", a), ("primary_lost", a)]
        assert writes[-3:] == [("breaker_closed", a), ("demoted", a), ("primary_found", b)]
        # Open, half-open (the probe found it still down: open again) ... until a probe reached it.
        cycle = writes[2:-3]
        assert cycle == [("breaker_opened", a), ("breaker_half_opened", a)] * (len(cycle) // 2)
        assert len(cycle) >= 2
        found = [e for e in seen if e.kind == "primary_found" and e.pipeline == "app"]
        assert getattr(found[-1], "previous", None) == a
        assert _kinds(seen, "read_pool")[-2:] == [
            ("host_health_changed", b),
            ("read_fell_back", ""),
        ]
        assert writes_counted == {"demoted": 1.0, "primary_lost": 1.0}
        assert reads_counted == {"read_fell_back": 1.0}
        # The time each move took, in the duration histogram: the opening and the failover.
        assert moves == 2.0


def _label(c: Cluster) -> str:
    return f"127.0.0.1:{c.port}"


def _restart_as_standby(c: Cluster) -> None:
    (c.data / "standby.signal").touch()
    c.start()


def test_host_breaker_skips_a_failing_host_for_its_break_and_its_events_name_it() -> None:
    """The per-host breaker on a fake clock: 2 failures in 3 attempts open it (the pool's
    connections to the host are dropped then), the break skips the host, one probe closes it; the
    endpoint pool's health changes and ejections come out as ``buttress_db_pool_*`` events."""
    clock = FakeClock()
    dropped: list[str] = []
    breaker = HostBreaker(
        "db1:5432",
        HOST_BREAKER,
        pool_name="app",
        policy="read_pool",
        clock=clock,
        on_open=lambda: dropped.append("db1"),
    )
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        for connected in (True, False, False):
            permit = breaker.permit()
            assert permit is not None
            breaker.record(permit, connected, clock.monotonic())
        assert breaker.is_open and dropped == ["db1"]
        clock.advance(HOST_BREAKER.break_function()(1) - 0.01)
        assert breaker.permit() is None  # skipped, no attempt
        clock.advance(0.02)
        probe = breaker.permit()
        assert probe is not None and breaker.permit() is None  # one probe at a time
        breaker.record(probe, True, clock.monotonic())
        pool = endpoint_pool(
            [("db1", "5432"), ("db2", "5432")],
            outlier_detection=READ_OUTLIER_DETECTION,
            selection="least_request",
            pool_name="app",
            clock=clock,
        )
        db2 = pool.endpoint("db2:5432")
        pool.report_probe(db2, "fail", "lag 3 s")
        for _ in range(READ_OUTLIER_DETECTION.consecutive_5xx):
            pool.release(pool.acquire(exclude=[db2]), "local_failure")
        clock.advance(READ_OUTLIER_DETECTION.base_ejection_time)
        pool.acquire()
    finally:
        remove()
    got = [(e.name, getattr(e, "host", "")) for e in seen if e.policy_type == "db_pool"]
    assert got == [
        ("buttress_db_pool_breaker_opened", "db1:5432"),
        ("buttress_db_pool_breaker_half_opened", "db1:5432"),
        ("buttress_db_pool_breaker_closed", "db1:5432"),
        ("buttress_db_pool_host_health_changed", "db2:5432"),
        ("buttress_db_pool_host_ejected", "db1:5432"),
        ("buttress_db_pool_host_returned", "db1:5432"),
    ]
    assert not any(e.policy_type == "endpoint_pool" for e in seen)  # translated, not doubled


def test_bad_per_host_options_name_the_parameter() -> None:
    dsn = "host=127.0.0.1,127.0.0.1 port=1,2 user=postgres"
    with pytest.raises(ConfigError, match="invalid breaker='often'"):
        ReadPool(dsn, breaker="often")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"invalid connect_timeout=0\.5: must be whole seconds"):
        WritePool(dsn, connect_timeout=0.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="selection"):
        ReadPool(dsn, selection="fastest")
    with pytest.raises(ConfigError, match=r"invalid max_size=1: must be >= min_size \(2\)"):
        WritePool(dsn, min_size=2, max_size=1)


@pytest.mark.serial
def test_a_hung_old_primary_listed_first_is_skipped_when_the_standby_is_promoted() -> None:
    """The primary, first in the DSN, vanishes (its port hangs): each round of looking for the
    primary costs its 2 s connect timeout until the breaker opens; then the promoted standby is
    found in the next round."""
    with clusters() as made:
        old = made.primary()
        old.start()
        new = made.standby_of(old)
        new.start()
        dsn = f"host=127.0.0.1,127.0.0.1 port={old.port},{new.port} user=postgres dbname=postgres"
        opened: list[HostBreakerOpened] = []
        stop_listening = add_listener(
            lambda e: opened.append(e) if isinstance(e, HostBreakerOpened) else None
        )
        # A break long enough to span the promotion: the default's first is 1 s.
        breaker = HOST_BREAKER.replace(break_duration=30.0)
        done: list[float] = []
        try:
            with WritePool(dsn, min_size=1, check_interval=0, breaker=breaker, name="app") as w:
                old.stop("immediate")
                with black_hole(old.port):
                    writer = threading.Thread(
                        target=lambda: (w.transaction(_port), done.append(time.monotonic()))
                    )
                    started = time.monotonic()
                    writer.start()
                    wait_until(lambda: bool(opened), timeout=20)
                    probe = PromotionProbe(new)
                    new.promote()
                    accepting = probe.wait()
                    writer.join(10)
        finally:
            stop_listening()
        assert [e.host for e in opened] == [_label(old)]
        assert w.primary == ("127.0.0.1", str(new.port))
        resumed = done[0] - accepting
        print(
            f"the hung host's breaker opened {opened[0].time - started:.1f} s after it vanished; "
            f"the promoted standby took writes {resumed:.3f} s after it accepted them"
        )
        assert resumed < 0.5  # no round paid the hung host's 2 s connect timeout
