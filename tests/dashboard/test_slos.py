"""The SLO board against the evaluator it is built on (the oracle: ``buttress slo status``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.dashboard.slos import burndown, recent_traffic, slo_board, so_far, unmeasured_slis
from buttress.slo.evaluator import evaluate
from buttress.slo.load import load_slos
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore

NOW_MIN = 29_000_000  # a minute number (about 2025); evaluations happen at NOW_MIN * 60


def spec(tmp: Path, body: str) -> list[SLOSpec]:
    f = tmp / "r.yaml"
    f.write_text("version: 1\nservice: shop\nslos:\n" + body)
    return load_slos(f)


ROLLING = """
  - name: avail
    objective: 99
    window: 1d
    alerting: {tiers: [{name: fast, severity: page, long_window: 1h, short_window: 5m,
                        budget_fraction: 0.02}]}
    sli: {kind: ratio, pipeline: p}
"""


@pytest.fixture
def store(tmp_path: Path) -> SLIStore:
    return SLIStore(tmp_path / "s.db")


def test_last_burndown_point_is_the_status(tmp_path: Path, store: SLIStore) -> None:
    (slo,) = spec(tmp_path, ROLLING)
    rows = [("avail", NOW_MIN - k, 100 - (k % 5), 100) for k in range(1, 200)]
    store.add(rows)
    bd = burndown(slo, store, NOW_MIN * 60)
    (status,) = evaluate([slo], store, NOW_MIN * 60)
    assert NOW_MIN * 60 == bd["x"][-1]
    assert status.budget_remaining == pytest.approx(bd["remaining"][-1], abs=1e-12)
    # The series starts at the first minute that sees data.
    assert (NOW_MIN - 199 + 1) * 60 == bd["x"][0]


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50)).map(lambda t: (min(t), max(t))),
        min_size=1,
        max_size=90,
    ),
    window=st.sampled_from(["30m", "1h", "2h"]),
    probe=st.integers(0, 89),
)
def test_every_burndown_point_equals_the_evaluator_then(
    counts: list[tuple[int, int]], window: str, probe: int
) -> None:
    """Property: the burn-down at minute m is what the evaluator says at m (rolling windows
    shorter and longer than the data)."""
    with tempfile.TemporaryDirectory() as d:
        (slo,) = spec(
            Path(d),
            f"""
  - name: s
    objective: 95
    window: {window}
    alerting: {{tiers: []}}
    sli: {{kind: ratio, pipeline: p}}
""",
        )
        with SLIStore(Path(d) / "s.db") as store:
            start = NOW_MIN - len(counts)
            store.add([("s", start + i, g, t) for i, (g, t) in enumerate(counts)])
            bd = burndown(slo, store, NOW_MIN * 60, max_points=10_000)
            assert bd["x"], "data before now must give a burn-down"
            assert NOW_MIN * 60 == bd["x"][-1]
            i = probe % len(bd["x"])
            (status,) = evaluate([slo], store, bd["x"][i])
            assert status.budget_remaining == pytest.approx(bd["remaining"][i], abs=1e-9)


def test_calendar_latency_slo_with_exclusions(tmp_path: Path, store: SLIStore) -> None:
    (slo,) = spec(
        tmp_path,
        """
  - name: lat
    objective: 99
    window: {calendar: month, timezone: UTC}
    sli: {kind: latency, pipeline: p, threshold: 100ms}
    exclusions:
      - {start: 2025-02-18T10:00:00Z, end: 2025-02-18T11:00:00Z, reason: migration}
""",
    )
    from datetime import UTC, datetime

    at = datetime(2025, 2, 18, 12, 0, tzinfo=UTC).timestamp()
    now = int(at // 60)
    store.add([("lat", now - k, 90 if 61 <= k <= 120 else 100, 100) for k in range(1, 600)])
    bd = burndown(slo, store, at)
    (status,) = evaluate([slo], store, at)
    assert status.excluded_minutes > 0
    assert status.budget_remaining == pytest.approx(bd["remaining"][-1], abs=1e-12)
    assert 1.0 == pytest.approx(status.budget_remaining)  # the bad hour was excluded


def test_timeslices_burndown_uses_the_evaluator(tmp_path: Path, store: SLIStore) -> None:
    (slo,) = spec(
        tmp_path,
        """
  - name: minutes
    objective: 95
    window: 1d
    alerting: {tiers: []}
    sli: {kind: window, slice: 1m, target: 0.9, of: {kind: ratio, pipeline: p}}
""",
    )
    store.add([("minutes", NOW_MIN - k, 80 if k % 10 == 0 else 100, 100) for k in range(1, 100)])
    bd = burndown(slo, store, NOW_MIN * 60)
    (status,) = evaluate([slo], store, NOW_MIN * 60)
    assert 30 >= len(bd["x"])
    assert NOW_MIN * 60 == bd["x"][-1]
    assert status.budget_remaining == pytest.approx(bd["remaining"][-1])


def test_no_data_gives_empty_series(tmp_path: Path, store: SLIStore) -> None:
    (slo,) = spec(tmp_path, ROLLING)
    assert {"x": [], "remaining": []} == burndown(slo, store, NOW_MIN * 60)
    store.add([("avail", NOW_MIN, 1, 1)])  # only the minute still filling
    assert {"x": [], "remaining": []} == burndown(slo, store, NOW_MIN * 60 + 30)


def test_long_periods_are_thinned_keeping_the_last_point(tmp_path: Path, store: SLIStore) -> None:
    (slo,) = spec(tmp_path, ROLLING)
    store.add([("avail", NOW_MIN - k, 99, 100) for k in range(1, 1400)])
    bd = burndown(slo, store, NOW_MIN * 60, max_points=100)
    assert len(bd["x"]) <= 100
    assert NOW_MIN * 60 == bd["x"][-1]
    assert bd["x"] == sorted(bd["x"])


def test_board_sorted_by_budget_with_the_alert_table(tmp_path: Path, store: SLIStore) -> None:
    slos = spec(
        tmp_path,
        ROLLING
        + """
  - name: healthy
    objective: 99
    window: 1d
    alerting: {tiers: []}
    sli: {kind: ratio, pipeline: q}
  - name: burning
    objective: 99
    window: 1d
    alerting: {tiers: [{name: fast, severity: page, long_window: 1h, short_window: 5m,
                        budget_fraction: 0.02}]}
    sli: {kind: ratio, pipeline: r}
