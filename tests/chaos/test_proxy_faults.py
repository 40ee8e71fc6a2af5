"""Each proxy fault measured on real sockets over loopback."""

from __future__ import annotations

import hashlib
import socket
import statistics
import threading
import time

import httpx
import pytest

from buttress.chaos.client import Client
from buttress.chaos.proxy import ProxyThread

from .servers import BlobServer, EchoServer, HttpServer, recv_all, recv_exact


def connect(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    s = socket.create_connection((host, int(port)), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def echo_once(listen: str, payload: bytes = b"hi") -> bytes:
    with connect(listen) as s:
        s.sendall(payload)
        return recv_exact(s, len(payload))


def round_trip(s: socket.socket, payload: bytes = b"ping") -> float:
    t0 = time.perf_counter()
    s.sendall(payload)
    assert payload == recv_exact(s, len(payload))
    return time.perf_counter() - t0


def test_pass_through_is_fast_and_intact(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as s:
        blob = bytes(range(256)) * 4096  # 1 MiB
        t = threading.Thread(target=s.sendall, args=(blob,))
        t.start()
        got = recv_exact(s, len(blob))
        t.join()
        assert hashlib.sha256(blob).digest() == hashlib.sha256(got).digest()
        assert statistics.median(round_trip(s) for _ in range(20)) < 0.01


@pytest.mark.serial  # a latency bound: measured in the serial pass, not beside another worker
def test_latency_within_jitter_bounds(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as s:
        round_trip(s)
        with p.toxic("latency", latency=60, jitter=15):
            samples = [round_trip(s) for _ in range(8)]
        # one direction delayed by latency +- jitter; loopback adds well under 15 ms
        assert all(0.045 <= x <= 0.075 + 0.015 for x in samples), samples
        assert max(samples) - min(samples) > 0.002  # the jitter is really drawn
        assert round_trip(s) < 0.03  # removed: fast again, same connection


@pytest.mark.serial  # a rate bound: measured in the serial pass, not beside another worker
def test_bandwidth_within_ten_percent() -> None:
    size = 500_000
    rate = 1_000_000  # 1000 KB/s; the proxy paces 100 ms slices of 100,000 bytes
    with BlobServer(size) as blob, ProxyThread() as px, Client(px.url) as api:
        p = api.create("blob", blob.addr)
        p.add_toxic("bandwidth", rate=rate // 1000)
        with connect(p.listen) as s:
            s.settimeout(5)
            got = bytearray(s.recv(65536))
            first = time.perf_counter()  # the first slice has arrived
            while chunk := s.recv(65536):
                got += chunk
            elapsed = time.perf_counter() - first
    assert blob.payload == got
    # after the first slice, the other size - 100,000 bytes arrive at `rate`
    expected = (size - rate // 10) / rate
    assert abs(elapsed - expected) <= 0.1 * expected, elapsed


def test_reset_peer_is_seen_as_a_reset(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as s:
        round_trip(s)
        p.add_toxic("reset_peer", timeout=0)
        with pytest.raises(ConnectionResetError):
            s.sendall(b"x")
            recv_exact(s, 1)


def test_limit_data_cuts_at_the_byte() -> None:
    with BlobServer(50_000) as blob, ProxyThread() as px, Client(px.url) as api:
        p = api.create("blob", blob.addr)
        p.add_toxic("limit_data", bytes=12_345)
        with connect(p.listen) as s:
            got = recv_all(s)
    assert blob.payload[:12_345] == got


def test_toxicity_zero_and_one_are_exact() -> None:
    with BlobServer(5000) as blob, ProxyThread() as px, Client(px.url) as api:
        p = api.create("blob", blob.addr)
        p.add_toxic("limit_data", name="cut", bytes=10, toxicity=0.0)
        sizes0 = []
        for _ in range(40):
            with connect(p.listen) as s:
                sizes0.append(len(recv_all(s)))
        p.update_toxic("cut", toxicity=1.0)
        sizes1 = []
        for _ in range(40):
            with connect(p.listen) as s:
                sizes1.append(len(recv_all(s)))
        p.update_toxic("cut", toxicity=0.5)
        sizes_half = []
        for _ in range(60):
            with connect(p.listen) as s:
                sizes_half.append(len(recv_all(s)))
    assert [5000] * 40 == sizes0
    assert [10] * 40 == sizes1
    assert 10 <= sizes_half.count(10) <= 50  # drawn per connection


def test_timeout_holds_data_then_closes(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("timeout", timeout=150)
    with connect(p.listen) as s:
        t0 = time.perf_counter()
        s.sendall(b"hello")
        assert b"" == recv_all(s)
        assert 0.13 <= time.perf_counter() - t0 < 1.0


def test_timeout_zero_holds_until_removed_then_drops_and_closes(
    api: Client, echo: EchoServer
) -> None:
    # toxiproxy's timeout toxic: removing it drops what it held and closes the connection.
    p = api.create("echo", echo.addr)
    p.add_toxic("timeout", name="hold", timeout=0)
    with connect(p.listen) as s:
        s.sendall(b"hello")
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(10)
        p.remove_toxic("hold")
        s.settimeout(5)
        assert b"" == recv_all(s)


def test_timeout_removed_closes_a_connection_that_sent_nothing(
    api: Client, echo: EchoServer
) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("timeout", name="hold", timeout=0)
    with connect(p.listen) as s:
        time.sleep(0.05)  # the link is up, under the toxic
        p.remove_toxic("hold")
        s.settimeout(5)
        assert b"" == recv_all(s)
    assert b"hi" == echo_once(p.listen)  # new connections flow


def test_timeout_release_option_lets_the_held_data_flow_on(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("timeout", name="hold", timeout=0, on_remove="release")
    with connect(p.listen) as s:
        s.sendall(b"hello")
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(10)
        p.remove_toxic("hold")
        s.settimeout(5)
        assert b"hello" == recv_exact(s, 5)
        s.sendall(b"again")
        assert b"again" == recv_exact(s, 5)


def test_timeout_updated_keeps_holding(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("timeout", name="hold", timeout=0)
    with connect(p.listen) as s:
        s.sendall(b"hello")
        time.sleep(0.05)
        p.update_toxic("hold", timeout=0)  # replaced, still acting: nothing flows, still open
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(10)


def test_slicer_keeps_bytes_and_spaces_slices() -> None:
    with BlobServer(4000) as blob, ProxyThread() as px, Client(px.url) as api:
        p = api.create("blob", blob.addr)
        p.add_toxic("slicer", average_size=100, size_variation=20, delay=2000)
        t0 = time.perf_counter()
        with connect(p.listen) as s:
            got = recv_all(s)
        elapsed = time.perf_counter() - t0
    assert blob.payload == got
    assert elapsed >= 30 * 0.002  # at least ~33 slices, 2 ms apart


def test_slow_close_delays_the_eof() -> None:
    with BlobServer(100) as blob, ProxyThread() as px, Client(px.url) as api:
        p = api.create("blob", blob.addr)
        p.add_toxic("slow_close", delay=200)
        with connect(p.listen) as s:
            first = recv_exact(s, 100)
            t0 = time.perf_counter()
            assert b"" == recv_all(s)
            waited = time.perf_counter() - t0
    assert blob.payload == first
    assert 0.17 <= waited < 1.0


def test_connect_refuse_resets_before_any_byte(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as old:
        p.add_toxic("connect_refuse")
        # A write after the RST may surface as EPIPE instead; both are the reset, seen.
        with pytest.raises((ConnectionResetError, BrokenPipeError)), connect(p.listen) as s:
            # the reset may land during the connect's last steps or on the first read
            s.sendall(b"x")
            recv_exact(s, 1)
        assert round_trip(old) < 0.05  # existing connections are untouched


def test_connect_delay(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("connect_delay", delay=120)
    with connect(p.listen) as s:
        t0 = time.perf_counter()
        round_trip(s)
        assert 0.1 <= time.perf_counter() - t0 < 0.5


def test_hang_after_bytes_then_resume(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("hang_after", name="hang", bytes=150)
    with connect(p.listen) as s:
        s.sendall(b"a" * 100)
        assert b"a" * 100 == recv_exact(s, 100)
        s.sendall(b"b" * 100)
        assert b"b" * 50 == recv_exact(s, 50)
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(10)
        p.remove_toxic("hang")
        assert b"b" * 50 == recv_exact(s, 50)


def test_hang_after_duration(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as s:
        p.add_toxic("hang_after", duration=100)
        round_trip(s)
        time.sleep(0.12)
        s.sendall(b"late")
        s.settimeout(0.15)
        with pytest.raises(TimeoutError):
            s.recv(10)


def test_stall_doubles_like_retransmission(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    with connect(p.listen) as s:
        p.add_toxic("stall", probability=1.0, duration=20, burst=2)
        # k = 2 losses in a row: 20 * (2**2 - 1) = 60 ms per chunk
        samples = [round_trip(s) for _ in range(3)]
    assert all(0.055 <= x < 0.2 for x in samples), samples


def test_http_faults_seen_by_a_real_httpx_client(api: Client) -> None:
    with HttpServer() as web:
        p = api.create("web", web.addr)
        p.add_toxic(
            "http_status", stream="upstream", status=503, retry_after=2, path="/api", first=2
        )
        p.add_toxic("http_status", name="posts", status=429, method="POST", path="/orders/*")
        base = f"http://{p.listen}"
        with httpx.Client(base_url=base, timeout=5) as http:
            r1, r2, r3 = (http.get("/api/users") for _ in range(3))
            other = http.get("/health")
            get_order = http.get("/orders/1")
            post_order = http.post("/orders/1", content=b"x" * 10)
            post_other = http.post("/carts/1", content=b"y" * 3000)
    assert [503, 503, 200] == [r1.status_code, r2.status_code, r3.status_code]
    assert "2" == r1.headers["retry-after"]
    assert "GET /api/users 0" == r3.text
    assert (200, "GET /health 0") == (other.status_code, other.text)
    assert 200 == get_order.status_code
    assert 429 == post_order.status_code
    assert (200, "POST /carts/1 3000") == (post_other.status_code, post_other.text)


def test_non_http_bytes_pass_an_http_toxic_untouched(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    p.add_toxic("http_status", status=500)
    with connect(p.listen) as s:
        payload = bytes(range(256)) * 10
        s.sendall(payload)
        assert payload == recv_exact(s, len(payload))


@pytest.mark.parametrize("splice", [True, False], ids=["splice", "copy"])
def test_live_toggling_between_fast_and_toxic_paths_keeps_the_stream_intact(
    echo: EchoServer, splice: bool
) -> None:
    with ProxyThread(splice=splice) as px, Client(px.url) as api:
        _toggle_while_streaming(api, echo)


def _toggle_while_streaming(api: Client, echo: EchoServer) -> None:
    p = api.create("echo", echo.addr)
    blob = bytes(i * 7 % 256 for i in range(2_000_000))
    with connect(p.listen) as s:
        got = bytearray()

        def read() -> None:
            got.extend(recv_exact(s, len(blob), timeout=20))

        reader = threading.Thread(target=read)
        reader.start()
        sender = threading.Thread(target=s.sendall, args=(blob,))
        sender.start()
        for i in range(6):
            time.sleep(0.01)
            stream = "upstream" if i % 2 else "downstream"
            p.add_toxic("slicer", name="s", stream=stream, average_size=4096, delay=100)
            time.sleep(0.01)
            p.remove_toxic("s")
        sender.join()
        reader.join()
    assert hashlib.sha256(blob).hexdigest() == hashlib.sha256(got).hexdigest()


def test_each_direction_switches_between_the_fast_and_the_toxic_path(echo: EchoServer) -> None:
    with ProxyThread(splice=False) as px, Client(px.url) as api:
        p = api.create("echo", echo.addr)

        def phases() -> list[tuple[str, str]]:
            (link,) = px.proxies.proxies["echo"].links
            return [(link.up.phase, link.down.phase)]

        with connect(p.listen) as s:
            round_trip(s)
            assert [("copy", "copy")] == px.call(phases)
            with p.toxic("latency", latency=1):
                round_trip(s)
                assert [("copy", "toxic")] == px.call(phases)
            round_trip(s)
            assert [("copy", "copy")] == px.call(phases)


def test_plain_asyncio_fallback_path(echo: EchoServer) -> None:
    with ProxyThread(splice=False) as px, Client(px.url) as api:
        p = api.create("echo", echo.addr)
        with connect(p.listen) as s:
            blob = bytes(range(256)) * 2048
            t = threading.Thread(target=s.sendall, args=(blob,))
            t.start()
            assert blob == recv_exact(s, len(blob))
            t.join()
