"""The ``health:`` section of reliability.yaml: building a registry, and errors with file:line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from buttress.errors import SpecError
from buttress.health import Status
from buttress.health.spec import build_drainer, build_health
from buttress.policies.breaker import CircuitBreaker
from buttress.spec import load_spec_text

from .conftest import RedisServer


def spec(body: str) -> str:
    return "version: 1\nhealth:\n" + body


def test_section_builds_a_working_registry(tmp_path: Path, redis_server: RedisServer) -> None:
    db = tmp_path / "app.db"
    db.touch()
    text = spec(
        f"""\
  service_id: payments
  version: "1.4.0"
  probe_timeouts: {{readiness: 2s}}
  groups: {{batch: 5s}}
  drain: {{delay: 3s, grace: 10s}}
  checks:
    - {{type: sqlite, name: ledger, path: "{db}", ttl: 500ms}}
    - {{type: redis, name: cache, url_env: CACHE_URL, critical: false}}
    - {{type: disk, path: "{tmp_path}", warn_below: 0.0, fail_below: 0.0, groups: [batch]}}
    - {{type: event_loop_lag, groups: [liveness], fail_after: 2s}}
    - {{type: breaker, breaker: payments}}
"""
    )
    breaker = CircuitBreaker(name="payments-api")
    s = load_spec_text(text, "reliability.yaml")
    reg = build_health(s, env={"CACHE_URL": redis_server.url}, breakers={"payments": breaker})
    assert ["ledger:query", "cache:ping", "payments-api:state"] == [
        c.key for c in reg.checks("readiness")
    ]
    assert 1.6 == pytest.approx(reg.checks("readiness")[0].timeout)
    assert 0.5 == reg.checks("readiness")[0].ttl
    assert reg.checks("readiness")[1].critical is False
    assert 5.0 == reg.probe_timeout("batch")
    status, body = asyncio.run(reg.respond("readiness"))
    doc = json.loads(body)
    assert (200, "pass", "payments", "1.4.0") == (
        status,
        doc["status"],
        doc["serviceId"],
        doc["version"],
    )
    assert Status.PASS == asyncio.run(reg.evaluate("batch")).status
    drainer = build_drainer(s, reg)
    assert (3.0, 10.0) == (drainer.delay, drainer.grace)


def test_no_section_is_an_empty_registry() -> None:
    reg = build_health(load_spec_text("version: 1\n"))
    assert () == reg.checks()
    assert (5.0, 20.0) == (
        build_drainer(load_spec_text("version: 1\n"), reg).delay,
        build_drainer(load_spec_text("version: 1\n"), reg).grace,
    )


@pytest.mark.parametrize(
    ("checks", "line", "field", "message"),
    [
        (
            "    - {type: tcp, host: h, port: 80, groups: [redyness]}\n",
            4,
            "health.checks[0].groups",
            "did you mean 'readiness'?",
        ),
        (
            "    - {type: tcp, host: h, port: 80}\n    - {type: tcp, name: b, host: h, port: 81,\n"
            "       timeout: 3s}\n",
            6,
            "health.checks[1].timeout",
            "would outlast the 'readiness' probe timeout of 1s",
        ),
        (
            "    - {type: http, url: 'ftp://x/'}\n",
            4,
            "health.checks[0].url",
            "must be an absolute http:// or https:// URL",
        ),
        (
            "    - {type: http, url: 'http://[::1'}\n",
            4,
            "health.checks[0].url",
            "is not a URL that parses",
        ),
        (
            "    - {type: redis, url: 'redis://:pw@db.internal:notaport/0'}\n",
            4,
            "health.checks[0].url",
            "the port must be an integer",
        ),
        (
            "    - {type: postgres, dsn_env: NOPE}\n",
            4,
            "health.checks[0].dsn_env",
            "environment variable 'NOPE' is not set",
        ),
        ("    - {type: redis}\n", 4, "health.checks[0]", "give exactly one of url or url_env"),
        (
            "    - {type: breaker, breaker: nope}\n",
            4,
            "health.checks[0].breaker",
            "unknown breaker 'nope'",
        ),
        (
            "    - {type: disk, path: /definitely/not/here}\n",
            4,
            "health.checks[0].path",
            "does not exist",
        ),
        ("    - {type: ping, host: h}\n", 4, "health.checks[0]", "type"),
        ("    - {type: tcp, host: h, port: 80, tiemout: 1s}\n", 4, "health.checks[0]", "tiemout"),
    ],
)
def test_errors_point_at_the_line_and_field(
    checks: str, line: int, field: str, message: str
) -> None:
    text = spec("  checks:\n" + checks)
    with pytest.raises(SpecError) as e:
        build_health(load_spec_text(text, "reliability.yaml"), env={})
    assert "reliability.yaml" == e.value.file
    assert line == e.value.line
    assert e.value.field is not None and e.value.field.startswith(field)
    assert message in str(e.value)


def test_a_redis_url_from_the_environment_is_checked_and_redacted() -> None:
    text = spec("  checks:\n    - {type: redis, url_env: CACHE}\n")
    with pytest.raises(SpecError) as e:
        build_health(load_spec_text(text, "r.yaml"), env={"CACHE": "redis://:hunter2@h/notadb"})
    assert "hunter2" not in str(e.value)
    assert ("r.yaml", 4) == (e.value.file, e.value.line)
    assert "health.checks[0].url_env" == e.value.field
    assert "the database in the path must be a number" in str(e.value)


def test_secrets_from_the_environment_never_reach_errors() -> None:
    text = spec("  checks:\n    - {type: postgres, dsn_env: DB}\n")
    with pytest.raises(SpecError) as e:
        build_health(load_spec_text(text, "r.yaml"), env={"DB": "host=x password=leak = ="})
    assert "leak" not in str(e.value)
    assert "dsn_env" == (e.value.field or "").split(".")[-1]
