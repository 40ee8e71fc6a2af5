"""One options type per policy: YAML with only the required keys and code with defaults agree,
and every constructor takes its defaults from its options type."""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

import pytest

from buttress.errors import ConfigError
from buttress.options import Options
from buttress.policies.backoff import Backoff
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.budget import RetryBudget, TokenBucketBudget
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.fallback import Fallback
from buttress.policies.hedge import Hedge
from buttress.policies.limits import AIMD, AdaptiveLimit, Gradient2, Vegas
from buttress.policies.ratelimit import RateLimiter
from buttress.policies.retry import Retry
from buttress.policies.shed import LoadShedder
from buttress.policies.timeout import Timeout
from buttress.spec import build_pipeline, json_schema, load_spec_text

# key in reliability.yaml, its value with only the required keys, the same policy built in code
CASES: list[tuple[str, str, Any]] = [
    ("fallback", "{}", lambda: Fallback(None)),
    ("timeout", "2s", lambda: Timeout(2)),
    ("attempt_timeout", "2s", lambda: Timeout(2, scope="attempt")),
    ("retry", "{}", Retry),
    ("hedge", "{}", Hedge),
    ("circuit_breaker", "{}", CircuitBreaker),
    ("rate_limit", "{rate: 5}", lambda: RateLimiter(5)),
    ("load_shedding", "{}", LoadShedder),
    ("adaptive_limit", "{}", AdaptiveLimit),
    ("bulkhead", "{}", Bulkhead),
]


@pytest.mark.parametrize(("key", "value", "code"), CASES, ids=[c[0] for c in CASES])
def test_yaml_with_required_keys_equals_code_with_defaults(key: str, value: str, code: Any) -> None:
    spec = load_spec_text(f"policies:\n  p:\n    {key}: {value}\n")
    (built,) = build_pipeline(spec, "p").policies
    expected = code()
    assert type(expected) is type(built)
    assert expected.options == built.options


def test_every_policy_key_is_covered() -> None:
    from buttress.spec.policies import PipelineSpec

    keys = set(PipelineSpec.model_fields) - {"order", "state"}
    assert keys == {c[0] for c in CASES}


CLASSES: list[type[Any]] = [
    Backoff,
    RetryBudget,
    TokenBucketBudget,
    Retry,
    Timeout,
    Fallback,
    CircuitBreaker,
    Hedge,
    RateLimiter,
    Bulkhead,
    AdaptiveLimit,
    LoadShedder,
    AIMD,
    Vegas,
    Gradient2,
]


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_constructor_takes_every_option_with_its_default(cls: type[Any]) -> None:
    options: type[Options] = cls.options_type
    params = inspect.signature(cls).parameters
    for f, _ in options.describe():
        assert f.name in params, f"{cls.__name__} lacks {f.name}"
        default = params[f.name].default
        if f.default is dataclasses.MISSING:
            assert default is inspect.Parameter.empty, f.name
        elif cls is Fallback and f.name == "value":
            continue  # a sentinel: give value= or handler=
        else:
            assert default == f.default, f"{cls.__name__}.{f.name}: {default!r} != {f.default!r}"
    # and the docstring lists every option
    for f, _ in options.describe():
        assert f":param {f.name}:" in (cls.__doc__ or "")


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_defaults_build(cls: type[Any]) -> None:
    options = cls.options_type
    required = {f.name for f, _ in options.describe() if f.default is dataclasses.MISSING}
    kwargs = {name: {"rate": 5, "seconds": 1}[name] for name in required}
    obj = cls(None, **kwargs) if cls is Fallback else cls(**kwargs)
    assert obj.options == options(**kwargs)


@pytest.mark.parametrize(
    ("build", "parameter"),
    [
        (lambda: Bulkhead(True), "max_concurrent"),
        (lambda: Retry(attempts=2.0), "attempts"),
        (lambda: RateLimiter(float("nan")), "rate"),
        (lambda: CircuitBreaker(failure_rate_threshold=float("inf")), "failure_rate_threshold"),
        (lambda: Hedge(min_delay=1, max_delay=0.5), "max_delay"),
        (lambda: Backoff(base=1, cap=0.5), "cap"),
        (lambda: AIMD(initial_limit=5, min_limit=10), "initial_limit"),
        (lambda: Timeout(0), "seconds"),
    ],
)
def test_one_set_of_rules_names_the_parameter(build: Any, parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert parameter == info.value.parameter


def test_schema_carries_defaults_bounds_and_docs_from_the_options() -> None:
    defs = json_schema()["$defs"]
    bulkhead = defs["BulkheadSpec"]["properties"]
    assert 10 == bulkhead["max_concurrent"]["default"]
    assert 1 == bulkhead["max_concurrent"]["minimum"]
    assert "Little's law" in bulkhead["max_concurrent"]["description"]
    assert 1.0 == bulkhead["max_wait"]["default"]  # the constructor's default, not None
    text = json.dumps(defs["RetrySpec"])
    assert "Total attempts" in text


def test_builder_methods_take_the_constructors_and_are_named_like_the_classes() -> None:
    from buttress.pipeline import Pipeline

    built = (
        Pipeline.builder("b")
        .fallback()
        .timeout(2)
        .retry(attempts=4)
        .hedge()
        .circuit_breaker(minimum_calls=5)
        .rate_limiter(5)
        .load_shedder()
        .adaptive_limit()
        .bulkhead(3)
        .attempt_timeout(1)
        .build()
    )
    by_kind = {
        type(p).__name__ + ("/attempt" if getattr(p, "scope", "") == "attempt" else ""): p
        for p in built.policies
    }
    assert Retry(attempts=4).options == by_kind["Retry"].options
    assert CircuitBreaker(minimum_calls=5).options == by_kind["CircuitBreaker"].options
    assert RateLimiter(5).options == by_kind["RateLimiter"].options
    assert Bulkhead(3).options == by_kind["Bulkhead"].options
    assert Timeout(1, scope="attempt").options == by_kind["Timeout/attempt"].options
    assert Fallback(None).options == by_kind["Fallback"].options
    # the hedge shares the retry's budget, counting each call once
    assert by_kind["Hedge"].budget is by_kind["Retry"].budget
    assert not by_kind["Hedge"].count_requests
    # the builder's methods carry the constructors' signatures
    for method, cls in [("bulkhead", Bulkhead), ("rate_limiter", RateLimiter), ("retry", Retry)]:
        assert hasattr(Pipeline.builder("x"), method)
        assert cls.__name__.lower().startswith(method.split("_")[0])
    with pytest.warns(DeprecationWarning, match="rate_limiter"):
        Pipeline.builder("old").rate_limit(5)
