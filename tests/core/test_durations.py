"""format_duration is the inverse of parse_duration, and never fails on a number the spec let in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from buttress.spec.types import format_duration, parse_duration


@given(st.integers(min_value=1, max_value=10**15))
def test_whole_milliseconds_round_trip(ms: int) -> None:
    text = format_duration(ms / 1000)
    assert parse_duration(text) == ms / 1000


@given(st.floats(min_value=0, allow_nan=False, allow_infinity=True))
def test_any_non_negative_number_formats_to_text_parse_duration_reads(seconds: float) -> None:
    # A fuzzed reliability.yaml once carried an RTO of 1e308 s into a message and crashed on it.
    text = format_duration(seconds)
    assert isinstance(text, str) and text
    if seconds < 1e15:
        assert abs(parse_duration(text) - seconds) <= 0.0005 + seconds * 1e-12


def test_units_are_the_largest_that_divide() -> None:
    assert format_duration(3600) == "1h"
    assert format_duration(5400) == "90m"
    assert format_duration(86400) == "1d"
    assert format_duration(86400, days_from=2) == "24h"
    assert format_duration(0.25) == "250ms"
    assert format_duration(1e308) == "1e+308s"
