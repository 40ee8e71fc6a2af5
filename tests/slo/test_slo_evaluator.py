"""The evaluator against the straightforward pure-Python reference, timeslices, exclusions, calendar
windows, and `buttress slo status`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.slo.evaluator import (
    evaluate,
    evaluate_reference,
    period_bounds,
    status_batch,
    status_reference,
)
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore

PERIOD = 30 * 86400.0


def _tiers():
    return list(SLOSpec.model_validate(_slo("x")).tiers())


def _slo(name: str, **extra) -> dict:
    return {
        "name": name,
        "service": "svc",
        "objective": 99.9,
        "sli": {"kind": "ratio", "pipeline": "p"},
        **extra,
    }


def test_batch_matches_the_pure_python_reference():
    rng = np.random.default_rng(7)
    n_slo, n_min = 12, 4 * 24 * 60
    total = rng.integers(0, 50, size=(n_slo, n_min))
    err = rng.random((n_slo, 1)) * 0.02
    bad = rng.binomial(total, err)
    bad[3, -90:] = total[3, -90:]  # an outage on one SLO: its pages fire
    good = total - bad
    b = np.array([0.001] * 6 + [0.01] * 6)
    tiers = _tiers()
    windows = [5, 30, 60, 120, 360, 1440, 4320]
    fast = status_batch(
        good, total, b, windows=windows, tiers=tiers, ref_window=60, period_seconds=PERIOD
    )
    ref = status_reference(
        good.tolist(),
        total.tolist(),
        b.tolist(),
        windows=windows,
        tiers=tiers,
        ref_window=60,
        period_seconds=PERIOD,
    )
    for i, r in enumerate(ref):
        assert r["consumed"] == pytest.approx(fast["consumed"][i])
        assert r["tte"] == pytest.approx(fast["tte"][i])
        for w in windows:
            assert r["burn"][w] == pytest.approx(fast["burn"][w][i], nan_ok=True)
        assert r["firing"] == [t.name for t in tiers if fast["firing"][t.name][i]]
    assert {"page-1h", "page-6h"} <= set(ref[3]["firing"])


def test_status_from_the_store(tmp_path):
    slo = SLOSpec.model_validate(_slo("api"))
    now = 28_000_000
    with SLIStore(tmp_path / "s.db") as store:
        # 3,000,000 requests, 1,500 errors, spread over the last 10 days: half the budget.
        rows = [("api", now - 1 - i, 200 - (1 if i % 10 == 0 else 0), 200) for i in range(15_000)]
        store.add(rows)
        (st,) = evaluate([slo], store, now * 60)
    assert (3_000_000, 0.5, 0.5) == (
        st.total,
        pytest.approx(st.budget_consumed),
        pytest.approx(st.budget_remaining),
    )
    assert pytest.approx(1 - 1500 / 3_000_000) == st.sli
    assert pytest.approx(0.5) == st.burn_rates["1h"]
    assert [] == st.firing
    # Half the budget left at 0.5x: 0.5 x 30 days / 0.5 = 30 days.
    assert pytest.approx(PERIOD) == st.time_to_exhaustion


def test_exclusions_remove_minutes_from_the_budget(tmp_path):
    start = datetime(2024, 3, 1, 2, 0, tzinfo=UTC)
    slo = SLOSpec.model_validate(
        _slo("api", exclusions=[{"start": start.isoformat(), "end": "2024-03-01T04:00:00Z"}])
    )
    m0 = int(start.timestamp() // 60)
    with SLIStore(tmp_path / "s.db") as store:
        store.add(("api", m0 - 60 + i, 100, 100) for i in range(60))  # healthy hour before
        store.add(("api", m0 + i, 0, 100) for i in range(120))  # total outage, in maintenance
        (st,) = evaluate([slo], store, (m0 + 120) * 60)
        (raw,) = evaluate([SLOSpec.model_validate(_slo("api"))], store, (m0 + 120) * 60)
    assert (120, 6000.0, 1.0, []) == (st.excluded_minutes, st.total, st.budget_remaining, st.firing)
    assert raw.budget_remaining < 0 and "page-1h" in raw.firing


def test_timeslices_count_bad_minutes(tmp_path):
    slo = SLOSpec.model_validate(
        _slo(
            "mins",
            objective=99,
            window="7d",
            sli={
                "kind": "window",
                "slice": "1m",
                "target": 0.95,
                "of": {"kind": "ratio", "pipeline": "p"},
            },
            alerting={"disable": ["ticket-3d"]},
        )
    )
    now = 28_000_000
    with SLIStore(tmp_path / "s.db") as store:
        # 100 minutes: every 10th only 90% good (a bad slice); then 20 minutes without traffic.
        store.add(("mins", now - 120 + i, 90 if i % 10 == 0 else 100, 100) for i in range(100))
        (st,) = evaluate([slo], store, now * 60)
    assert ("Timeslices", 100.0, 90.0) == (st.budgeting, st.total, st.good)
    assert pytest.approx(0.9) == st.sli
    # 10 bad slices of the 7 x 1440 the budget allows 1% of.
    assert pytest.approx(10 / (0.01 * 7 * 1440)) == st.budget_consumed


def test_calendar_window_starts_at_the_local_month(tmp_path):
    slo = SLOSpec.model_validate(
        _slo(
            "cal", window={"calendar": "month", "timezone": "Europe/Paris"}, alerting={"tiers": []}
        )
    )
    # 1 April 2024 00:30 in Paris is 31 March 22:30 UTC (summer time began on 31 March).
    now = int(datetime(2024, 3, 31, 22, 30, tzinfo=UTC).timestamp() // 60)
    start, _end, period = period_bounds(slo, now)
    assert datetime(2024, 3, 31, 22, 0, tzinfo=UTC).timestamp() == start * 60
    assert 30 * 86400 == period  # April: no change of offset
    with SLIStore(tmp_path / "s.db") as store:
        store.add([("cal", now - 40, 0, 50), ("cal", now - 10, 40, 50)])  # March, then April
        (st,) = evaluate([slo], store, now * 60)
    assert (50.0, 40.0) == (st.total, st.good)


def test_status_table_shows_the_windows_of_custom_tiers(tmp_path, write):
    spec = write(
        "reliability.yaml",
        "service: svc\nslos:\n  - name: api\n    objective: 99\n    window: 7d\n"
        "    sli: {kind: ratio, pipeline: p}\n    alerting:\n      tiers:\n"
        "        - {name: fast, long_window: 2h, short_window: 10m, burn_rate: 10}\n"
        "        - {name: slow, long_window: 12h, short_window: 1h, burn_rate: 2}\n"
        "  - name: quiet\n    objective: 99\n    sli: {kind: ratio, pipeline: q}\n"
        "    alerting: {tiers: []}\n",
    )
    db = tmp_path / "s.db"
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    m = int(at.timestamp() // 60)
    with SLIStore(db) as store:
        # 5% errors over the last 10 minutes, clean before that (2 hours of data).
        store.add(("api", m - 1 - i, 95 if i < 10 else 100, 100) for i in range(120))
        store.add(("quiet", m - 1 - i, 99, 100) for i in range(5))
    result = CliRunner().invoke(
        main, ["slo", "status", str(spec), "--db", str(db), "--at", at.isoformat()]
    )
    assert 0 == result.exit_code, result.output
    lines = result.output.splitlines()
    assert "burn rate (long/short)" in lines[0]
    # 2h: 50 bad of 12,000 -> 0.42%, 0.42x of a 1% budget; 10m: 5% -> 5x; 12h and 1h likewise.
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    assert "2h/10m 0.42/5.00, 12h/1h 0.42/0.83" in lines[2]
    assert "5m 1.00" in lines[3]


def test_status_command_table_and_json(tmp_path, write):
    spec = write(
        "reliability.yaml",
        "service: svc\nslos:\n  - name: api\n    objective: 99.9\n"
        "    sli: {kind: ratio, pipeline: p}\n",
    )
    db = tmp_path / "s.db"
    at = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    m = int(at.timestamp() // 60)
    with SLIStore(db) as store:
        store.add(("api", m - 1 - i, 0 if i < 30 else 100, 100) for i in range(120))
    runner = CliRunner()
    result = runner.invoke(
        main, ["slo", "status", str(spec), "--db", str(db), "--at", at.isoformat(), "--json"]
    )
    assert 1 == result.exit_code, result.output  # pages fire: the verdict fails
    (st,) = json.loads(result.stdout)
    assert ("api", 0.25, ["page-1h", "page-6h", "ticket-1d", "ticket-3d"]) == (
        st["name"],
        st["total"] and (st["total"] - st["good"]) / st["total"],
        st["firing"],
    )
    assert 0.0 == st["time_to_exhaustion"]
    table = runner.invoke(
        main, ["slo", "status", str(spec), "--db", str(db), "--at", at.isoformat()]
    )
    assert 1 == table.exit_code
    assert "svc/api" in table.output and "page-1h" in table.output and "never" not in table.output
    # Every alert window of every tier, long/short: 30 bad minutes out of the last 120.
    assert "1h/5m 500/1000, 6h/30m 250/1000, 1d/2h 250/250, 3d/6h 250/250" in table.output
    missing = runner.invoke(main, ["slo", "status", str(spec), "--db", str(tmp_path / "no.db")])
    assert 2 == missing.exit_code and "no such store" in missing.output
    bad_at = runner.invoke(main, ["slo", "status", str(spec), "--db", str(db), "--at", "noon"])
    assert 2 == bad_at.exit_code and "ISO 8601" in bad_at.output


def test_evaluate_from_the_store_matches_the_pure_python_reference(tmp_path):
    """End to end: 30 days of per-minute data per SLO read from SQLite (per-day sums for the
    period, day blocks for the alert windows) agree with reading every minute into lists."""
    now = 28_000_000 + 777  # not on a day boundary
    minutes = 31 * 1440
    rng = np.random.default_rng(11)
    slos = []
    with SLIStore(tmp_path / "s.db") as store:
        for i in range(6):
            total = rng.integers(0, 40, minutes)
            bad = rng.binomial(total, [0.0005, 0.002, 0.02][i % 3])
            if i == 4:
                bad[-50:] = total[-50:]  # an outage in the last hour: pages fire
            store.add_series(f"s{i}", now - minutes, total - bad, total)
            extra: dict = {"objective": [99.9, 99.5, 99][i % 3]}
            if i == 1:
                extra["window"] = "7d"
                extra["alerting"] = {"disable": ["ticket-3d"]}
            if i == 5:
                extra["window"] = {"calendar": "month", "timezone": "Europe/Paris"}
            slos.append(SLOSpec.model_validate(_slo(f"s{i}", **extra)))
        fast = evaluate(slos, store, now * 60)
        ref = evaluate_reference(slos, store, now * 60)
    assert {"page-1h", "page-6h"} <= set(fast[4].firing)
    for st, r in zip(fast, ref, strict=True):
        assert (r["good"], r["total"]) == (st.good, st.total)
        assert r["remaining"] == pytest.approx(st.budget_remaining)
        assert r["firing"] == st.firing
        tte = st.time_to_exhaustion
        assert r["tte"] == pytest.approx(float("inf") if tte is None else tte)
        for w, v in r["burn"].items():
            key = f"{w}m" if w < 60 else f"{w // 60}h" if w < 1440 else f"{w // 1440}d"
            assert v == pytest.approx(st.burn_rates[key], nan_ok=True) or (
                v != v and st.burn_rates[key] is None
            )


def test_exclusions_are_subtracted_from_the_period_sums(tmp_path):
    """An exclusion far back in the period (read from per-day sums) and one inside the alert
    windows (read from blocks) give the figures of masking every minute."""
    now = 28_000_000
    n = 30 * 1440
    rng = np.random.default_rng(5)
    total = rng.integers(1, 30, n)
    bad = rng.binomial(total, 0.01)
    t0 = (now - n) * 60
    spans = [(t0 + 3 * 86400 + 1234, t0 + 5 * 86400), (now * 60 - 7200, now * 60 - 3000)]
    slo = SLOSpec.model_validate(
        _slo(
            "x",
            exclusions=[
                {
                    "start": datetime.fromtimestamp(a, UTC).isoformat(),
                    "end": datetime.fromtimestamp(b, UTC).isoformat(),
                }
                for a, b in spans
            ],
        )
    )
    with SLIStore(tmp_path / "s.db") as store:
        store.add_series("x", now - n, total - bad, total)
        (st,) = evaluate([slo], store, now * 60)
    minute = np.arange(now - n, now)
    keep = np.ones(n, dtype=bool)
    for a, b in spans:
        keep &= ~((minute >= a // 60) & (minute < -(-b // 60)))
    g, t = np.where(keep, total - bad, 0), np.where(keep, total, 0)
    (ref,) = status_reference(
        [g.tolist()],
        [t.tolist()],
        [0.001],
        windows=[5, 30, 60, 120, 360, 1440, 4320],
        tiers=_tiers(),
        ref_window=60,
        period_seconds=PERIOD,
    )
    assert (int((~keep).sum()), ref["total"], ref["good"]) == (
        st.excluded_minutes,
        st.total,
        st.good,
    )
    assert ref["remaining"] == pytest.approx(st.budget_remaining)
    assert ref["burn"][120] == pytest.approx(st.burn_rates["2h"])
