"""docs/health.md stays true: its Python examples run, its manifests parse and probe paths the app
serves, its health+json example follows the draft."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from buttress.health import DEFAULT_PATHS
from buttress.health.spec import build_drainer, build_health
from buttress.policies.breaker import CircuitBreaker
from buttress.spec import load_spec_text

from .servers import CHECK_FIELDS, STATUSES, TOP_LEVEL_FIELDS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "health.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text())]


@pytest.mark.parametrize(
    "code", [c for lang, c in BLOCKS if lang == "python"], ids=lambda c: c.splitlines()[0][:40]
)
def test_python_examples_run(code: str) -> None:
    exec(compile(code, str(PAGE), "exec"), {"__name__": "docs_example"})


def test_reliability_yaml_example_builds() -> None:
    (text,) = [c for lang, c in BLOCKS if lang == "yaml" and c.startswith("version: 1\nhealth:")]
    env = {"DATABASE_URL": "postgresql://app@db/app", "REDIS_URL": "redis://cache:6379/0"}
    breaker = CircuitBreaker(name="payments")
    spec = load_spec_text(text, "reliability.yaml")
    registry = build_health(spec, env=env, breakers={"payments": breaker})
    assert [
        "db:query",
        "cache:ping",
        "rates:responseTime",
        "disk:utilization",
        "payments:state",
    ] == [c.key for c in registry.checks("readiness")]
    assert ["smtp:connect"] == [c.key for c in registry.checks("batch")]
    assert (5.0, 20.0) == (build_drainer(spec, registry).delay, build_drainer(spec, registry).grace)


def test_manifests_probe_the_served_paths() -> None:
    manifests = [
        yaml.safe_load(c) for lang, c in BLOCKS if lang == "yaml" and not c.startswith("version")
    ]
    assert 3 == len(manifests)
    containers = manifests[0]["spec"]["template"]["spec"]["containers"]
    paths = {
        containers[0][probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {"/health/started", "/health/live", "/health/ready"} == paths
    assert paths <= set(DEFAULT_PATHS)
    assert {"readiness", "liveness"} == {
        manifests[1][p]["grpc"]["service"] for p in ("readinessProbe", "livenessProbe")
    }
    assert "/health/live" in manifests[2]["livenessProbe"]["exec"]["command"][3]


def test_health_json_example_follows_the_draft() -> None:
    (example,) = [json.loads(c) for lang, c in BLOCKS if lang == "json"]
    assert set(example) <= TOP_LEVEL_FIELDS
    assert example["status"] in STATUSES
    for key, items in example["checks"].items():
        assert 2 == len(key.split(":"))
        for item in items:
            assert set(item) <= CHECK_FIELDS
            assert ("output" in item) == (item["status"] != "pass")
