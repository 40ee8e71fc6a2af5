"""The math module against the SRE Workbook's published figures, and calendar windows."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from buttress.slo import math as m
from buttress.slo.spec import DEFAULT_TIERS, SLOSpec

THIRTY_DAYS = 30 * 86400.0


def test_999_over_30_days_allows_43_2_minutes():
    assert 43.2 == pytest.approx(m.error_budget(0.001, THIRTY_DAYS) / 60)


def test_default_tier_burn_rates_are_14_4_6_3_1():
    assert [14.4, 6.0, 3.0, 1.0] == pytest.approx([t.threshold(THIRTY_DAYS) for t in DEFAULT_TIERS])


def test_thresholds_rescale_with_the_window():
    # BR = f x P / W: 2% of a 7-day budget in 1h is 3.36.
    assert 3.36 == pytest.approx(m.burn_rate_threshold(0.02, 7 * 86400, 3600))


def test_15_percent_errors_trip_the_14_4x_1h_page_after_5_76_minutes():
    tier = m.AlertTier("page-1h", "page", 3600, 300, 14.4)
    assert 5.76 == pytest.approx(m.detection_time(0.15, 0.001, tier) / 60)


def test_3m_requests_1500_errors_at_999_consume_half_the_budget():
    assert 0.5 == pytest.approx(m.budget_consumed(1500, 3_000_000, 0.001))
    assert 0.5 == pytest.approx(m.budget_remaining(1500, 3_000_000, 0.001))


def test_a_90_percent_slo_can_never_fire_the_2_percent_in_1h_page():
    tier = m.AlertTier("page-1h", "page", 3600, 300, 14.4)
    assert not m.can_fire(14.4, 0.1)
    # Even 100% errors over both windows stay below 14.4 x 10% = 144%.
    assert not m.tier_fires(1000, 1000, 100, 100, budget_ratio=0.1, tier=tier)
    assert math.inf == m.detection_time(1.0, 0.1, tier)
    slo = SLOSpec.model_validate(
        {"name": "x", "service": "s", "objective": 90, "sli": {"kind": "ratio", "pipeline": "p"}}
    )
    assert any("page-1h" in w and "never fire" in w for w in slo.warnings())


def test_burn_rate_and_time_to_exhaustion():
    assert 14.4 == pytest.approx(m.burn_rate(0.0144, 0.001))
    # Half the budget left, burning 2x: a quarter of the period.
    assert THIRTY_DAYS / 4 == pytest.approx(m.time_to_exhaustion(0.5, 2.0, THIRTY_DAYS))
    assert 0.0 == m.time_to_exhaustion(-0.1, 2.0, THIRTY_DAYS)
    assert math.inf == m.time_to_exhaustion(0.5, 0.0, THIRTY_DAYS)


def test_low_traffic_guard_holds_alerts_until_enough_events():
    tier = m.AlertTier("t", "page", 3600, 300, 14.4, min_events=100)
    assert not m.tier_fires(50, 99, 5, 10, budget_ratio=0.001, tier=tier)
    assert m.tier_fires(50, 100, 5, 10, budget_ratio=0.001, tier=tier)


def test_alert_timeline_fires_at_the_first_minute_after_5_76():
    tier = m.AlertTier("page-1h", "page", 3600, 300, 14.4)
    total = [1000] * 120
    bad = [0] * 60 + [150] * 60  # 15% errors from minute 60
    tl = m.alert_timeline(bad, total, 0.001, [tier])
    first = next(k for k, f in enumerate(tl) if f)
    assert 66 == first  # 5.76 minutes after the start: the evaluation at +6 minutes


def test_window_sums():
    assert [0, 1, 3, 5, 7] == m.window_sums([1, 2, 3, 4], 2)


def test_calendar_month_across_the_boundary():
    tz = "Europe/Paris"
    # 23:30 UTC on 31 January is already 1 February in Paris.
    start, end = m.calendar_period(datetime(2024, 1, 31, 23, 30, tzinfo=UTC), "month", tz)
    assert (2024, 2, 1, 0) == (start.year, start.month, start.day, start.hour)
    assert (2024, 3, 1) == (end.year, end.month, end.day)
    assert 29 * 86400 == end.timestamp() - start.timestamp()  # a leap February
    s2, _ = m.calendar_period(datetime(2024, 1, 31, 22, 30, tzinfo=UTC), "month", tz)
    assert (2024, 1, 1) == (s2.year, s2.month, s2.day)


def test_calendar_month_with_a_daylight_saving_change():
    # March 2024 in Paris loses an hour on the 31st; October gains one on the 27th.
    start, end = m.calendar_period(datetime(2024, 3, 15, tzinfo=UTC), "month", "Europe/Paris")
    assert 31 * 86400 - 3600 == end.timestamp() - start.timestamp()
    start, end = m.calendar_period(datetime(2024, 10, 15, tzinfo=UTC), "month", "Europe/Paris")
    assert 31 * 86400 + 3600 == end.timestamp() - start.timestamp()
    # Same month in UTC: no change.
    start, end = m.calendar_period(datetime(2024, 3, 15, tzinfo=UTC), "month", "UTC")
    assert 31 * 86400 == end.timestamp() - start.timestamp()


def test_calendar_week_and_quarter():
    start, end = m.calendar_period(datetime(2024, 3, 31, 12, tzinfo=UTC), "week", "UTC")
    assert (3, 25) == (start.month, start.day)  # Monday
    assert 7 * 86400 == end.timestamp() - start.timestamp()
    start, end = m.calendar_period(datetime(2024, 11, 2, tzinfo=UTC), "quarter", "UTC")
    assert ((2024, 10, 1), (2025, 1, 1)) == (
        (start.year, start.month, start.day),
        (end.year, end.month, end.day),
    )
    with pytest.raises(ValueError, match="aware"):
        m.calendar_period(datetime(2024, 1, 1), "month", "UTC")
