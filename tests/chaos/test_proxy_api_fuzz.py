"""The control API under bad input: targeted cases, then hypothesis fuzzing over real sockets.

The contract: every request gets a 4xx (or a 2xx) with a JSON body, never a 5xx; nothing is logged
at ERROR (no traceback, no task that died); the API keeps serving.
"""

from __future__ import annotations

import gc
import http.client
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress.chaos.proxy import ProxyThread
from buttress.chaos.proxy.api import MAX_BODY

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _Errors(logging.Handler):
    """Collects ERROR records from the proxy and from asyncio (a task that died, a traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[_Errors]:
    handler = _Errors()
    loggers = [logging.getLogger(n) for n in ("buttress", "asyncio")]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)


def exchange(px: ProxyThread, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data``, half-close, read until the server closes; everything it answered."""
    out = b""
    with socket.create_connection((px.host, px.port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered and closed before reading it all
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def one_response(px: ProxyThread, data: bytes) -> tuple[int, dict[str, Any]]:
    out = exchange(px, data)
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


def assert_still_serving(px: ProxyThread) -> None:
    status, body = one_response(px, b"GET /version HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert (200, True) == (status, bool(re.fullmatch(r"\d+\.\d+\.\d+\S*", body["version"])))


# -- targeted cases (each one was a 500 or a crash) -----------------------------------------------


@pytest.mark.parametrize("toxics", [5, True, 1.5, "latency"])
def test_toxics_that_are_not_a_list_get_400(px: ProxyThread, errors: _Errors, toxics: Any) -> None:
    body = json.dumps({"name": "t", "upstream": "127.0.0.1:1", "toxics": toxics}).encode()
    status, payload = one_response(px, post("/proxies", body))
    assert (400, 400) == (status, payload["status"])
    assert "toxics must be a JSON array" in payload["error"]
    assert {} == px.call(lambda: dict(px.proxies.proxies))
    assert [] == errors.records


@pytest.mark.parametrize(
    ("size_line", "fragment"),
    [
        (b"-1", "malformed chunk size"),
        (b"-0", "malformed chunk size"),
        (b"+5", "malformed chunk size"),
        (b"0x10", "malformed chunk size"),
        (b"", "malformed chunk size"),
        (b"zz", "malformed chunk size"),
        (b"%x" % (MAX_BODY + 1), "body over 1 MiB"),
        (b"f" * 40, "body over 1 MiB"),
    ],
)
def test_bad_chunk_sizes_get_400_before_any_body_is_read(
    px: ProxyThread, errors: _Errors, size_line: bytes, fragment: str
) -> None:
    # No chunk data follows: an answer proves the size was judged before reading the chunk.
    req = b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line + b"\r\n"
    with socket.create_connection((px.host, px.port), timeout=5) as s:
        s.sendall(req)  # the connection stays open for writing: the server must not wait
        out = b""
        while b"\r\n\r\n" not in out or not out.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"HTTP/1.1 400 Bad Request" == head.split(b"\r\n")[0]
    assert fragment in json.loads(body)["error"]
    assert [] == errors.records


def test_a_chunked_body_over_the_limit_in_small_chunks_gets_400(px: ProxyThread) -> None:
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(17))
    req = b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    status, payload = one_response(px, req)
    assert (400, "bad request: body over 1 MiB") == (status, payload["error"])


def test_a_good_chunked_body_is_read(px: ProxyThread) -> None:
    body = json.dumps({"name": "c", "upstream": "127.0.0.1:1"}).encode()
    half = len(body) // 2
    chunked = b"%x\r\n%s\r\n%x;ext=1\r\n%s\r\n0\r\n\r\n" % (
        half,
        body[:half],
        len(body) - half,
        body[half:],
    )
    req = b"POST /proxies HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    status, payload = one_response(px, req + chunked)
    assert (201, "c") == (status, payload["name"])


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (b"-5", "negative Content-Length"),
        (b"5_0", "Content-Length is not a number"),
        (b"+5", "Content-Length is not a number"),
        (b"\xb2", "Content-Length is not a number"),  # a digit to str.isdigit(), not to int()
        (b"9" * 5000, "body over 1 MiB"),
    ],
)
def test_bad_content_lengths_get_400(
    px: ProxyThread, errors: _Errors, value: bytes, fragment: str
) -> None:
    req = b"POST /proxies HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n{}"
    status, payload = one_response(px, req)
    assert (400, fragment) == (status, payload["error"].removeprefix("bad request: "))
    assert [] == errors.records


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[" * 100_000, "bad request body"),  # nesting deeper than the JSON parser recurses
        (b'{"name": "n", "upstream": "u:1", "enabled": ' + b"9" * 5000 + b"}", "bad request body"),
        (b'{"name": "n", "upstream": "127.0.0.1:\xc2\xb2"}', "upstream must be host:port"),
        (b'{"name": "n", "upstream": "u:1", "listen": "a\\u0000b:0"}', "listen host must be"),
        (b'{"name": "n", "upstream": "u:1", "listen": "\\udcff:0"}', "listen host must be"),
        (b'{"name": "n", "upstream": "\\udcff:1"}', "upstream host must be"),
    ],
)
def test_json_edge_cases_get_4xx(
    px: ProxyThread, errors: _Errors, body: bytes, fragment: str
) -> None:
    status, payload = one_response(px, post("/proxies", body))
    assert 400 <= status < 500
    assert fragment in payload["error"]
    assert [] == errors.records


