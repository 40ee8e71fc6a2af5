"""The control API: driven by the real toxiproxy client, by ours (sync and async), and by bad
input."""

from __future__ import annotations

import gc
import json
import os
import re
import socket
import time

import pytest
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from buttress.chaos.client import AsyncClient, Client, ProxyAPIError
from buttress.chaos.proxy import ProxyThread

from .servers import EchoServer, recv_exact


def connect(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=5)


def echo_once(listen: str, payload: bytes = b"hi") -> bytes:
    with connect(listen) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


def test_toxiproxy_python_client_drives_our_proxy(px: ProxyThread, echo: EchoServer) -> None:
    server = toxiproxy.Toxiproxy()
    server.update_api_consumer(px.host, px.port)
    assert server.running()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", json.loads(server.version())["version"])
    proxy = server.create(upstream=echo.addr, name="echo")
    assert b"hi" == echo_once(proxy.listen)
    with pytest.raises(ProxyExists):
        server.create(upstream=echo.addr, name="echo")

    proxy.add_toxic(type="latency", attributes={"latency": 80})
    toxics = proxy.toxics()
    assert ["latency_downstream"] == list(toxics)
    assert 80 == toxics["latency_downstream"].attributes["latency"]
    t0 = time.perf_counter()
    echo_once(proxy.listen)
    assert time.perf_counter() - t0 >= 0.075
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    assert proxy.destroy_toxic("latency_downstream")
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")

    with proxy.down():
        with pytest.raises(OSError):
            echo_once(proxy.listen)
        assert server.get_proxy("echo").enabled is False
    assert b"hi" == echo_once(proxy.listen)

    proxy.add_toxic(type="limit_data", stream="upstream", attributes={"bytes": 1})
    assert server.reset()
    assert {} == proxy.toxics()
    made = server.populate([{"name": "other", "upstream": echo.addr, "listen": "127.0.0.1:0"}])
    assert ["other"] == [p.name for p in made]
    assert {"echo", "other"} == set(server.proxies())
    server.destroy_all()
    assert {} == server.proxies()


def test_our_sync_client_and_context_managers(api: Client, echo: EchoServer) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", api.version())
    p = api.create("echo", echo.addr)
    assert p.listen == f"{p.host}:{p.port}"
    with pytest.raises(RuntimeError), p.toxic("latency", latency=10) as t:
        assert "latency_downstream" == t["name"]
        assert 1 == len(p.toxics())
        raise RuntimeError("the block failed")
    assert [] == p.toxics()
    with pytest.raises(RuntimeError), p.down():
        assert p.refresh().enabled is False
        raise RuntimeError("the block failed")
    assert p.refresh().enabled is True
    assert b"hi" == echo_once(p.listen)
    with pytest.raises(ProxyAPIError) as info:
        p.add_toxic("latency", latency=-5)
    assert 400 == info.value.status
    assert "must be >= 0" in info.value.message
    populated = api.populate([{"name": "b", "upstream": echo.addr}])
    assert ["b"] == [x.name for x in populated]
    api.reset()
    assert {"echo", "b"} == set(api.proxies())
    p.destroy()
    with pytest.raises(ProxyAPIError) as info:
        api.get("echo")
    assert 404 == info.value.status


async def test_our_async_client_twin(px: ProxyThread, echo: EchoServer) -> None:
    async with AsyncClient(px.url) as api:
        assert re.fullmatch(r"\d+\.\d+\.\d+\S*", await api.version())
        p = await api.create("echo", echo.addr)
        with pytest.raises(RuntimeError):
            async with p.toxic("bandwidth", rate=10):
                assert 1 == len(await p.toxics())
                raise RuntimeError("the block failed")
        assert [] == await p.toxics()
        async with p.down():
            assert (await p.refresh()).enabled is False
        assert (await p.refresh()).enabled is True
        await p.add_toxic("latency", name="l", latency=5)
        updated = await p.update_toxic("l", latency=7, toxicity=0.5)
        assert (7, 0.5) == (updated["attributes"]["latency"], updated["toxicity"])
        await p.remove_toxic("l")
        assert {"echo"} == set(await api.proxies())
        await api.reset()
        await p.destroy()
        assert {} == await api.proxies()