""",
    )
    store.add([("healthy", NOW_MIN - k, 100, 100) for k in range(1, 60)])
    store.add([("avail", NOW_MIN - k, 99, 100) for k in range(1, 60)])
    store.add([("burning", NOW_MIN - k, 50, 100) for k in range(1, 60)])
    store.add([("orphan", NOW_MIN - 1, 3, 4)])
    board = slo_board(slos, store, NOW_MIN * 60)
    assert ["burning", "avail", "healthy"] == [e["name"] for e in board]
    statuses = {s.name: s for s in evaluate(slos, store, NOW_MIN * 60)}
    for e in board:
        st_ = statuses[e["name"]]
        assert st_.budget_remaining == e["budget_remaining"]
        assert st_.firing == [t["name"] for t in e["tiers"] if t["firing"]]
    (fast,) = board[0]["tiers"]
    assert ("1h", "5m", True) == (fast["long_window"], fast["short_window"], fast["firing"])
    # burn = error ratio / budget ratio = 0.5 / 0.01
    assert 50.0 == pytest.approx(fast["long_burn"])
    assert 0.02 * 86400 / 3600 == pytest.approx(fast["threshold"])
    assert [{"name": "orphan"}] == [{"name": u["name"]} for u in unmeasured_slis(slos, store)]


def test_recent_traffic_includes_the_filling_minute(store: SLIStore) -> None:
    store.add([("s", NOW_MIN, 3, 4), ("s", NOW_MIN - 2, 10, 10)])
    r = recent_traffic(store, "s", NOW_MIN * 60 + 10, minutes=3)
    assert [(NOW_MIN - 2) * 60, (NOW_MIN - 1) * 60, NOW_MIN * 60] == r["x"]
    assert [10, 0, 4] == r["total"]
    assert [0.0, None, 0.25] == r["error_ratio"]


def test_a_run_younger_than_a_minute_has_headline_figures(tmp_path: Path, store: SLIStore) -> None:
    """Only the minute still filling has data (a quick lab run): the settled figures are empty,
    ``so_far`` counts the filling minute and marks it partial."""
    (slo,) = spec(tmp_path, ROLLING)
    store.add([("avail", NOW_MIN, 97, 100)])
    at = NOW_MIN * 60 + 20
    (e,) = slo_board([slo], store, at)
    assert (0, None, 1.0) == (e["total"], e["sli"], e["budget_remaining"])
    assert {"x": [], "remaining": []} == e["burndown"]
    assert (NOW_MIN * 60, 100, 0.03) == (
        e["recent"]["x"][-1],
        e["recent"]["total"][-1],
        pytest.approx(e["recent"]["error_ratio"][-1]),
    )
    sf = e["so_far"]
    assert (True, at, 97, 100) == (sf["partial"], sf["at"], sf["partial_good"], sf["partial_total"])
    assert (97, 100) == (sf["good"], sf["total"])
    assert 0.97 == pytest.approx(sf["sli"])
    # consumed = bad / (b x total) = 3 / (0.01 x 100) = 3: the budget is overspent so far.
    assert -2.0 == pytest.approx(sf["budget_remaining"])


def test_so_far_is_the_evaluator_at_the_end_of_the_filling_minute(
    tmp_path: Path, store: SLIStore
) -> None:
    (slo,) = spec(tmp_path, ROLLING)
    store.add([("avail", NOW_MIN - k, 100 - (k % 3), 100) for k in range(1, 50)])
    at = NOW_MIN * 60 + 45
    (quiet,) = so_far([slo], store, at)
    (settled,) = evaluate([slo], store, NOW_MIN * 60)
    assert (False, 0) == (quiet["partial"], quiet["partial_total"])
    assert (settled.total, settled.sli) == (quiet["total"], quiet["sli"])
    store.add([("avail", NOW_MIN, 5, 10)])
    (busy,) = so_far([slo], store, at)
    (oracle,) = evaluate([slo], store, (NOW_MIN + 1) * 60)
    assert (True, 10) == (busy["partial"], busy["partial_total"])
    assert (settled.total + 10, oracle.total) == (busy["total"], busy["total"])
    assert oracle.sli == busy["sli"]
    assert oracle.budget_remaining == busy["budget_remaining"]
    # The settled figures and the burn-down ignore the filling minute.
    (e,) = slo_board([slo], store, at)
    assert settled.budget_remaining == e["budget_remaining"]
    assert NOW_MIN * 60 == e["burndown"]["x"][-1]
    assert [] == so_far([], store, at)