# -- fuzzing -------------------------------------------------------------------------------------

_methods = st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]) | st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8
)
_paths = st.sampled_from(
    [
        "/version",
        "/reset",
        "/proxies",
        "/populate",
        "/proxies/f",
        "/proxies/f/toxics",
        "/proxies/f/toxics/t",
        "/proxies/%00/toxics",
        "/proxies/f/toxics/t/extra",
        "/proxies?x=1",
        "*",
        "",
    ]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30)
_versions = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.x", "", "FOO"])
_header_names = st.sampled_from(
    ["Content-Length", "Transfer-Encoding", "Connection", "User-Agent", "Host", "X-A"]
) | st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"), max_size=12
)
_header_values = st.sampled_from(
    ["chunked", "close", "keep-alive", "-1", "0", "5", "1048577", "99999999999", "Mozilla/5.0", ""]
) | st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\r\n"), max_size=20
)
_chunk_sizes = st.sampled_from(
    [b"-1", b"-a", b"+5", b"0x5", b"0", b"1", b"5", b"ffffffff", b"100001", b"", b"x", b"1_0"]
) | (st.integers(min_value=0, max_value=0x200000).map(lambda n: b"%x" % n))


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(1, one_in)) == 1


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """Requests that are mostly well formed, with something wrong somewhere (or not)."""
    line = f"{draw(_methods)} {draw(_paths)} {draw(_versions)}"
    if _rarely(draw, 8):
        line = draw(st.sampled_from([line.replace(" ", "  "), line + " extra", line[:5]]))
    headers = draw(st.lists(st.tuples(_header_names, _header_values), max_size=4))
    parts = [line.encode("latin-1")]
    parts += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    if _rarely(draw, 8):
        parts.append(draw(st.sampled_from([b"no-colon", b": empty-name", b"X: " + b"y" * 300])))
    head = b"\r\n".join(parts) + b"\r\n\r\n"
    if draw(st.booleans()):
        body = b""
        for _ in range(draw(st.integers(1, 3))):
            size = draw(_chunk_sizes)
            data = draw(st.binary(max_size=40))
            end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"", b"zz"]))
            body += size + b"\r\n" + data + end
        if draw(st.booleans()):
            body += b"0\r\n\r\n"
        head = head.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n", 1)
    else:
        body = draw(st.binary(max_size=60) | st.sampled_from([b"{}", b"[]", b"null", b"{"]))
    if _rarely(draw, 4):
        cut = draw(st.integers(0, len(head) + len(body)))
        return (head + body)[:cut]  # truncated anywhere
    return head + body


_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


def test_fuzzed_raw_requests_never_get_5xx_nor_crash(px: ProxyThread, errors: _Errors) -> None:
    @FUZZ
    @given(data=raw_requests())
    def one(data: bytes) -> None:
        seen = len(errors.records)
        out = exchange(px, data)
        statuses = [int(m.group(1)) for m in _STATUS.finditer(out)]
        assert [s for s in statuses if s >= 500] == [], (data, out)
        time.sleep(0.001)  # let the server finish with the connection (and log, if it failed)
        assert [] == [r.getMessage() for r in errors.records[seen:]], data

    one()
    gc.collect()  # a handler task that died is reported when it is collected
    assert [] == [r.getMessage() for r in errors.records]
    assert_still_serving(px)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_upstreams = st.sampled_from(["127.0.0.1:1", "x:80", "", "127.0.0.1:99999", "[::1]:5", "u"]) | _json
