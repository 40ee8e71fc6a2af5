"""reliability.yaml: line-aware errors, closest-key suggestions, and building pipelines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from buttress import Fallback, Retry, RetryBudget, SpecError, Timeout
from buttress.policies.budget import TokenBucketBudget
from buttress.spec import build_pipeline, build_pipelines, json_schema, load_spec, load_spec_text
from buttress.testing import FakeClock

GOOD = """\
service: checkout
policies:
  payments:
    fallback: {value: declined}
    timeout: 2s
    retry:
      attempts: 4
      max_elapsed: 1500ms
      on: [ConnectionError, TimeoutError]
      backoff: {kind: exponential, base: 100ms, cap: 5s, jitter: decorrelated}
      budget: {ratio: 0.1, min_per_second: 5, ttl: 30s}
    attempt_timeout: 500ms
  inventory:
    order: given
    retry:
      budget: {mode: token_bucket, max_tokens: 50, token_ratio: 0.25}
    fallback: {value: [], on: ConnectionError, on_rejected: true}
  unbudgeted:
    retry: {budget: false}
"""


def error_of(text: str, file: str = "reliability.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, file)
    return info.value


def test_a_good_file_builds_its_pipelines(tmp_path: Path) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(GOOD)
    clock = FakeClock()
    pipelines = build_pipelines(load_spec(path), clock=clock)
    assert ["payments", "inventory", "unbudgeted"] == list(pipelines)

    pay = pipelines["payments"]
    assert ["fallback", "timeout", "retry", "timeout"] == [p.kind for p in pay.policies]
    fb, total, retry, attempt = pay.policies
    assert isinstance(fb, Fallback) and "declined" == fb.value
    assert isinstance(total, Timeout) and (2.0, "total") == (total.seconds, total.scope)
    assert isinstance(attempt, Timeout) and (0.5, "attempt") == (attempt.seconds, attempt.scope)
    assert isinstance(retry, Retry)
    assert (4, 1.5, (ConnectionError, TimeoutError)) == (
        retry.attempts,
        retry.max_elapsed,
        retry.on,
    )
    assert ("exponential", 0.1, 5.0, "decorrelated") == (
        retry.backoff.kind,
        retry.backoff.base,
        retry.backoff.cap,
        retry.backoff.jitter,
    )
    assert isinstance(retry.budget, RetryBudget)
    assert (0.1, 5.0, 30.0) == (retry.budget.ratio, retry.budget.min_per_second, retry.budget.ttl)
    assert retry.clock is clock

    inv = pipelines["inventory"]
    assert ["retry", "fallback"] == [p.kind for p in inv.policies]  # order: given
    inv_retry, inv_fb = inv.policies
    assert isinstance(inv_retry, Retry) and isinstance(inv_retry.budget, TokenBucketBudget)
    assert (50.0, 0.25) == (inv_retry.budget.max_tokens, inv_retry.budget.token_ratio)
    assert isinstance(inv_fb, Fallback) and inv_fb.on_rejected is True

    unb = pipelines["unbudgeted"].policies[0]
    assert isinstance(unb, Retry) and unb.budget is None


def test_built_pipeline_runs() -> None:
    clock = FakeClock()
    spec = load_spec_text(GOOD)
    p = build_pipeline(spec, "payments", clock=clock)

    def down() -> None:
        raise ConnectionError

    assert "declined" == p.call(down)


def test_unknown_key_names_file_line_column_field_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text("policies:\n  payments:\n    retry:\n      atempts: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    e = info.value
    assert (str(path), 4, 7, "policies.payments.retry.atempts") == (
        e.file,
        e.line,
        e.column,
        e.field,
    )
    assert "unknown key 'atempts'; did you mean 'attempts'?" == e.message
    assert f"{path}:4:7: policies.payments.retry.atempts: unknown key 'atempts'" in str(e)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "policies:\n  p:\n    retry:\n      backoff: {jiter: full}\n",
            "reliability.yaml:4:17: policies.p.retry.backoff.jiter",
            "unknown key 'jiter'; did you mean 'jitter'?",
        ),
        (
            "policies:\n  p:\n    retry:\n      budget:\n        ratoi: 0.5\n",
            "reliability.yaml:5:9: policies.p.retry.budget.ratoi",
            "unknown key 'ratoi'; did you mean 'ratio'?",
        ),
        (
            "polices: {}\n",
            "reliability.yaml:1:1: polices",
            "unknown key 'polices'; did you mean 'policies'?",
        ),
        (
            "policies:\n  p:\n    timeout: {second: 3}\n",
            "reliability.yaml:3:15: policies.p.timeout.second",
            "unknown key 'second'; did you mean 'seconds'?",
        ),
        (
            "policies:\n  p:\n    retry:\n      attempts: 0\n",
            "reliability.yaml:4:7: policies.p.retry.attempts",
            "greater than or equal to 1 (got 0)",
        ),
        (
            "policies:\n  p:\n    timeout: -2s\n",
            "reliability.yaml:3:5: policies.p.timeout",
            "must not be negative",
        ),
        (
            "policies:\n  p:\n    retry:\n      backoff: {base: 2s, cap: 1s}\n",
            "reliability.yaml:4:27: policies.p.retry.backoff.cap",
            "invalid cap=1.0: must be >= base (2s)",
        ),
        (
            "policies:\n  p:\n    retry:\n      budget: {ratio: 1.5}\n",
            "reliability.yaml:4:16: policies.p.retry.budget.ratio",
            "less than or equal to 1 (got 1.5)",
        ),
        (
            "policies:\n  p:\n    retry:\n      budget: {max_tokens: 5}\n",
            "reliability.yaml:4:7: policies.p.retry.budget",
            "max_tokens do(es) not apply to mode 'ratio'",
        ),
        (
            "policies:\n  p:\n    retry:\n      on: [NoSuchError]\n",
            "reliability.yaml:4:7: policies.p.retry.on",
            "'NoSuchError' is not an exception class",
        ),
        (
            "policies:\n  p:\n    retry: {attempts: 2}\n    retry: {attempts: 3}\n",
            "reliability.yaml:4:5: policies.p.retry",
            "duplicate key 'retry'",
        ),
        ("policies:\n  p:\n    retry: [attempts: 2\n", "reliability.yaml:4:1", "YAML syntax error"),
    ],
)
def test_errors_point_at_the_spot(text: str, where: str, message: str) -> None:
    e = error_of(text)
    rendered = str(e).splitlines()[0]
    assert rendered.startswith((where + ":", where + " "))
    assert message in rendered


def test_every_problem_is_listed_in_file_order() -> None:
    e = error_of("policies:\n  a:\n    retry: {attemps: 2}\n  b:\n    timout: 1s\n")
    lines = str(e).splitlines()
    assert lines[0].startswith("reliability.yaml:3:13: policies.a.retry.attemps: unknown key")
    assert "(and 1 more)" == lines[1]
    assert lines[2].strip().startswith("reliability.yaml:5:5: policies.b.timout: unknown key")
    assert 2 == len(e.problems)  # type: ignore[attr-defined]


def test_unknown_pipeline_name_lists_the_known_ones() -> None:
    with pytest.raises(
        SpecError, match=r"no pipeline named 'payment' \(known: inventory, payments"
    ):
        build_pipeline(load_spec_text(GOOD), "payment")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_json_schema_describes_the_policies() -> None:
    schema = json_schema()
    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    budget = schema["$defs"]["RetrySpec"]["properties"]["budget"]
    assert {"const": False, "type": "boolean"} in budget["anyOf"]
    assert False is schema["$defs"]["RetrySpec"].get("additionalProperties")


def test_cli_schema_is_json() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "spec", "schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Buttress reliability.yaml" == json.loads(out.stdout)["title"]


def test_what_only_the_policy_refuses_still_points_at_the_file() -> None:
    # The options type refuses it while loading, at the key itself.
    with pytest.raises(SpecError) as info:
        load_spec_text(
            "policies:\n  p:\n    retry:\n      backoff: {multiplier: .inf}\n", "reliability.yaml"
        )
    assert str(info.value).startswith("reliability.yaml:4:17: policies.p.retry.backoff.multiplier")
    # What needs another key of the pipeline is refused when the pipeline is built.
    spec = load_spec_text(
        "policies:\n  p:\n    load_shedding: {capacity: adaptive_limit}\n", "reliability.yaml"
    )
    with pytest.raises(SpecError) as info:
        build_pipeline(spec, "p")
    assert str(info.value).startswith(
        "reliability.yaml:3:21: policies.p.load_shedding.capacity: invalid capacity="
    ), str(info.value)
