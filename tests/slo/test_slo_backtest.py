"""The backtest: incidents found in history, the Workbook's four criteria per tier."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import SpecError
from buttress.slo.backtest import backtest, read_csv
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore

SLO = {
    "name": "api",
    "service": "svc",
    "objective": 99.9,
    "sli": {"kind": "ratio", "pipeline": "p"},
}


def _history() -> tuple[np.ndarray, np.ndarray]:
    n = 5 * 1440
    total = np.full(n, 1000)
    bad = np.zeros(n, dtype=np.int64)
    bad[1440 : 1440 + 30] = 500  # day 1: 30-minute half outage (~17% of the 30-day budget)
    bad[3000:3003] = 20  # a 3-minute blip: 2% errors, consumes 0.14% of the budget
    return total - bad, total


def test_an_outage_is_caught_by_the_pages_and_a_blip_by_nothing():
    good, total = _history()
    r = backtest(SLOSpec.model_validate(SLO), good, total, start_minute=100)
    assert [(1540, 1570), (3100, 3103)] == [(i.start_minute, i.end_minute) for i in r.incidents]
    assert pytest.approx(15000 / (0.001 * 1000 * 43200)) == r.incidents[0].budget_consumed
    page = r.tiers[0]
    assert ("page-1h", 1, 1, 1, 1.0, 1.0) == (
        page.tier,
        page.episodes,
        page.true_positives,
        page.significant_incidents,
        page.precision,
        page.recall,
    )
    # 50% errors against a 1.44% threshold: over both windows after 2 minutes (short: 5m x 1.44/50).
    assert 120.0 == page.detection_time_mean
    # It stops once the 5-minute window is clean again: 5 minutes after the incident.
    assert 300.0 == page.reset_time_mean
    assert all(t.significant_incidents == 1 for t in r.tiers)  # the blip is below every tier


def test_a_tier_below_1x_fires_on_background_noise_and_loses_precision():
    # Steady 0.08% errors: burning 0.8x, never an incident; a 0.5x tier fires all the time.
    total = np.full(2 * 1440, 10_000)
    good = total - 8
    slo = SLOSpec.model_validate(
        {
            **SLO,
            "alerting": {
                "tiers": [
                    {
                        "name": "twitchy",
                        "long_window": "1h",
                        "short_window": "5m",
                        "burn_rate": 0.5,
                    },
                    {
                        "name": "page-1h",
                        "long_window": "1h",
                        "short_window": "5m",
                        "burn_rate": 14.4,
                    },
                ]
            },
        }
    )
    r = backtest(slo, good, total)
    twitchy, page = r.tiers
    assert [] == r.incidents
    assert (1, 0, 0.0, None) == (
        twitchy.episodes,
        twitchy.true_positives,
        twitchy.precision,
        twitchy.recall,
    )
    assert (0, None, None) == (page.episodes, page.precision, page.recall)


def test_csv_history_and_the_command(tmp_path, write):
    good, total = _history()
    rows = ["minute,good,total"] + [
        f"{(1_700_000_000 // 60 + i) * 60},{g},{t}"
        for i, (g, t) in enumerate(zip(good, total, strict=False))
    ]
    csv_path = write("history.csv", "\n".join(rows) + "\n")
    start, g2, t2 = read_csv(csv_path)
    assert (1_700_000_000 // 60, good.tolist(), total.tolist()) == (start, g2.tolist(), t2.tolist())
    spec = write(
        "reliability.yaml",
        "service: svc\nslos:\n  - name: api\n    objective: 99.9\n"
        "    sli: {kind: ratio, pipeline: p}\n",
    )
    result = CliRunner().invoke(
        main, ["slo", "backtest", str(spec), "--slo", "api", "--csv", str(csv_path), "--json"]
    )
    assert 0 == result.exit_code, result.output
    data = json.loads(result.output)
    assert (2, [1, 1, 1, 1]) == (len(data["incidents"]), [t["detected"] for t in data["tiers"]])
    # The same history from the store gives the same report.
    db = tmp_path / "s.db"
    with SLIStore(db) as store:
        store.add(
            ("api", start + i, int(g), int(t))
            for i, (g, t) in enumerate(zip(good, total, strict=False))
        )
    from_db = CliRunner().invoke(
        main, ["slo", "backtest", str(spec), "--slo", "api", "--db", str(db), "--json"]
    )
    assert data == json.loads(from_db.output)
    table = CliRunner().invoke(
        main, ["slo", "backtest", str(spec), "--slo", "api", "--csv", str(csv_path)]
    )
    lines = table.output.splitlines()
    head = next(line.split() for line in lines if line.split()[:1] == ["tier"])
    page = next(line.split() for line in lines if line.split()[:1] == ["page-1h"])
    assert "100%" == page[head.index("precision")]


def test_bad_csv_rows_name_the_line(write):
    path = write("h.csv", "minute,good,total\n60,1,1\n120,5,4\n")
    with pytest.raises(SpecError) as info:
        read_csv(path)
    assert (3, "need 0 <= good <= total") == (info.value.line, info.value.message)
    with pytest.raises(SpecError, match="missing column"):
        read_csv(write("h2.csv", "t,good\n"))


def _timeslices(slice_: str = "1m", target: float | None = 0.95) -> SLOSpec:
    sli: dict = {"kind": "window", "slice": slice_, "of": {"kind": "ratio", "pipeline": "p"}}
    if target is not None:
        sli["target"] = target
    return SLOSpec.model_validate(
        {**SLO, "objective": 99, "window": "7d", "sli": sli, "alerting": {"disable": ["ticket-3d"]}}
    )


def test_timeslices_are_replayed_on_slices():
    n = 3 * 1440
    total = np.full(n, 100)
    good = total.copy()
    good[2000:2060] = 50  # an hour of bad slices (50% < 95%)
    good[3000] = 94  # one bad slice on its own: 1% of the budget of 100.8 slices
    r = backtest(_timeslices(), good, total, start_minute=0)
    assert ("slices", float(n), 61.0) == (r.unit, r.total, r.bad)
    assert [(2000, 2060, 60.0), (3000, 3001, 1.0)] == [
        (i.start_minute, i.end_minute, i.bad) for i in r.incidents
    ]
    # The budget is 1% of the 7 x 1440 slices in the period (OpenSLO's Timeslices).
    assert pytest.approx(60 / (0.01 * 7 * 1440)) == r.incidents[0].budget_consumed
    page = r.tiers[0]
    assert ("page-1h", 1, 1, 1.0, 1.0) == (
        page.tier,
        page.episodes,
        page.significant_incidents,
        page.precision,
        page.recall,
    )
    # page-1h at 7 days: 3.36x of 1% -> 3.36% of a 60-slice window, i.e. more than 2.016 bad
    # slices: it fires after the third bad minute.
    assert 180.0 == page.detection_time_mean


def test_slices_longer_than_a_minute_and_ratio_timeslices():
    n = 2 * 1440
    total = np.full(n, 100)
    good = total.copy()
    good[1000:1030] = 90  # 30 minutes at 90%: 6 bad 5-minute slices
    r = backtest(_timeslices("5m"), good, total, start_minute=3)  # slices start at minute 5
    # Minutes 1003-1032 are bad; slice 1000-1004 holds two of them (96% good), 1030-1034 three
    # (94%): six bad slices from 1005 to 1035.
    assert [(1005, 1035)] == [(i.start_minute, i.end_minute) for i in r.incidents]
    assert (n // 5 - 1, 6.0) == (r.total, r.bad)
    ratio = backtest(_timeslices(target=None), good, total)
    assert ("RatioTimeslices", pytest.approx(30 * 0.1)) == (
        _timeslices(target=None).method,
        ratio.bad,
    )
    assert pytest.approx(3 / (0.01 * 7 * 1440)) == ratio.incidents[0].budget_consumed


def test_backtest_command_on_a_timeslices_slo(tmp_path, write):
    spec = write(
        "reliability.yaml",
        "service: svc\nslos:\n  - name: mins\n    objective: 99\n    window: 7d\n"
        "    sli:\n      kind: window\n      target: 0.95\n      of: {kind: ratio, pipeline: p}\n",
    )
    db = tmp_path / "s.db"
    with SLIStore(db) as store:
        store.add(("mins", 1000 + i, 50 if 100 <= i < 160 else 100, 100) for i in range(600))
    result = CliRunner().invoke(
        main, ["slo", "backtest", str(spec), "--slo", "mins", "--db", str(db)]
    )
    assert 0 == result.exit_code, result.output
    assert "600 minutes, 600 slices, 60 bad, 1 incident(s)" in result.output


def test_exclusions_are_left_out_of_the_backtest():
    good, total = _history()
    slo = SLOSpec.model_validate(
        {
            **SLO,
            "exclusions": [
                {"start": "1970-01-02T00:00:00Z", "end": "1970-01-02T01:00:00Z"}  # minute 1440
            ],
        }
    )
    r = backtest(slo, good, total)
    assert [(3000, 3003)] == [(i.start_minute, i.end_minute) for i in r.incidents]
