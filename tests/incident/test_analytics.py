"""MTTx distributions against values computed by hand on a fixed history, the order-statistic
intervals' coverage checked exactly, and ``buttress report`` over two periods."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from buttress.cli import main
from buttress.incident import Incident, IncidentStore, parse_generic
from buttress.incident.analytics import (
    by_group,
    order_statistic_interval,
    quantile,
    summarise,
    time_between_failures,
)
from buttress.incident.postmortem import load_risks
from buttress.slo.store import SLIStore

B = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
DAYS = [0, 1, 3, 4, 8, 9, 15]
TTD = [30, 60, 90, 120, 150, 180, 600]
TTA = [60, 60, 120, 180, 240, 300, None]
TTR = [600, 1200, 1800, 2400, 3000, 6000, 36000]


def history() -> list[Incident]:
    out = []
    for i, day in enumerate(DAYS):
        started = B + day * DAY
        detected = started + TTD[i]
        tta = TTA[i]
        out.append(
            Incident(
                id=i + 1,
                group_key=f"g{i}",
                title="t",
                service="shop" if i % 2 == 0 else "cart",
                mode="db-down" if i < 4 else "overload",
                severity="page",
                state="resolved",
                started=started,
                detected=detected,
                acknowledged=None if tta is None else detected + tta,
                acknowledged_by=None if tta is None else "alice",
                mitigated=None,
                mitigated_by=None,
                resolved=started + TTR[i],
                resolved_by="bob",
                notifications=1,
                labels={},
                source="webhook",
            )
        )
    return out


def test_quantile_definition_7() -> None:
    xs = [600.0, 1200, 1800, 2400, 3000, 6000, 36000]
    assert quantile(xs, 0.5) == 2400
    assert quantile(xs, 0.9) == pytest.approx(6000 + 0.4 * 30000)  # rank 1 + 0.9 * 6 = 6.4
    assert quantile([60.0, 60, 120, 180, 240, 300], 0.5) == 150


def test_hand_computed_summaries() -> None:
    stats = by_group(history())["all"]
    ttr = stats["time_to_recover"]
    assert ttr.n == 7
    assert (ttr.median.value, ttr.median.low, ttr.median.high) == (2400, 600, 36000)
    # P(B <= 3) = 0.00273 <= 0.025 < P(B <= 4) = 0.02569 for B ~ Bin(7, 0.9): lower rank 4;
    # 0.9 ** 7 = 0.478 > 0.025: no upper bound
    assert (ttr.p90.value, ttr.p90.low, ttr.p90.high) == (pytest.approx(18000), 2400, None)
    assert ttr.mean == pytest.approx(51000 / 7)
    tta = stats["time_to_acknowledge"]  # the last incident was never acknowledged
    assert tta.n == 6
    assert (tta.median.value, tta.median.low, tta.median.high) == (150, 60, 300)
    assert (tta.p90.value, tta.p90.low, tta.p90.high) == (pytest.approx(270), 180, None)
    ttd = stats["time_to_detect"]
    assert (ttd.median.value, ttd.p90.value) == (120, pytest.approx(180 + 0.4 * 420))
    assert stats["time_to_mitigate"].n == 0 and stats["time_to_mitigate"].median is None
    tbf = stats["time_between_failures"]  # gaps of 1, 2, 1, 4, 1, 6 days
    assert tbf.n == 6
    assert tbf.median.value == 1.5 * DAY


def test_per_service_and_mode() -> None:
    per_service = by_group(history(), key="service")
    assert list(per_service) == ["cart", "shop"]
    assert per_service["shop"]["time_to_recover"].median.value == (1800 + 3000) / 2
    assert per_service["cart"]["time_to_recover"].median.value == 2400
    assert time_between_failures([i for i in history() if i.service == "shop"]) == [
        3 * DAY, 5 * DAY, 7 * DAY
    ]  # fmt: skip
    per_mode = by_group(history(), key="mode")
    assert per_mode["db-down"]["time_to_recover"].median.value == (1200 + 1800) / 2
    assert per_mode["overload"]["time_to_recover"].n == 3


def test_small_samples_have_unbounded_intervals() -> None:
    assert order_statistic_interval(5, 0.5, 0.95) == (None, None)  # 1/32 > 0.025
    assert order_statistic_interval(6, 0.5, 0.95) == (1, 6)
    assert order_statistic_interval(35, 0.9, 0.95)[1] is None  # 0.9**35 = 0.02503
    assert order_statistic_interval(36, 0.9, 0.95)[1] == 36
    s = summarise([5.0])
    assert (s.median.value, s.median.low, s.median.high) == (5.0, None, None)


def _coverage(n: int, q: float, low: int, high: int) -> float:
    return math.fsum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(low, high))


@given(st.integers(1, 80), st.sampled_from([0.5, 0.9]), st.sampled_from([0.8, 0.9, 0.95]))
def test_intervals_cover_at_least_the_confidence(n: int, q: float, c: float) -> None:
    low, high = order_statistic_interval(n, q, c)
    tail = (1 - c) / 2
    # each side's miss probability is within the tail, so both sides together miss at most 1 - c
    lo_rank = 0 if low is None else low
    hi_rank = n + 1 if high is None else high
    assert _coverage(n, q, lo_rank, hi_rank) >= c - 1e-12
    if low is not None and low < n:  # tight: one rank further in would miss too often
        assert _coverage(n, q, 0, low + 1) > tail
    if high is not None and high > 1:
        assert _coverage(n, q, high - 1, n + 1) > tail


SPEC = """\
version: 1
service: shop
slos:
  - name: shop-availability
    objective: 99
    window: 30d
    sli:
      kind: ratio
      bad: sum(rate(errors_total[{{.window}}]))
      total: sum(rate(requests_total[{{.window}}]))
