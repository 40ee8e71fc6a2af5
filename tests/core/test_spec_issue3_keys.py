"""reliability.yaml keys for the issue-3 policies: each builds its policy; errors point at lines."""

from __future__ import annotations

import pytest

from buttress import (
    AdaptiveLimit,
    Bulkhead,
    CircuitBreaker,
    Hedge,
    LoadShedder,
    RateLimiter,
    Retry,
    SpecError,
)
from buttress.spec import build_pipeline, load_spec_text

FULL = """\
policies:
  api:
    order: given
    retry: {attempts: 2}
    hedge: {delay: 20ms, max_hedges: 2}
    circuit_breaker:
      failure_rate_threshold: 0.25
      minimum_calls: 20
      window_type: time
      window_size: 30
      break_duration: {base: 5s, cap: 1m}
      ignore_on: KeyError
    rate_limit: {rate: 100, burst: 10}
    load_shedding: {capacity: adaptive_limit, thresholds: {sheddable: 0.5}}
    adaptive_limit: {algorithm: gradient2, initial_limit: 10, min_limit: 2, max_limit: 50}
    bulkhead: {max_concurrent: 5, max_queue: 10, max_wait: 100ms}
"""


def test_every_key_builds_its_policy_in_the_given_order() -> None:
    pipeline = build_pipeline(load_spec_text(FULL, "r.yaml"), "api")
    kinds = [type(p) for p in pipeline.policies]
    assert [
        Retry,
        Hedge,
        CircuitBreaker,
        RateLimiter,
        LoadShedder,
        AdaptiveLimit,
        Bulkhead,
    ] == kinds


def test_hedge_shares_the_retry_budget_and_breaker_options_arrive() -> None:
    pipeline = build_pipeline(load_spec_text(FULL, "r.yaml"), "api")
    retry, hedge, breaker = pipeline.policies[:3]
    assert isinstance(retry, Retry)
    assert isinstance(hedge, Hedge)
    assert isinstance(breaker, CircuitBreaker)
    assert retry.budget is hedge.budget
    assert (KeyError,) == breaker.ignore_on
    bulkhead = pipeline.policies[-1]
    assert isinstance(bulkhead, Bulkhead)
    assert (5, 10, 0.1) == (bulkhead.max_concurrent, bulkhead.max_queue, bulkhead.max_wait)


def test_default_order_puts_breaker_inside_retry_and_bulkhead_innermost() -> None:
    text = FULL.replace("    order: given\n", "")
    pipeline = build_pipeline(load_spec_text(text, "r.yaml"), "api")
    names = [p.kind for p in pipeline.policies]
    assert names.index("retry") < names.index("circuit_breaker") < names.index("bulkhead")
    assert "bulkhead" == names[-1]


@pytest.mark.parametrize(
    ("snippet", "where", "needle"),
    [
        ("circuit_breaker: {failure_rate_threshold: 1.5}", "r.yaml:3:", "failure_rate_threshold"),
        ("circuit_breaker: {window_size: 0}", "r.yaml:3:", "window_size"),
        ("circuit_breaker: {minimum_cals: 3}", "r.yaml:3:", "did you mean 'minimum_calls'"),
        ("bulkhead: {max_concurrent: 0}", "r.yaml:3:", "max_concurrent"),
        ("rate_limit: {rate: -1}", "r.yaml:3:", "rate"),
        ("hedge: {delay: -5ms}", "r.yaml:3:", "must not be negative"),
        ("hedge: {percentile: 99}", "r.yaml:3:", "less than or equal to 1"),
        ("circuit_breaker: {window_size: 2.5}", "r.yaml:3:23:", "window_size"),
        ("load_shedding: {thresholds: {shedable: 0.5}}", "r.yaml:3:", "unknown criticality"),
        ("load_shedding: {capacity: adaptive_limit}", "r.yaml:3:", "needs an adaptive_limit"),
    ],
)
def test_bad_values_name_file_line_and_field(snippet: str, where: str, needle: str) -> None:
    text = f"policies:\n  api:\n    {snippet}\n"
    with pytest.raises(SpecError) as info:
        build_pipeline(load_spec_text(text, "r.yaml"), "api")
    message = str(info.value)
    assert message.startswith(where), message
    assert needle in message


def test_a_hedge_sharing_the_retry_budget_counts_each_call_once() -> None:
    from buttress import Pipeline

    pipeline = build_pipeline(load_spec_text(FULL, "r.yaml"), "api")
    retry, hedge = pipeline.policies[:2]
    assert isinstance(retry, Retry)
    assert isinstance(hedge, Hedge)
    assert retry.budget is hedge.budget
    assert hedge.count_requests is False
    built = Pipeline.builder("b").retry().hedge(delay=0.01).build()
    r2, h2 = built.policies
    assert isinstance(r2, Retry)
    assert isinstance(h2, Hedge)
    assert r2.budget is h2.budget
    assert h2.count_requests is False


def test_validate_command_builds_pipelines(tmp_path: object) -> None:
    import pathlib
    import subprocess
    import sys

    assert isinstance(tmp_path, pathlib.Path)
    bad = tmp_path / "reliability.yaml"
    bad.write_text("policies:\n  api:\n    load_shedding: {thresholds: {critcal: 0.9}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "spec", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert 2 == out.returncode
    assert f"{bad}:3:21: policies.api.load_shedding.thresholds:" in out.stderr
    assert "unknown criticality" in out.stderr
