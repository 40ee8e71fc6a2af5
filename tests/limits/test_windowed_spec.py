"""``adaptive_limit.window`` in reliability.yaml: it builds the windowed limit; bad values point at
the file, line and field."""

from __future__ import annotations

import pytest

from buttress import AdaptiveLimit, SpecError
from buttress.policies.limits import Gradient2, WindowSpec
from buttress.spec import build_pipeline, load_spec_text


def built(snippet: str) -> AdaptiveLimit:
    text = f"policies:\n  api:\n    adaptive_limit: {snippet}\n"
    (policy,) = build_pipeline(load_spec_text(text, "r.yaml"), "api").policies
    assert isinstance(policy, AdaptiveLimit)
    return policy


def test_window_true_is_netflix_defaults_and_absent_is_per_sample() -> None:
    assert WindowSpec() == built("{algorithm: vegas, window: true}").window
    assert built("{algorithm: vegas}").window is None
    assert built("{algorithm: aimd, window: false}").sample_window is None


def test_window_fields_arrive() -> None:
    policy = built(
        "{algorithm: gradient2, window: {min_window_time: 500ms, max_window_time: 2s,"
        " window_size: 20, min_rtt_threshold: 1ms, percentile: 0.9, max_samples: 64}}"
    )
    assert isinstance(policy.algorithm, Gradient2)
    assert (
        WindowSpec(
            min_window_time=0.5,
            max_window_time=2.0,
            window_size=20,
            min_rtt_threshold=0.001,
            percentile=0.9,
            max_samples=64,
        )
        == policy.window
    )
    assert policy.sample_window is not None


@pytest.mark.parametrize(
    ("snippet", "needle"),
    [
        ("{window: {window_size: 0}}", "window_size"),
        ("{window: {percentile: 1.5}}", "percentile"),
        ("{window: {min_window_time: 0s}}", "min_window_time"),
        ("{window: {windowsize: 5}}", "did you mean 'window_size'"),
        ("{window: maybe}", "window"),
        # passes the model, refused by WindowSpec at build time: still the file and line
        ("{window: {min_window_time: 2s}}", "max_window_time"),
    ],
)
def test_bad_window_values_name_file_line_and_field(snippet: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        built(snippet)
    message = str(info.value)
    assert message.startswith("r.yaml:3:"), message
    assert needle in message


def test_json_schema_offers_true_false_or_a_mapping() -> None:
    from buttress.spec.document import json_schema

    defs = json_schema()["$defs"]
    window = defs["AdaptiveLimitSpec"]["properties"]["window"]
    assert [{"type": "boolean"}, {"$ref": "#/$defs/AdaptiveWindowSpec"}, {"type": "null"}] == (
        window["anyOf"]
    )
    assert {
        "min_window_time",
        "max_window_time",
        "window_size",
        "min_rtt_threshold",
        "percentile",
        "max_samples",
    } == set(defs["AdaptiveWindowSpec"]["properties"])
