"""``buttress health probe`` never prints a query-string token: every query value is shown as
``***``, as passwords are, in its output line and in its errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from buttress.health import Check, HealthApp, HealthRegistry, Result, Status
from buttress.health.cli import shown_url
from buttress.ports import free_port

from .servers import UvicornThread


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://h/health?token=s3cret", "http://h/health?token=***"),
        ("http://h/health?token=s3cret&verbose=1", "http://h/health?token=***&verbose=***"),
        ("http://u:pw@h/x?access_token=abc#frag", "http://***@h/x?access_token=***#frag"),
        ("http://h/x?s3cret", "http://h/x?s3cret=***"),  # a bare value is a value too
        ("http://h/x?a=1&&b=", "http://h/x?a=***&&b=***"),
        ("http://h/health", "http://h/health"),
        ("http://h/health?", "http://h/health?"),
        ("http://h/health#x?y=1", "http://h/health#x?y=1"),  # a fragment is not a query
    ],
)
def test_shown_url(url: str, shown: str) -> None:
    assert shown == shown_url(url)


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", "health", "probe", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_probe_output_redacts_the_token() -> None:
    reg = HealthRegistry()
    reg.add(Check("db", lambda: Result(Status.PASS), ttl=0.0, in_thread=False))
    with UvicornThread(HealthApp(reg)) as server:
        ok = probe(f"{server.url}/health/ready?token=s3cret")
    assert (0, f"pass 200 {server.url}/health/ready?token=***\n") == (ok.returncode, ok.stdout)
    gone = probe(f"http://127.0.0.1:{free_port()}/health?token=s3cret", "--timeout", "2")
    assert 1 == gone.returncode
    assert gone.stdout.startswith("fail no answer (ConnectError) http://127.0.0.1:")
    assert gone.stdout.rstrip().endswith("/health?token=***")
    for out in (ok, gone):
        assert "s3cret" not in out.stdout + out.stderr


def test_probe_errors_redact_the_token() -> None:
    out = probe("http://127.0.0.1:99999/health?token=s3cret")
    assert 2 == out.returncode
    assert "error: invalid url='http://127.0.0.1:99999/health?token=***': has an invalid port" in (
        out.stderr
    )
    assert "s3cret" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