def raw(px: ProxyThread, data: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection((px.host, px.port), timeout=5) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "fragment"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET /proxies HTTP/1.1\r\nno-colon-here\r\n\r\n", 400, "malformed header"),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops", 400, "bad request body"),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]", 400, "expected a JSON object"),
        (
            b'POST /proxies HTTP/1.1\r\nContent-Length: 13\r\n\r\n{"name": "x"}',
            400,
            "missing required field: upstream",
        ),
        (b"GET /nowhere HTTP/1.1\r\n\r\n", 404, "no such endpoint"),
        (b"PUT /proxies HTTP/1.1\r\n\r\n", 405, "not allowed"),
        (b"GET /proxies/ghost HTTP/1.1\r\n\r\n", 404, "proxy not found"),
        (b"GET /proxies HTTP/1.1\r\nUser-Agent: Mozilla/5.0\r\n\r\n", 403, "not allowed"),
        (b"POST /proxies HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "not a number"),
        (b"POST /populate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, "JSON array"),
    ],
)
def test_malformed_requests_get_4xx_json(
    px: ProxyThread, request_bytes: bytes, status: int, fragment: str
) -> None:
    got_status, body = raw(px, request_bytes)
    assert status == got_status
    assert status == body["status"]
    assert fragment in str(body["error"])


def test_bad_toxics_get_400_with_the_reason(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    cases = [
        ({"type": "latency", "stream": "sideways"}, "stream was invalid"),
        ({"type": "latency", "toxicity": 2}, "toxicity must be a number in [0, 1]"),
        ({"type": "latency", "attributes": {"latncy": 5}}, "unknown attribute 'latncy'"),
        ({"type": "limit_data", "attributes": {"bytes": 1.5}}, "must be an integer"),
        ({"type": "http_status", "attributes": {"status": 700}}, "100..599"),
        ({"type": "latency", "attributes": []}, "attributes must be a JSON object"),
    ]
    for body, fragment in cases:
        with pytest.raises(ProxyAPIError) as info:
            api._req("POST", "/proxies/echo/toxics", body)
        assert (400, True) == (info.value.status, fragment in info.value.message), body
    p.add_toxic("latency", name="dup")
    with pytest.raises(ProxyAPIError) as info:
        p.add_toxic("latency", name="dup")
    assert 409 == info.value.status
    # the API kept serving through all of it
    assert ["dup"] == [t["name"] for t in p.toxics()]


def test_upstream_down_refuses_cleanly_and_recovers(api: Client) -> None:
    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()  # nothing listens there now
    p = api.create("dead", f"127.0.0.1:{port}")
    for _ in range(3):
        try:
            with connect(p.listen) as s:
                got = s.recv(10)
        except ConnectionResetError:
            got = b""  # refused with a reset (it may land before or after connect returns)
        assert b"" == got
    assert "dead" in api.proxies()  # the proxy and its API are still up
    with EchoServer() as echo:
        api._req("POST", "/proxies/dead", {"upstream": echo.addr})
        assert b"hi" == echo_once(p.listen)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_thousand_concurrent_connections_leak_no_descriptors(echo: EchoServer) -> None:
    with ProxyThread() as px, Client(px.url) as api:
        p = api.create("echo", echo.addr)
        echo_once(p.listen)  # warm up: loop, pools, lazily opened files
        time.sleep(0.05)
        before = fd_count()
        host, _, port = p.listen.rpartition(":")
        socks = []
        for _ in range(1000):
            s = socket.socket()
            s.settimeout(10)
            s.connect((host, int(port)))
            socks.append(s)
        for i, s in enumerate(socks):
            s.sendall(i.to_bytes(4, "big"))
        for i, s in enumerate(socks):
            assert i.to_bytes(4, "big") == recv_exact(s, 4, timeout=10)
        assert 1000 == px.call(lambda: len(px.proxies.proxies["echo"].links))
        during = fd_count()
        for s in socks:
            s.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if px.call(lambda: len(px.proxies.proxies["echo"].links)) == 0 and fd_count() <= before:
                break
            time.sleep(0.05)
        gc.collect()
        after = fd_count()
    assert during >= before + 3000  # client + proxy (two sockets) per connection, at least
    assert before >= after, (before, after)
