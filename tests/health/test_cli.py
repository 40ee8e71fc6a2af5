"""``buttress health probe`` on a real server: exit 0 on pass/warn, 1 on fail, 2 on bad input."""

from __future__ import annotations

import subprocess
import sys

from buttress.health import Check, HealthApp, HealthRegistry, Result, Status
from buttress.ports import free_port

from .servers import UvicornThread


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", "health", "probe", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_probe_exit_codes() -> None:
    state = {"status": Status.PASS}
    reg = HealthRegistry()
    reg.add(Check("db", lambda: Result(state["status"]), ttl=0.0, in_thread=False))
    reg.add(Check("cache", lambda: Result(Status.FAIL), critical=False, ttl=0.0, in_thread=False))
    with UvicornThread(HealthApp(reg)) as server:
        ok = probe(f"{server.url}/health/ready", "-v")
        assert (0, f"warn 200 {server.url}/health/ready [cache=fail]\n", "") == (
            ok.returncode,
            ok.stdout,
            ok.stderr,
        )
        state["status"] = Status.FAIL
        bad = probe(f"{server.url}/health/ready")
        assert (1, f"fail 503 {server.url}/health/ready\n") == (bad.returncode, bad.stdout)
    gone = probe(f"http://user:hunter2@127.0.0.1:{free_port()}/health/ready", "--timeout", "2")
    assert 1 == gone.returncode
    assert gone.stdout.startswith("fail no answer (ConnectError) http://***@127.0.0.1:")
    assert "hunter2" not in gone.stdout + gone.stderr


def test_probe_bad_input_is_one_message() -> None:
    out = probe("localhost:8080/health")
    assert 2 == out.returncode
    assert "error: invalid url='localhost:8080/health'" in out.stderr
    assert "Traceback" not in out.stderr
    out = probe("http://127.0.0.1:1/x", "--timeout", "0")
    assert 2 == out.returncode
    assert "invalid timeout=0.0" in out.stderr
    out = probe("http://user:hunter2@[::1/health")  # urlsplit raises ValueError on it
    assert (2, "") == (out.returncode, out.stdout)
    assert "error: invalid url='http://***@[::1/health': is not a URL that parses" in out.stderr
    assert "Traceback" not in out.stderr
    assert "hunter2" not in out.stderr