architecture:
  components:
    web: {replicas: 2, mtbf: 1000h, mttr: 30m, depends_on: {db: hard}}
    db: {availability: 0.9995, mttr: 1h, detect: 10m}
  journeys:
    checkout: {entry: web, target: 0.999}
"""


def test_report_over_a_period_against_the_previous(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text(SPEC)
    slo_db = tmp_path / "slo.db"
    base = int(B // 60)
    with SLIStore(slo_db) as sli:
        # previous week: 1,000 bad of 1,000,000; this week: 20,000 bad of 1,000,000
        week = 7 * 1440
        sli.add([("shop-availability", base - week, 999_000, 1_000_000)])
        sli.add([("shop-availability", base + 10, 980_000, 1_000_000)])
    inc_db = tmp_path / "inc.db"
    with IncidentStore(inc_db) as store:

        def incident(key: str, mode: str, at: float, ttr: float) -> int:
            n = parse_generic(
                {"key": key, "status": "firing", "mode": mode, "service": "shop", "started_at": at}
            )
            [o] = store.ingest([n], received=at + 60)
            store.transition(o.incident or 0, "resolved", actor="bob", at=at + ttr)
            return o.incident or 0

        incident("a", "unit:db[0]", B - 3 * DAY, 600)  # previous period
        first = incident("b", "unit:db[0]", B + DAY, 1200)
        incident("c", "unit:db[0]", B + 2 * DAY, 2400)
        incident("d", "overload", B + 3 * DAY, 300)
        store.add_action_item(first, "add a db replica", owner="dba", risk="unit:db[0]")
    r = CliRunner().invoke(
        main,
        ["report", "--store", str(inc_db), "--slo-store", str(slo_db), "--spec", str(spec),
         "--since", "2026-01-01", "--until", "2026-01-08", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    [slo] = data["period"]["slos"]
    assert (slo["attainment"], slo["met"]) == (0.98, False)
    assert slo["budget_spent"] == pytest.approx(2.0)  # 20,000 bad / (1% of 1,000,000)
    [before] = data["previous"]["slos"]
    assert (before["attainment"], before["budget_spent"]) == (0.999, pytest.approx(0.1))
    assert [i["mode"] for i in data["period"]["incidents"]] == [
        "unit:db[0]",
        "unit:db[0]",
        "overload",
    ]
    assert len(data["previous"]["incidents"]) == 1
    assert data["period"]["top_modes"][0] == {"mode": "unit:db[0]", "incidents": 2, "seconds": 3600}
    assert data["period"]["mttx"]["time_to_recover"]["median"]["value"] == 1200
    assert [a["title"] for a in data["open_action_items"]] == ["add a db replica"]
    db_risk = next(x for x in data["risks"] if x["event"] == "unit:db[0]")
    assert db_risk["observed"] == 2
    register = max(
        (x for x in load_risks(spec) if x.event == "unit:db[0]"), key=lambda x: x.bad_minutes
    )
    assert db_risk["predicted"] == pytest.approx(register.frequency * 7 / 365)
    text = CliRunner().invoke(
        main,
        ["report", "--store", str(inc_db), "--slo-store", str(slo_db), "--spec", str(spec),
         "--since", "2026-01-01", "--until", "2026-01-08"],
    ).output  # fmt: skip
    assert "shop-availability" in text and "budget 200.0%" in text
    assert "Incidents: 3 (previous period: 1)" in text
    assert "time_to_recover          20.0m [" in text and "(worse than 10.0m)" in text
    assert "unit:db[0]" in text and "observed 2" in text


def test_report_refuses_a_reversed_period(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main,
        ["report", "--store", str(tmp_path / "i.db"), "--since", "2026-02-01", "--until",
         "2026-01-01"],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "must be before --until" in r.output