_listens = (
    st.sampled_from(
        ["127.0.0.1:0", "", "127.0.0.1:x", "[::1]:0", ":0", "127.0.0.1", "1.2.3.4:0", "a\x00b:0"]
    )
    | st.none()
    | st.integers()
    | st.booleans()
)
_toxic_types = (
    st.sampled_from(
        ["latency", "bandwidth", "timeout", "limit_data", "http_status", "stall", "nope"]
    )
    | _json
)
_toxic = st.fixed_dictionaries(
    {},
    optional={
        "type": _toxic_types,
        "name": st.sampled_from(["t", "", "x/y"]) | _json,
        "stream": st.sampled_from(["upstream", "downstream", "both"]) | _json,
        "toxicity": st.floats() | st.integers() | _json,
        "attributes": st.dictionaries(
            st.sampled_from(["latency", "jitter", "rate", "bytes", "status", "path", "x"]),
            _json,
            max_size=3,
        )
        | _json,
    },
)
# Mostly plausible proxies (a valid name and upstream, so validation gets to the other fields),
# sometimes anything at all.
_proxy = (
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["f", "g"]),
            "upstream": st.sampled_from(["127.0.0.1:1", "[::1]:5"]),
        },
        optional={
            "listen": _listens,
            "enabled": st.booleans() | _json,
            "toxics": st.lists(_toxic | _json, max_size=2) | _json,
        },
    )
    | st.fixed_dictionaries(
        {
            "name": st.just("g"),  # "f" may exist already: 409 before toxics are read
            "upstream": st.just("127.0.0.1:1"),
            "toxics": st.integers(min_value=1) | st.just(True) | st.floats(0.5, 1e9) | _json,
        }
    )
    | st.fixed_dictionaries(
        {},
        optional={
            "name": st.sampled_from(["f", "g", ""]) | _json,
            "upstream": _upstreams,
            "listen": _listens,
            "enabled": st.booleans() | _json,
        },
    )
)


@st.composite
def api_requests(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(method, path, body), the body shaped for the endpoint most of the time."""
    method, path, body = draw(
        st.sampled_from(
            [
                ("POST", "/proxies", _proxy),
                ("POST", "/populate", st.lists(_proxy | _json, max_size=3)),
                ("POST", "/proxies/f", _proxy),
                ("PATCH", "/proxies/f", _proxy),
                ("POST", "/proxies/f/toxics", _toxic),
                ("POST", "/proxies/f/toxics/t", _toxic),
                ("PATCH", "/proxies/f/toxics/t", _toxic),
                ("POST", "/reset", _json),
                ("DELETE", "/proxies/f", _json),
                ("DELETE", "/proxies/f/toxics/t", _json),
                ("GET", "/proxies/f/toxics", _json),
            ]
        )
    )
    return method, path, draw(body | _json)


def test_fuzzed_json_bodies_never_get_5xx(px: ProxyThread, errors: _Errors) -> None:
    ps = px.proxies

    def clear(setup: bool) -> None:
        for name in list(ps.proxies):
            ps.delete(name)
        if setup:  # a proxy and a toxic to update, so the update paths are reached too
            ps.create({"name": "f", "upstream": "127.0.0.1:1"})
            ps.add_toxic("f", {"type": "latency", "name": "t"})

    @FUZZ
    @given(request=api_requests(), setup=st.booleans())
    def one(request: tuple[str, str, Any], setup: bool) -> None:
        method, path, body = request
        px.call(lambda: clear(setup))
        seen = len(errors.records)
        conn = http.client.HTTPConnection(px.host, px.port, timeout=5)
        try:
            raw = json.dumps(body).encode()
            conn.request(method, path, body=raw, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        assert resp.status < 500, (method, path, body, payload)
        if resp.status >= 400:
            assert resp.status == json.loads(payload)["status"]
        assert [] == [r.getMessage() for r in errors.records[seen:]], body

    one()
    px.call(lambda: clear(False))
    gc.collect()
    assert [] == [r.getMessage() for r in errors.records]


def test_the_api_serves_after_the_abuse(px: ProxyThread) -> None:
    for req in (b"\x00\xff" * 100, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"):
        exchange(px, req)
    assert_still_serving(px)
