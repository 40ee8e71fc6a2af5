"""The proxy's congestion-control choice on its own sockets, read back from the kernel."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from buttress.chaos.client import Client
from buttress.chaos.proxy import ProxyThread
from buttress.chaos.proxy.congestion import apply_congestion, check_congestion

from .servers import EchoServer

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "TCP_CONGESTION"), reason="per-socket congestion control is Linux-only"
)


def _algorithm(sock: socket.socket) -> str:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
    return raw.split(b"\0", 1)[0].decode()


def _system_default() -> str:
    return Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()


def _link_algorithms(setting: str, echo: EchoServer) -> tuple[str, str]:
    with ProxyThread(congestion=setting) as px, Client(px.url) as api:
        p = api.create("echo", echo.addr)
        host, _, port = p.listen.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"ping")
            assert b"ping" == s.recv(4)

            def read() -> tuple[str, str]:
                (link,) = px.proxies.proxies["echo"].links
                return _algorithm(link.client), _algorithm(link.upstream)

            result: tuple[str, str] = px.call(read)
            return result


def test_auto_uses_reno_towards_loopback_peers(echo: EchoServer) -> None:
    assert ("reno", "reno") == _link_algorithms("auto", echo)


def test_system_leaves_the_default(echo: EchoServer) -> None:
    default = _system_default()
    assert (default, default) == _link_algorithms("system", echo)


def test_auto_leaves_remote_peers_alone() -> None:
    with socket.socket() as s:
        before = _algorithm(s)
        apply_congestion(s, "auto", "192.0.2.7")  # TEST-NET-1: never loopback
        assert before == _algorithm(s)
        apply_congestion(s, "auto", "::ffff:192.0.2.7")
        assert before == _algorithm(s)
        apply_congestion(s, "auto", "::1")
        assert "reno" == _algorithm(s)
    with socket.socket() as s:
        apply_congestion(s, "auto", "::ffff:127.0.0.1")  # an IPv4 client of a dual-stack listener
        assert "reno" == _algorithm(s)


def test_a_named_algorithm_is_applied_to_every_socket() -> None:
    assert "reno" == check_congestion("reno")
    with socket.socket() as s:
        apply_congestion(s, "reno", "192.0.2.7")
        assert "reno" == _algorithm(s)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("no_such_cc", "congestion control 'no_such_cc' is not available; available: "),
        ("a b", "congestion control 'a b': expected 'auto', 'system' or an algorithm name"),
        ("", "expected 'auto', 'system' or an algorithm name"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(setting: str, message: str) -> None:
    with pytest.raises(ValueError, match="congestion control") as info:
        check_congestion(setting)
    assert message in str(info.value)
    if setting == "no_such_cc":
        assert "reno" in str(info.value)  # the list of what is available


_SERVE = [sys.executable, "-m", "buttress.cli", "proxy", "serve"]


def test_cli_refuses_an_unknown_algorithm_in_one_line() -> None:
    out = subprocess.run(
        [*_SERVE, "--port", "0", "--congestion", "no_such_cc"],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert 2 == out.returncode
    assert "congestion control 'no_such_cc' is not available" in out.stderr
    assert "Traceback" not in out.stderr
