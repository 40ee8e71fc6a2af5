"""The real-system lab's figures and verdicts on synthetic runs (no processes): timeouts in the
latency charts, every breaker charted, the metastable sentence, the starved driver's inconclusive
verdict, and a static report without hover legends."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from buttress.lab.system.driver import STARVED_LAG_FRACTION, Sample, lag_stats
from buttress.lab.system.figures import (
    METASTABLE_MARGIN,
    _requests,
    _series,
    hypotheses,
    metastable_sentences,
    plotted_latency,
    recovery,
    verdict,
)
from buttress.lab.system.load import LoadedLab, load_lab
from buttress.lab.system.report import notes, render_html, render_table

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
TIMEOUT = 2.0
DURATION = 20.0
KINDS = {"checkout": None, "browse": None}
FAULTS = [
    {"name": "outage", "kind": "outage", "target": "inventory", "applied_at": 4.0,
     "removed_at": 8.0, "planned": [4.0, 8.0], "budget_consumed": {"checkout": 0.5}},
]  # fmt: skip


@pytest.fixture(scope="module")
def lab() -> LoadedLab:
    return load_lab(SHOP)


def _samples(
    error_rate: Any, *, lag: float = 0.001, rate: int = 20, timed_out_latency: float = 2.0001
) -> list[Sample]:
    """``rate`` requests per second per kind over the run; ``error_rate(t)`` is the chance a
    request at ``t`` times out (the others are answered in 50 ms)."""
    rng = random.Random(7)
    out = []
    for kind in KINDS:
        for i in range(int(DURATION * rate)):
            t = i / rate
            if rng.random() < error_rate(t):
                out.append(Sample(kind, t, timed_out_latency, 0, False, True, lag))
            else:
                out.append(Sample(kind, t, 0.05, 200, True, False, lag))
    return out


def _slos(good: float) -> list[dict[str, Any]]:
    burned = good < 0.995
    return [
        {"name": "checkout", "objective": 99.5, "request_kind": "checkout", "good": good * 400,
         "total": 400.0, "sli": good, "budget_consumed": (1 - good) / 0.005,
         "verdict": "burned" if burned else "held", "service_good": 400.0,
         "service_total": 400.0, "service_sli": 1.0, "service_budget_consumed": 0.0},
    ]  # fmt: skip


def _run(samples: list[Sample], *, good: float, breakers: Any = (), names: Any = ()) -> Any:
    slos = _slos(good)
    return {
        "requests": {k: _requests([s for s in samples if s.kind == k], TIMEOUT) for k in KINDS},
        "slos": slos,
        "faults": [dict(f) for f in FAULTS],
        "history": {"valid": True, "lost_count": 0, "acknowledged_count": 300,
                    "attempted_count": 400, "recovered_count": 0, "vanished_count": 0},
        "series": _series(samples, slos, KINDS, DURATION, TIMEOUT),
        "breakers": list(breakers),
        "breaker_names": list(names),
        "driver": lag_stats(samples, TIMEOUT),
        "recovery": recovery(samples, FAULTS, KINDS, duration=DURATION, timeout=TIMEOUT),
    }  # fmt: skip


def _outage(t: float) -> float:
    return 0.6 if 4.0 <= t < 8.0 else 0.0


def _result(lab: LoadedLab, on: Any, off: Any) -> dict[str, Any]:
    runs = {"on": on, "off": off}
    hyps = hypotheses(lab, runs)
    v = verdict(hyps)
    return {"file": "reliability.yaml", "quick": True, "seed": 1, "assessment": None,
            "runs": runs, "hypotheses": hyps, "verdict": v, "passed": v == "passed",
            "elapsed": 40.0, "report": "report.html"}  # fmt: skip


# -- (a) timeouts in the latency figures --------------------------------------------------------


def test_timeouts_are_plotted_at_the_client_timeout() -> None:
    samples = _samples(_outage)
    series = _series(samples, [], KINDS, DURATION, TIMEOUT)
    # Inside the outage most requests time out: the p99 is the client timeout, not the 50 ms of
    # the few that were answered (which is what a chart of answered requests only would show).
    assert [TIMEOUT] * 4 == series["checkout_p99"][4:8]
    assert all(p == pytest.approx(0.05) for p in series["checkout_p99"][:4])
    assert all(n > 0 for n in series["checkout_timeouts"][4:8])
    assert 0 == sum(series["checkout_timeouts"][:4])
    # A timeout counts at the timeout even when the driver read the clock late.
    late = Sample("checkout", 0.0, 2.3, 0, False, True, 0.0)
    assert TIMEOUT == plotted_latency(late, TIMEOUT)
    figures = _requests([s for s in samples if s.kind == "checkout"], TIMEOUT)
    assert TIMEOUT == figures["p99_all"]
    assert figures["p99"] == pytest.approx(0.05)  # the good requests' p99, labelled as such
    assert figures["timed_out"] == figures["bad"] > 0


def test_a_run_that_times_out_does_not_look_faster(lab: LoadedLab) -> None:
    timing_out = _run(_samples(_outage), good=0.9)
    answered = _run(_samples(lambda t: 0.0), good=1.0)
    assert max(p for p in timing_out["series"]["checkout_p99"] if p is not None) == TIMEOUT
    assert (
        timing_out["requests"]["checkout"]["p99_all"] > answered["requests"]["checkout"]["p99_all"]
    )
    html = render_html(lab, _result(lab, answered, timing_out))
    assert "a timeout counts as 2 s, the client timeout" in html
    text = render_table(_result(lab, answered, timing_out))
    assert "checkout: p99 latency (all, timeouts at the timeout)" in text


# -- (b) every breaker ---------------------------------------------------------------------------


def test_every_breaker_gets_its_own_chart(lab: LoadedLab) -> None:
    samples = _samples(_outage)
    changes = [
        {"time": 4.5, "name": "api/inventory", "state": "open", "source": "api"},
        {"time": 9.0, "name": "api/inventory", "state": "half_open", "source": "api"},
        {"time": 9.5, "name": "api/inventory", "state": "closed", "source": "api"},
    ]
    names = ["api/inventory", "api/payments", "api/datastore"]
    on = _run(samples, good=0.999, breakers=changes, names=names)
    off = _run(samples, good=0.9)
    html = render_html(lab, _result(lab, on, off))
    for i, name in enumerate(sorted(names)):
        assert f'id="breaker-{i}"' in html
        assert f"circuit breaker {name} (0 closed" in html
    assert 'id="breaker-3"' not in html
    # A breaker that never changed state is charted (closed all along).
    assert "No circuit breaker" not in html


# -- (c) metastable failure ----------------------------------------------------------------------


def test_a_run_that_stays_failed_after_the_fault_gets_the_metastable_sentence(
    lab: LoadedLab,
) -> None:
    stuck = _run(_samples(lambda t: 0.6 if t >= 4.0 else 0.0), good=0.7)
    healed = _run(_samples(_outage), good=0.99)
    checkout = next(r for r in stuck["recovery"] if r["kind"] == "checkout")
    assert checkout["stayed_failed"] and checkout["window"] == [10.0, DURATION]
    assert checkout["steady_error_rate"] == 0.0
    assert checkout["error_rate"] > METASTABLE_MARGIN
    assert not any(r["stayed_failed"] for r in healed["recovery"])
    assert [] == metastable_sentences("on", healed)

    [sentence, *_] = metastable_sentences("off", stuck)
    rate = checkout["error_rate"]
    assert sentence.startswith(
        "With policies off, checkout stayed failed after outage ended at 8.0 s"
    )
    assert f"{rate:.1%} of its requests failed from 10.0 to 20.0 s" in sentence
    assert "against 0.0% before the first fault" in sentence and "metastable" in sentence
    result = _result(lab, healed, stuck)
    assert sentence in notes(result)
    assert sentence in render_html(lab, result)
    assert f"NOTE  {sentence}" in render_table(result)


def test_a_slow_recovery_within_the_window_is_not_metastable() -> None:
    # Errors linger for a second after the window opens, then stop: the last half is clean.
    samples = _samples(lambda t: 0.6 if 4.0 <= t < 11.0 else 0.0)
    [checkout, _] = recovery(samples, FAULTS, KINDS, duration=DURATION, timeout=TIMEOUT)
    assert checkout["last_half_error_rate"] == 0.0 and not checkout["stayed_failed"]


def test_no_judgement_without_a_window_or_a_steady_state() -> None:
    samples = _samples(lambda t: 0.6)
    short = [dict(FAULTS[0], removed_at=DURATION - 1)]
    assert [] == recovery(samples, short, KINDS, duration=DURATION, timeout=TIMEOUT)
    from_start = [dict(FAULTS[0], applied_at=0.0)]
    assert [] == recovery(samples, from_start, KINDS, duration=DURATION, timeout=TIMEOUT)


# -- (e) the driver's own lag --------------------------------------------------------------------


def test_lag_figures_and_the_starved_threshold() -> None:
    limit = STARVED_LAG_FRACTION * TIMEOUT
    fine = lag_stats(_samples(lambda t: 0.0, lag=limit / 2), TIMEOUT)
    assert not fine["starved"] and fine["p99"] == pytest.approx(limit / 2)
    assert fine["limit"] == pytest.approx(limit) and 0 == fine["late"]
    starved = lag_stats(_samples(lambda t: 0.0, lag=limit * 2.5), TIMEOUT)
    assert starved["starved"] and starved["late"] == starved["count"] == 800
    assert starved["max"] == pytest.approx(0.5)
    assert {"count": 0, "p50": None, "p99": None, "max": None, "late": 0, "limit": limit,
            "starved": False} == lag_stats([], TIMEOUT)  # fmt: skip


def test_a_starved_driver_makes_the_verdict_inconclusive_with_the_lag_figures(
    lab: LoadedLab,
) -> None:
    # Policies on burned the checkout SLO, but the driver was starved (p99 lag 500 ms > 200 ms):
    # not a failure of the policies, an inconclusive run.
    on = _run(_samples(_outage, lag=0.5), good=0.9)
    off = _run(_samples(_outage), good=0.9)
    result = _result(lab, on, off)
    assert "inconclusive" == result["verdict"] and not result["passed"]
    h = next(
        h
        for h in result["hypotheses"]
        if h["hypothesis"].startswith("SLO checkout held with policies on")
    )
    assert h["passed"] is None
    assert "burned (inconclusive: the load driver was starved" in h["observed"]
    assert "p99 scheduling lag 500 ms (max 500 ms) is above the 200 ms limit" in h["observed"]
    text = render_table(result)
    assert "INCONCLUSIVE  SLO checkout held with policies on outside datastore-crash" in text
    assert "INCONCLUSIVE: the load driver was starved" in text
    assert "500 / 500 ms STARVED" in text
    html = render_html(lab, result)
    assert "starved: inconclusive" in html and "this run&#39;s verdict is inconclusive" in html

    # The same burn with a driver on time is a failure.
    on_time = _run(_samples(_outage), good=0.9)
    assert "failed" == _result(lab, on_time, off)["verdict"]
    # A starved run cannot hide a real failure elsewhere: an order lost still fails.
    lost = _run(_samples(_outage, lag=0.5), good=0.9)
    lost["history"] = dict(lost["history"], lost_count=1)
    assert "failed" == _result(lab, lost, off)["verdict"]
    # And a starved run that held as expected still passes.
    held = _run(_samples(lambda t: 0.0, lag=0.5), good=1.0)
    assert "passed" == _result(lab, held, off)["verdict"]


# -- (d) a static report ---------------------------------------------------------------------------


def test_the_static_report_has_no_hover_legend(lab: LoadedLab) -> None:
    html = render_html(
        lab, _result(lab, _run(_samples(_outage), good=0.999), _run(_samples(_outage), good=0.9))
    )
    # The legends keep the series' names and colours; the values that follow the pointer, the
    # cursor and the selection are not shown, and the plot ignores the pointer.
    assert ".bt-report .u-legend .u-value" in html
    assert (
        ".bt-report .u-cursor-x" in html and ".bt-report .u-over { pointer-events: none; }" in html
    )


def test_hovering_a_chart_of_the_report_shows_no_values(lab: LoadedLab, tmp_path: Path) -> None:
    """In a real (headless) Chromium: the legend names each series, and moving the pointer over
    the plot neither fills in values nor draws a cursor."""
    import playwright.sync_api as playwright  # installed by make (the dev extra), never skipped

    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "make test installs Chromium (scripts/sysdeps.sh)"
    on, off = _run(_samples(_outage), good=0.999), _run(_samples(_outage), good=0.9)
    report = tmp_path / "report.html"
    report.write_text(render_html(lab, _result(lab, on, off)), encoding="utf-8")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            pg = browser.new_page(viewport={"width": 1200, "height": 900})
            pg.goto(report.as_uri())
            pg.wait_for_selector("#lat-checkout .uplot")
            box = pg.locator("#lat-checkout .u-over").bounding_box()
            assert box is not None
            for fx in (0.3, 0.5, 0.8):
                pg.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] / 2)
            visible = pg.evaluate(
                """() => Array.from(document.querySelectorAll(
                    '#lat-checkout .u-value, #lat-checkout .u-cursor-x, #lat-checkout .u-cursor-pt'
                   )).filter(e => getComputedStyle(e).display !== 'none' &&
                                  e.getBoundingClientRect().width > 0).length"""
            )
            labels = pg.locator("#lat-checkout .u-legend .u-series:visible").all_inner_texts()
        finally:
            browser.close()
    assert 0 == visible
    assert ["Buttress", "off"] == [t.strip() for t in labels]


def test_lab_help_documents_the_exit_statuses() -> None:
    from click.testing import CliRunner

    from buttress.lab.cli import lab

    out = CliRunner().invoke(lab, ["--help"]).output
    for code in ("0 every hypothesis held", "1 one failed", "3 inconclusive", "130 interrupted"):
        assert code in " ".join(out.split()), out
