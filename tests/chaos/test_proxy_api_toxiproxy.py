"""The control API read as toxiproxy reads it: requests written as toxiproxy's clients write them
(round trips), its int64 attributes, its types, its paths and /version; then at least 400
malformed requests against a real server, none of which may get a 5xx."""

from __future__ import annotations

import http.client
import json
import random
import re
from typing import Any

import pytest

from buttress.chaos.proxy import ProxyThread
from buttress.chaos.proxy.toxics import INT64_MAX, INT64_MIN

from .servers import EchoServer


def call(px: ProxyThread, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request on its own connection; (status, decoded JSON body or None)."""
    conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
    try:
        raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        headers = {"Content-Type": "application/json"} if raw is not None else {}
        conn.request(method, path, body=raw, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, (json.loads(data) if data.strip() else None)


# -- fixtures written as toxiproxy's clients write them -------------------------------------------

# toxiproxy's Go client: client.CreateProxy("redis", "localhost:26379", "localhost:6379")
GO_CREATE = {
    "name": "redis",
    "listen": "127.0.0.1:0",
    "upstream": "localhost:6379",
    "enabled": True,
}
# proxy.AddToxic("latency_down", "latency", "downstream", 1.0, toxiproxy.Attributes{...})
GO_ADD_TOXIC = {
    "name": "latency_down",
    "type": "latency",
    "stream": "downstream",
    "toxicity": 1.0,
    "attributes": {"latency": 1000, "jitter": 0},
}
# proxy.UpdateToxic("latency_down", 0.5, toxiproxy.Attributes{"jitter": 100}): a PATCH
GO_UPDATE_TOXIC = {"toxicity": 0.5, "attributes": {"jitter": 100}}
# toxiproxy-cli toxic add -t limit_data -a bytes=10 --upstream redis
CLI_LIMIT = {"type": "limit_data", "stream": "upstream", "toxicity": 1, "attributes": {"bytes": 10}}
# Toxiproxy.populate([...]) in toxiproxy-ruby, or a toxiproxy.json config file
RUBY_POPULATE = [
    {"name": "mysql_master", "listen": "127.0.0.1:0", "upstream": "localhost:3306"},
    {"name": "mysql_read_only", "listen": "127.0.0.1:0", "upstream": "localhost:3307"},
]


def test_go_client_calls_round_trip(px: ProxyThread) -> None:
    status, made = call(px, "POST", "/proxies", GO_CREATE)
    assert 201 == status
    assert {**GO_CREATE, "listen": made["listen"], "toxics": []} == made
    assert made["listen"].startswith("127.0.0.1:") and not made["listen"].endswith(":0")
    assert (200, made) == call(px, "GET", "/proxies/redis")

    status, toxic = call(px, "POST", "/proxies/redis/toxics", GO_ADD_TOXIC)
    assert (200, GO_ADD_TOXIC) == (status, toxic)
    assert (200, [GO_ADD_TOXIC]) == call(px, "GET", "/proxies/redis/toxics")
    assert (200, GO_ADD_TOXIC) == call(px, "GET", "/proxies/redis/toxics/latency_down")

    status, updated = call(px, "PATCH", "/proxies/redis/toxics/latency_down", GO_UPDATE_TOXIC)
    want = {**GO_ADD_TOXIC, "toxicity": 0.5, "attributes": {"latency": 1000, "jitter": 100}}
    assert (200, want) == (status, updated)
    assert (200, {"redis": {**made, "toxics": [want]}}) == call(px, "GET", "/proxies")

    status, limit = call(px, "POST", "/proxies/redis/toxics", CLI_LIMIT)
    assert 200 == status
    assert {**CLI_LIMIT, "name": "limit_data_upstream", "toxicity": 1.0} == limit

    # proxy.Disable() / Enable(): a PATCH of enabled
    status, off = call(px, "PATCH", "/proxies/redis", {"enabled": False})
    assert (200, False) == (status, off["enabled"])
    assert (204, None) == call(px, "DELETE", "/proxies/redis/toxics/latency_down")
    assert (204, None) == call(px, "POST", "/reset")
    status, back = call(px, "GET", "/proxies/redis")
    assert (True, []) == (back["enabled"], back["toxics"])
    assert (204, None) == call(px, "DELETE", "/proxies/redis")
    assert (200, {}) == call(px, "GET", "/proxies")


def test_ruby_populate_round_trips(px: ProxyThread) -> None:
    status, out = call(px, "POST", "/populate", RUBY_POPULATE)
    assert 201 == status
    got = [{k: p[k] for k in ("name", "upstream", "enabled", "toxics")} for p in out["proxies"]]
    want = [{**p, "enabled": True, "toxics": []} for p in RUBY_POPULATE]
    assert [{k: w[k] for k in ("name", "upstream", "enabled", "toxics")} for w in want] == got
    listed = call(px, "GET", "/proxies")[1]
    assert {p["name"]: p for p in out["proxies"]} == listed
    # populating again with the same proxies keeps them (same listen address)
    pairs = zip(RUBY_POPULATE, out["proxies"], strict=True)
    again = [{**p, "listen": q["listen"]} for p, q in pairs]
    assert (201, out) == call(px, "POST", "/populate", again)


def test_version_is_semver(px: ProxyThread) -> None:
    status, body = call(px, "GET", "/version")
    assert 200 == status
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.+-]+)?", body["version"])


# -- what toxiproxy refuses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({"latency": 2**63}, "out of range"),
        ({"latency": 10**400}, "out of range"),  # was an OverflowError and a 500
        ({"jitter": INT64_MIN - 1}, "out of range"),
        ({"latency": 1e300}, "out of range"),
    ],
)
def test_int64_bounds(px: ProxyThread, attributes: dict[str, Any], fragment: str) -> None:
    call(px, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1"})
    body = {"type": "latency", "attributes": attributes}
    status, body = call(px, "POST", "/proxies/p/toxics", body)
    assert (400, 400) == (status, body["status"])
    assert fragment in body["error"]


def test_int64_limits_themselves_are_accepted(px: ProxyThread) -> None:
    call(px, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1"})
    body = {"type": "limit_data", "attributes": {"bytes": INT64_MAX}}
    assert 200 == call(px, "POST", "/proxies/p/toxics", body)[0]
    body = {"type": "latency", "attributes": {"latency": INT64_MAX}}
    assert 200 == call(px, "POST", "/proxies/p/toxics", body)[0]


@pytest.mark.parametrize(
    ("kind", "attributes"),
    [
        ("limit_data", {"bytes": 5.0}),
        ("limit_data", {"bytes": 1.5}),
        ("slicer", {"average_size": 10.5}),
        ("http_status", {"status": 503.0}),
        ("stall", {"burst": 2.0}),
    ],
)
def test_floats_where_integers_are_required_get_400(
    px: ProxyThread, kind: str, attributes: dict[str, Any]
) -> None:
    call(px, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1"})
    status, body = call(px, "POST", "/proxies/p/toxics", {"type": kind, "attributes": attributes})
    assert (400, 400) == (status, body["status"])
    assert "must be an integer" in body["error"]


@pytest.mark.parametrize("listen", [0, 8080, False, True, [], {}, ["127.0.0.1:0"], 1.5])
def test_listen_that_is_not_a_string_gets_400(px: ProxyThread, listen: Any) -> None:
    status, body = call(px, "POST", "/proxies", {"name": "p", "upstream": "u:1", "listen": listen})
    assert (400, 400) == (status, body["status"])
    assert "listen must be a string" in body["error"]
    assert (200, {}) == call(px, "GET", "/proxies")
    call(px, "POST", "/proxies", {"name": "q", "upstream": "u:1"})
    status, body = call(px, "PATCH", "/proxies/q", {"listen": listen})
    assert 400 == status
    assert "listen must be a string" in body["error"]


def test_null_fields_mean_not_given(px: ProxyThread) -> None:
    status, made = call(
        px, "POST", "/proxies", {"name": "p", "upstream": "u:1", "listen": None, "enabled": None}
    )
    assert (201, True) == (status, made["enabled"])
    assert made["listen"].startswith("127.0.0.1:")


@pytest.mark.parametrize(
    "path",
    [
        "/proxies/",
        "/version/",
        "/reset/",
        "/populate/",
        "/proxies/p/",
        "/proxies/p/toxics/",
        "/proxies/p/toxics/t/",
        "//proxies",
        "/proxies//toxics",
        "/",
        "*",
    ],
)
def test_trailing_slashes_and_empty_segments_name_no_endpoint(px: ProxyThread, path: str) -> None:
    call(px, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1"})
    call(px, "POST", "/proxies/p/toxics", {"type": "latency", "name": "t"})
    for method in ("GET", "POST", "DELETE"):
        status, body = call(px, method, path, {} if method == "POST" else None)
        assert (404, 404) == (status, body["status"]), (method, path)
    assert 200 == call(px, "GET", "/proxies/p/toxics/t")[0]  # nothing was deleted


def test_the_timeout_toxic_on_remove_is_validated_and_shown(px: ProxyThread) -> None:
    call(px, "POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1"})
    status, t = call(px, "POST", "/proxies/p/toxics", {"type": "timeout"})
    assert (200, {"timeout": 0, "on_remove": "close"}) == (status, t["attributes"])
    bad = {"type": "timeout", "name": "x", "attributes": {"on_remove": "later"}}
    status, body = call(px, "POST", "/proxies/p/toxics", bad)
    assert 400 == status
    assert "on_remove" in body["error"]


# -- the control-API fuzz test: >= 400 malformed requests, no 5xx --------------------------------

_HUGE = [2**63, -(2**63) - 1, 10**400, 1e308, -1e308, 2**64, 10**30]
_WRONG = [None, True, False, "x", "", [], {}, [1], {"a": 1}, 1.5, -1, 0, 2**63 - 1, "\x00"]
_ATTRS = {
    "latency": ["latency", "jitter"],
    "bandwidth": ["rate"],
    "slow_close": ["delay"],
    "timeout": ["timeout", "on_remove"],
    "reset_peer": ["timeout"],
    "slicer": ["average_size", "size_variation", "delay"],
    "limit_data": ["bytes"],
    "connect_delay": ["delay"],
    "hang_after": ["duration", "bytes"],
    "stall": ["probability", "duration", "burst"],
    "http_status": ["status", "retry_after", "body", "method", "path", "first"],
}


def malformed_requests(seed: int, n: int) -> list[tuple[str, str, bytes]]:
    """``n`` requests, each with one thing wrong: a value of a wrong type or out of range, a
    non-string listen, a bad path, a broken JSON body."""
    rng = random.Random(seed)
    out: list[tuple[str, str, bytes]] = []
    paths = ["/proxies/", "/proxies/p/", "/proxies/p/toxics/", "/version/", "//reset", "/p//"]
    while len(out) < n:
        pick = rng.randrange(6)
        if pick == 0:  # a toxic attribute of the wrong type or size
            kind = rng.choice(sorted(_ATTRS))
            attr = rng.choice(_ATTRS[kind])
            value = rng.choice(_HUGE + _WRONG)
            body: Any = {"type": kind, "name": f"t{len(out)}", "attributes": {attr: value}}
            method, path = rng.choice(
                [("POST", "/proxies/p/toxics"), ("PATCH", "/proxies/p/toxics/t")]
            )
            if method == "PATCH":
                body = {"attributes": {"latency": value, "jitter": rng.choice(_HUGE)}}
        elif pick == 1:  # toxic fields
            field = rng.choice(["type", "name", "stream", "toxicity", "attributes"])
            body = {"type": "latency", field: rng.choice(_HUGE + _WRONG)}
            method, path = "POST", "/proxies/p/toxics"
        elif pick == 2:  # proxy fields: listen, upstream, name, enabled of the wrong type
            field = rng.choice(["listen", "upstream", "name", "enabled", "toxics"])
            body = {"name": f"n{len(out)}", "upstream": "127.0.0.1:1"}
            body[field] = rng.choice(_HUGE + _WRONG)
            method, path = rng.choice(
                [("POST", "/proxies"), ("PATCH", "/proxies/p"), ("POST", "/proxies/p")]
            )
        elif pick == 3:  # populate with a bad item
            item = {"name": "m", "upstream": "127.0.0.1:1"}
            item[rng.choice(["listen", "upstream", "enabled"])] = rng.choice(_HUGE + _WRONG)
            body = rng.choice([[item], item, [item, 5]])
            method, path = "POST", "/populate"
        elif pick == 4:  # a path toxiproxy does not route
            method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PUT"])
            path = rng.choice(paths)
            body = {}
        else:  # a JSON body that is broken or of the wrong shape
            method, path = rng.choice(
                [("POST", "/proxies"), ("POST", "/proxies/p/toxics"), ("PATCH", "/proxies/p")]
            )
            raw = rng.choice(
                [
                    b"{",
                    b"[1,",
                    b"nul",
                    b'{"name": "x", "upstream": 1e999}',
                    b"\xff\xfe",
                    b'{"latency": 99999999999999999999999999999999999999}',
                    b"[]",
                    b"3",
                    b'"s"',
                ]
            )
            out.append((method, path, raw))
            continue
        out.append((method, path, json.dumps(body).encode()))
    return out


def test_four_hundred_malformed_requests_never_get_5xx(px: ProxyThread, echo: EchoServer) -> None:
    assert 201 == call(px, "POST", "/proxies", {"name": "p", "upstream": echo.addr})[0]
    assert 200 == call(px, "POST", "/proxies/p/toxics", {"type": "latency", "name": "t"})[0]
    requests = malformed_requests(seed=14, n=600)
    statuses: list[int] = []
    for method, path, raw in requests:
        status, body = call(px, method, path, raw)
        assert status < 500, (method, path, raw, body)
        if status >= 400:
            assert isinstance(body, dict) and body["status"] == status, (method, path, raw)
        statuses.append(status)
    # a few draws happen to be valid (a 0, an empty string); at least 400 were refused
    assert sum(400 <= s < 500 for s in statuses) >= 400
    status, proxies = call(px, "GET", "/proxies")
    assert 200 == status and "p" in proxies  # and the API still serves
