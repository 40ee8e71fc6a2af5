"""IdempotencyMiddleware with the SQLite store, served by a real uvicorn, called by a real httpx
client: replay, 409 for a racing duplicate (one execution), 422, 400s, expiry, 5xx released."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _servers import UvicornThread
from buttress.errors import ConfigError
from buttress.integrations.idempotency import IdempotencyMiddleware, parse_key
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore

from .idem_app import orders_app, runs


class WallClock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = WallClock()
    exec_db = str(tmp_path / "runs.db")
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    app = IdempotencyMiddleware(orders_app(exec_db), store, ttl=100, lock_timeout=30, now=clock)
    with UvicornThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, exec_db, clock, server.url
    store.close()


def test_a_repeat_returns_the_stored_response_and_runs_nothing(served) -> None:  # type: ignore[no-untyped-def]
    client, exec_db, _, _ = served
    first = client.post("/orders", json={"sku": "a"}, headers={"Idempotency-Key": '"k-1"'})
    again = client.post("/orders", json={"sku": "a"}, headers={"Idempotency-Key": '"k-1"'})
    assert 201 == first.status_code == again.status_code
    assert first.content == again.content
    assert first.headers["x-run"] == again.headers["x-run"]
    assert "true" == again.headers["idempotent-replayed"]
    assert "idempotent-replayed" not in first.headers
    assert 1 == len(runs(exec_db))
    other = client.post("/orders", json={"sku": "a"}, headers={"Idempotency-Key": "k-2"})
    assert 201 == other.status_code and 2 == len(runs(exec_db))  # a bare key is a new key


def test_same_key_other_payload_is_422_and_missing_or_bad_keys_are_400(
    served, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    client, exec_db, _, _ = served
    client.post("/orders", json={"sku": "a"}, headers={"Idempotency-Key": '"k"'})
    reused = client.post("/orders", json={"sku": "b"}, headers={"Idempotency-Key": '"k"'})
    assert 422 == reused.status_code
    assert "application/problem+json" == reused.headers["content-type"]
    assert "Idempotency-Key is already used" == reused.json()["title"]
    other_path = client.post("/refunds", json={"sku": "a"}, headers={"Idempotency-Key": '"k"'})
    assert 422 == other_path.status_code  # the fingerprint covers the path too
    for bad in ['"unterminated', '"a\\x"', "with space", '"' + "x" * 256 + '"', "", '"é"']:
        r = client.post("/orders", json={}, headers={"Idempotency-Key": bad.encode("utf-8")})
        assert 400 == r.status_code, bad
        assert "Idempotency-Key is malformed" == r.json()["title"]
    two = client.post(
        "/orders", json={}, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    )
    assert 400 == two.status_code
    assert 1 == len(runs(exec_db))  # none of the refused requests ran
    assert 201 == client.post("/orders", json={}).status_code  # not required: no key, no check
    assert 201 == client.get("/orders", headers={"Idempotency-Key": '"k"'}).status_code


def test_a_required_key_that_is_missing_is_400(tmp_path: Path) -> None:
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    app = IdempotencyMiddleware(orders_app(str(tmp_path / "runs.db")), store, required=True)
    with UvicornThread(app) as server:
        r = httpx.post(f"{server.url}/orders", json={})
    assert 400 == r.status_code
    assert {"type", "title", "status", "detail"} == set(r.json())
    assert "Idempotency-Key is missing" == r.json()["title"]
    assert [] == runs(str(tmp_path / "runs.db"))


def test_concurrent_duplicates_run_once_and_the_racers_get_409(served) -> None:  # type: ignore[no-untyped-def]
    _, exec_db, _, url = served

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            first = asyncio.create_task(
                client.post(
                    "/orders?sleep=0.5", json={"n": 1}, headers={"Idempotency-Key": '"race"'}
                )
            )
            await asyncio.sleep(0.15)  # the first one is running now
            racers = [
                asyncio.create_task(
                    client.post(
                        "/orders?sleep=0.5", json={"n": 1}, headers={"Idempotency-Key": '"race"'}
                    )
                )
                for _ in range(6)
            ]
            return [await first, *await asyncio.gather(*racers)]

    first, *racers = asyncio.run(burst())
    assert 201 == first.status_code
    assert [409] * 6 == [r.status_code for r in racers]
    assert {"1"} == {r.headers["retry-after"] for r in racers}
    assert 1 == len(runs(exec_db))


def test_keys_expire_after_the_ttl(served) -> None:  # type: ignore[no-untyped-def]
    client, exec_db, clock, _ = served
    h = {"Idempotency-Key": '"exp"'}
    a = client.post("/orders", json={}, headers=h)
    clock.t += 99
    assert a.content == client.post("/orders", json={}, headers=h).content
    clock.t += 2  # past the 100 s ttl
    b = client.post("/orders", json={}, headers=h)
    assert "idempotent-replayed" not in b.headers
    assert 2 == len(runs(exec_db))


def test_server_errors_and_crashes_release_the_key(served) -> None:  # type: ignore[no-untyped-def]
    client, exec_db, _, _ = served
    h = {"Idempotency-Key": '"retry-me"'}
    assert 503 == client.post("/orders?status=503", json={}, headers=h).status_code
    assert 500 == client.post("/orders?raise=1", json={}, headers=h).status_code
    ok = client.post("/orders?status=503", json={}, headers=h)  # same payload and path: runs again
    assert 503 == ok.status_code and "idempotent-replayed" not in ok.headers
    assert 3 == len(runs(exec_db))


def test_a_dead_server_s_key_is_taken_over_after_the_lock(tmp_path: Path) -> None:
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")

    async def scenario() -> list[str]:
        got = [await store.begin("k", "fp", "t1", now=0, ttl=100, lock=10)]
        got.append(await store.begin("k", "fp", "t2", now=5, ttl=100, lock=10))
        got.append(await store.begin("k", "fp", "t3", now=11, ttl=100, lock=10))  # t1 died
        from buttress.integrations.idempotency_stores import StoredResponse

        late = await store.complete("k", "t1", StoredResponse(200, [], b"late"), now=12, ttl=100)
        got.append("t1 stored" if late else "t1 fenced")
        return [b.state if not isinstance(b, str) else b for b in got]

    assert ["new", "running", "new", "t1 fenced"] == asyncio.run(scenario())


def test_key_parsing_and_options() -> None:
    assert "abc" == parse_key(b'"abc"', 10)
    assert 'a"b\\c' == parse_key(b'"a\\"b\\\\c"', 10)
    assert "8e03978e-40d5-43e8-bc93-6894a57f9324" == parse_key(
        b'"8e03978e-40d5-43e8-bc93-6894a57f9324"', 255
    )
    assert None is parse_key(b'"abc"', 2)
    assert None is parse_key(b'"\x01"', 10)
    with pytest.raises(ConfigError, match="invalid ttl=0"):
        IdempotencyMiddleware(orders_app(":memory:"), None, ttl=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid methods='POST'"):
        IdempotencyMiddleware(orders_app(":memory:"), None, methods="POST")  # type: ignore[arg-type]


def test_an_unreachable_store_refuses_with_503_and_runs_nothing(tmp_path: Path) -> None:
    import redis.asyncio

    from buttress.integrations.idempotency_stores import RedisIdempotencyStore

    from .conftest import free_port

    exec_db = str(tmp_path / "runs.db")
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    dead = redis.asyncio.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    app = IdempotencyMiddleware(orders_app(exec_db), RedisIdempotencyStore(dead))
    with UvicornThread(app) as server:
        r = httpx.post(f"{server.url}/orders", json={}, headers={"Idempotency-Key": '"x"'})
    assert (503, "1") == (r.status_code, r.headers["retry-after"])
    assert "Idempotency store unavailable" == json.loads(r.content)["title"]
    assert [] == runs(exec_db)


@given(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
)
def test_any_printable_key_survives_the_sf_string_form(key: str) -> None:
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert key == parse_key(quoted.encode(), 40)
    if len(key) > 1:
        assert None is parse_key(quoted.encode(), len(key) - 1)  # one character too long


def test_keys_are_scoped_by_client_when_asked(tmp_path: Path) -> None:
    exec_db = str(tmp_path / "runs.db")

    def client_of(scope: dict[str, object]) -> str:
        headers = dict(scope["headers"])  # type: ignore[call-overload]
        return headers.get(b"authorization", b"").decode()

    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    app = IdempotencyMiddleware(orders_app(exec_db), store, scope=client_of)
    key = {"Idempotency-Key": '"same"'}
    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as client:
        alice = client.post("/orders", json={}, headers={**key, "Authorization": "alice"})
        bob = client.post("/orders", json={}, headers={**key, "Authorization": "bob"})
        alice_again = client.post("/orders", json={}, headers={**key, "Authorization": "alice"})
    assert "idempotent-replayed" not in bob.headers  # bob's key is his own
    assert alice.content == alice_again.content != bob.content
    assert 2 == len(runs(exec_db))
