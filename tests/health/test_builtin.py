"""Built-in checks against real things: sockets, uvicorn, redis-server, PostgreSQL, SQLite, the
file system, a blocked event loop, circuit breakers."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pybreaker
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from buttress.errors import ConfigError
from buttress.health import (
    HealthRegistry,
    Status,
    breaker_check,
    disk_space_check,
    event_loop_lag_check,
    http_check,
    postgres_check,
    redis_check,
    sql_check,
    sqlite_check,
    tcp_check,
)
from buttress.policies.breaker import CircuitBreaker
from buttress.ports import free_port

from .conftest import PostgresServer, RedisServer
from .servers import UvicornThread, assert_health_json

# --- TCP ------------------------------------------------------------------------------------------


async def test_tcp_check_passes_on_a_listener_and_fails_on_a_closed_port() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        ok = await tcp_check("127.0.0.1", listener.getsockname()[1]).run()
    finally:
        listener.close()
    assert Status.PASS == ok.status
    assert "ms" == ok.observed_unit
    assert isinstance(ok.observed_value, float) and ok.observed_value >= 0
    down = await tcp_check("127.0.0.1", free_port(), timeout=1.0).run()
    assert Status.FAIL == down.status
    assert "check raised ConnectionRefusedError" == down.output


def test_tcp_check_bad_input() -> None:
    with pytest.raises(ConfigError) as e:
        tcp_check("127.0.0.1", 70000)
    assert "port" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        tcp_check("", 80)
    assert "host" == e.value.parameter


# --- HTTP -----------------------------------------------------------------------------------------


async def test_http_check_against_a_real_server() -> None:
    async def ok(request: Request) -> Response:
        return Response("fine")

    async def broken(request: Request) -> Response:
        return Response("no", status_code=503)

    async def degraded(request: Request) -> Response:
        body = json.dumps({"status": "warn"})
        return Response(body, media_type="application/health+json")

    app = Starlette(
        routes=[Route("/ok", ok), Route("/broken", broken), Route("/degraded", degraded)]
    )
    with UvicornThread(app) as server:
        passed = await http_check(f"{server.url}/ok").run()
        failed = await http_check(f"{server.url}/broken", name="upstream").run()
        warned = await http_check(f"{server.url}/degraded").run()
        teapot = await http_check(f"{server.url}/broken", expect=[503]).run()
    assert Status.PASS == passed.status
    assert "ms" == passed.observed_unit
    assert (Status.FAIL, "HTTP 503") == (failed.status, failed.output)
    assert (Status.WARN, "dependency reports warn") == (warned.status, warned.output)
    assert Status.PASS == teapot.status


async def test_http_check_refused_connection_does_not_reveal_the_url() -> None:
    reg = HealthRegistry()
    reg.add(http_check(f"http://user:pw-secret@127.0.0.1:{free_port()}/x", timeout=0.8))
    status, body = await reg.respond()
    assert 503 == status
    assert b"pw-secret" not in body
    assert b"127.0.0.1" not in body
    assert (
        "check raised ConnectError" == json.loads(body)["checks"]["http:responseTime"][0]["output"]
    )


def test_http_check_bad_url() -> None:
    for url in ("ftp://x/", "not a url", "http://", "http://h:99999/", "http://h:0/"):
        with pytest.raises(ConfigError) as e:
            http_check(url)
        assert "url" == e.value.parameter


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://user:hunter2@[::1/x", "https://user:hunter2@h:port/"]
)
def test_http_check_url_that_does_not_parse_is_a_config_error(url: str) -> None:
    """urlsplit raises a bare ValueError for an unclosed IPv6 bracket: it must come out as a
    ConfigError for ``url``, with the password never shown."""
    with pytest.raises(ConfigError) as e:
        http_check(url)
    assert "url" == e.value.parameter
    assert "hunter2" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        http_check("http://h/", expect=[99])
    assert "expect" == e.value.parameter


# --- Redis ----------------------------------------------------------------------------------------


async def test_redis_ping_against_a_real_redis(redis_server: RedisServer) -> None:
    report = await redis_check(redis_server.url).run()
    assert Status.PASS == report.status
    assert "ms" == report.observed_unit
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server.url)
    try:
        shared = await redis_check(client, name="cache").run()
    finally:
        await client.aclose()
    assert Status.PASS == shared.status


async def test_redis_down_fails_without_revealing_the_url() -> None:
    reg = HealthRegistry()
    reg.add(redis_check(f"redis://:topsecret@127.0.0.1:{free_port()}/0", timeout=0.8))
    status, body = await reg.respond()
    assert 503 == status
    doc = json.loads(body)
    assert "datastore" == doc["checks"]["redis:ping"][0]["componentType"]
    assert "check raised ConnectionError" == doc["checks"]["redis:ping"][0]["output"]
    assert b"topsecret" not in body


def test_redis_check_bad_target() -> None:
    with pytest.raises(ConfigError) as e:
        redis_check("http://:pw@host/")
    assert "target" == e.value.parameter
    assert "pw" not in str(e.value)
    with pytest.raises(ConfigError):
        redis_check(42)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://:hunter2@db.internal:notaport/0", "port"),
        ("redis://:hunter2@db.internal:70000/0", "port"),
        ("redis://:hunter2@db.internal/notadb", "database"),
        ("redis://:hunter2@db.internal/0?db=x", "database"),
        ("rediss://:hunter2@[::1/0", "parse"),
        ("unix://", "path"),
        ("unix://:hunter2@", "path"),
        ("unix:///run/redis.sock?db=one&password=hunter2", "database"),
    ],
)
def test_redis_check_url_is_read_at_build_time(url: str, reason: str) -> None:
    """Every part redis-py would read at the first probe (port, db, socket path) is read when the
    check is built; the error names the part and never shows the password."""
    with pytest.raises(ConfigError) as e:
        redis_check(url)
    assert "target" == e.value.parameter
    assert reason in e.value.reason
    assert "hunter2" not in str(e.value)


# --- SQL ------------------------------------------------------------------------------------------


async def test_postgres_query_against_a_real_server(postgres_server: PostgresServer) -> None:
    ok = await postgres_check(postgres_server.dsn(), query="SELECT count(*) FROM pg_class").run()
    assert Status.PASS == ok.status, ok.output
    assert "ms" == ok.observed_unit
    via_url = await sql_check(postgres_server.dsn()).run()
    assert Status.PASS == via_url.status


async def test_postgres_wrong_password_fails_without_revealing_it(
    postgres_server: PostgresServer,
) -> None:
    reg = HealthRegistry()
    reg.add(postgres_check(postgres_server.dsn("wrong-pw-xyz"), name="db"))
    status, body = await reg.respond()
    assert 503 == status
    assert b"wrong-pw-xyz" not in body
    assert b"postgresql://" not in body
    assert b"password authentication" not in body  # the server's message stays in the process
    doc = json.loads(body)
    assert "check raised OperationalError" == doc["checks"]["db:query"][0]["output"]
    report = await reg.evaluate()
    assert "password authentication failed" in str(report.entries[0].report.error)


async def test_postgres_bad_query_fails(postgres_server: PostgresServer) -> None:
    report = await postgres_check(postgres_server.dsn(), query="SELECT * FROM missing").run()
    assert (Status.FAIL, "check raised UndefinedTable") == (report.status, report.output)


def test_postgres_bad_dsn_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as e:
        postgres_check("host=x password=leaky = =")
    assert "dsn" == e.value.parameter
    assert "leaky" not in str(e.value)


async def test_sqlite_check(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    ok = await sqlite_check(db, query="SELECT count(*) FROM t").run()
    assert Status.PASS == ok.status
    via_url = await sql_check(f"sqlite:///{db}").run()
    assert Status.PASS == via_url.status
    missing = tmp_path / "missing.db"
    gone = await sqlite_check(missing).run()
    assert (Status.FAIL, "check raised OperationalError") == (gone.status, gone.output)
    assert not missing.exists()  # a health check never creates the database
    with pytest.raises(ConfigError) as e:
        sql_check("mysql://h/db")
    assert "url" == e.value.parameter


# --- disk -----------------------------------------------------------------------------------------


async def test_disk_space_thresholds_against_the_real_file_system(tmp_path: Path) -> None:
    u = shutil.disk_usage(tmp_path)
    free = u.free / u.total
    used_pct = round(100 * u.used / u.total, 2)
    ok = await disk_space_check(tmp_path, warn_below=free / 4, fail_below=free / 8).run()
    assert (Status.PASS, "percent") == (ok.status, ok.observed_unit)
    assert used_pct == pytest.approx(ok.observed_value, abs=0.5)
    warn = await disk_space_check(tmp_path, warn_below=min(0.999, free + 0.05), fail_below=0).run()
    assert Status.WARN == warn.status
    fail = await disk_space_check(tmp_path, warn_below=0.999, fail_below=0.999).run()
    assert Status.FAIL == fail.status
    too_few_bytes = await disk_space_check(
        tmp_path, warn_below=0, fail_below=0, min_free_bytes=u.total * 2
    ).run()
    assert Status.FAIL == too_few_bytes.status
    assert too_few_bytes.output is not None and "bytes" in too_few_bytes.output


def test_disk_space_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        disk_space_check(tmp_path / "nope")
    assert "path" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        disk_space_check(tmp_path, warn_below=0.05, fail_below=0.1)
    assert "fail_below" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        disk_space_check(tmp_path, warn_below=1.5)
    assert "warn_below" == e.value.parameter


# --- event-loop lag -------------------------------------------------------------------------------


async def test_event_loop_lag_sees_a_blocked_loop() -> None:
    # thresholds well above what a busy shared machine causes by itself
    check = event_loop_lag_check(warn_after=0.15, fail_after=0.6, interval=0.01, ttl=0.0)
    first = await check.run()  # starts the monitor
    assert (Status.PASS, 0.0) == (first.status, first.observed_value)
    await asyncio.sleep(0.02)
    time.sleep(0.3)  # block the loop (on purpose)
    await asyncio.sleep(0.03)
    warned = await check.run()
    assert Status.WARN == warned.status
    assert isinstance(warned.observed_value, float) and 280 <= warned.observed_value
    time.sleep(0.7)
    await asyncio.sleep(0.03)
    failed = await check.run()
    assert Status.FAIL == failed.status
    assert "ms" == failed.observed_unit
    assert isinstance(failed.observed_value, float) and 680 <= failed.observed_value
    await asyncio.sleep(0.03)
    calm = await check.run()  # the peak is per reading: reset after each run
    assert isinstance(calm.observed_value, float) and calm.observed_value < 600


def test_event_loop_lag_bad_input() -> None:
    with pytest.raises(ConfigError) as e:
        event_loop_lag_check(warn_after=2, fail_after=1)
    assert "warn_after" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        event_loop_lag_check(interval=0)
    assert "interval" == e.value.parameter


# --- circuit breakers -----------------------------------------------------------------------------


async def test_real_circuit_breaker_is_non_critical() -> None:
    breaker = CircuitBreaker(name="payments", minimum_calls=2, failure_rate_threshold=0.5)
    check = breaker_check(breaker, ttl=0.0)
    assert ("payments:state", False) == (check.key, check.critical)
    reg = HealthRegistry()
    reg.add(check)
    assert Status.PASS == (await reg.evaluate()).status

    @breaker
    def fail() -> None:
        raise OSError("dependency down")

    for _ in range(2):
        with pytest.raises(OSError):
            fail()
    assert "open" == breaker.state.value
    report = await reg.evaluate()
    assert Status.WARN == report.status  # an open breaker must not fail readiness
    assert 200 == report.http_status
    entry = report.entries[0]
    assert (Status.FAIL, "open") == (entry.report.status, entry.report.observed_value)
    status, body = await reg.respond()
    doc = assert_health_json(
        status, {"content-type": "application/health+json", "cache-control": "no-cache"}, body
    )
    assert "warning: payments:state (non-critical, failing)" == doc["output"]


async def test_duck_typed_breakers() -> None:
    pb = pybreaker.CircuitBreaker(fail_max=1, name="legacy")
    check = breaker_check(pb, ttl=0.0)
    assert "legacy:state" == check.key
    assert (Status.PASS, "closed") == ((r := await check.run()).status, r.observed_value)
    pb.open()
    assert (Status.FAIL, "open") == ((r := await check.run()).status, r.observed_value)
    pb.half_open()
    assert (Status.WARN, "half_open") == ((r := await check.run()).status, r.observed_value)

    class Homemade:
        state: Any = "HALF-OPEN"

    own = breaker_check(Homemade(), name="own", ttl=0.0)
    assert (Status.WARN, "half_open") == ((r := await own.run()).status, r.observed_value)
    Homemade.state = "rebooting"
    assert (Status.WARN, "unknown breaker state") == ((r := await own.run()).status, r.output)
    critical = breaker_check(Homemade(), name="strict", critical=True)
    assert critical.critical is True


def test_breaker_without_state_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        breaker_check(object())
    assert "breaker" == e.value.parameter
