"""Who was shed, and the degraded mode: the lab's shed figures, the ``shed_first`` and
``degraded`` hypotheses, their rows, their checks in the spec, and ``experiments.runs``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from _servers import UvicornThread
from buttress.chaos.checker import History
from buttress.errors import SpecError
from buttress.lab.system.driver import LoadDriver, Sample
from buttress.lab.system.load import load_lab
from buttress.lab.system.priority import priority_hypotheses, priority_rows, shed_figures
from buttress.lab.system.spec import LoadSpec

ROOT = Path(__file__).resolve().parents[2]
SURGE = ROOT / "examples" / "surge" / "reliability.yaml"


def _sample(kind: str, *, status: int = 200, shed: bool = False) -> Sample:
    return Sample(kind, 1.0, 0.01, status, 0 < status < 500, shed=shed)


def test_shed_figures_count_only_refusals_that_invite_the_client_back() -> None:
    samples = [
        _sample("browse", status=503, shed=True),
        _sample("browse", status=503, shed=True),
        _sample("browse", status=503),  # a failure, not a shed
        _sample("browse"),
        _sample("checkout"),
    ]
    figures = shed_figures(samples, ["browse", "checkout", "search"])
    assert {"total": 4, "shed": 2, "share": 0.5} == figures["browse"]
    assert {"total": 1, "shed": 0, "share": 0.0} == figures["checkout"]
    assert {"total": 0, "shed": 0, "share": None} == figures["search"]


def test_the_driver_marks_a_503_with_retry_after_as_shed_and_one_without_as_failed() -> None:
    async def refused(request: Request) -> PlainTextResponse:
        return PlainTextResponse("shed", 503, headers={"Retry-After": "1"})

    async def broken(request: Request) -> PlainTextResponse:
        return PlainTextResponse("down", 503)

    app = Starlette(routes=[Route("/refused", refused), Route("/broken", broken)])
    load = LoadSpec.model_validate(
        {
            "entry": "api",
            "requests": {
                "refused": {"path": "/refused", "rate": 40},
                "broken": {"path": "/broken", "rate": 40},
            },
        }
    )
    with UvicornThread(app) as server:
        driver = LoadDriver(server.url, load, duration=0.5, history=History())
        samples = asyncio.run(driver.run())
    refused_samples = [s for s in samples if s.kind == "refused"]
    broken_samples = [s for s in samples if s.kind == "broken"]
    assert refused_samples and broken_samples
    assert all(s.shed and not s.good and s.status == 503 for s in refused_samples)
    assert not any(s.shed or s.good for s in broken_samples)


class _Lab:
    """What priority_hypotheses reads of a loaded lab: ``experiments.hypotheses``."""

    def __init__(self, hypotheses: dict[str, Any]) -> None:
        lab = load_lab(SURGE)
        hyp = lab.experiments.hypotheses.model_validate(hypotheses)
        self.experiments = lab.experiments.model_copy(update={"hypotheses": hyp})


def _run(browse: float, checkout: float, modes: list[dict[str, Any]], **extra: Any) -> Any:
    shed = {
        "browse": {"total": 100, "shed": round(browse * 100), "share": browse},
        "checkout": {"total": 100, "shed": round(checkout * 100), "share": checkout},
    }
    return {"shed": shed, "healing": {"modes": modes, "journal": [], "restarts": []}, **extra}


SHED_FIRST = {"shed_first": {"shed": "browse", "protect": "checkout", "at_most": 0.01}}
DEGRADED = {"degraded": {"mode": "recommendations-off", "restored": True}}


def test_shed_first_needs_more_of_one_kind_shed_and_little_of_the_other() -> None:
    lab: Any = _Lab(SHED_FIRST)
    (held,) = priority_hypotheses(lab, {"on": _run(0.3, 0.0, [])})
    assert held["passed"] is True and "browse 30.0% shed, checkout 0.0%" == held["observed"]
    (too_much,) = priority_hypotheses(lab, {"on": _run(0.3, 0.02, [])})
    assert too_much["passed"] is False
    (reversed_,) = priority_hypotheses(lab, {"on": _run(0.0, 0.0, [])})
    assert reversed_["passed"] is False  # nothing shed at all: browse was not shed first
    starved = _run(0.0, 0.05, [], driver={"starved": True})
    (unsure,) = priority_hypotheses(lab, {"on": starved})
    assert unsure["passed"] is None and "starved" in unsure["observed"]
    assert [] == priority_hypotheses(lab, {"off": _run(0.0, 0.0, [])})  # judged on Buttress only


def test_degraded_needs_the_mode_switched_on_and_off_again() -> None:
    lab: Any = _Lab(DEGRADED)
    twice = [
        {"mode": "recommendations-off", "on_at": 7.1, "off_at": 14.2},
        {"mode": "recommendations-off", "on_at": 16.7, "off_at": 24.2},
    ]
    (ok,) = priority_hypotheses(lab, {"on": _run(0, 0, twice)})
    assert ok["passed"] is True and "on 2x (7.1-14.2 s, 16.7-24.2 s)" == ok["observed"]
    still_on = [{"mode": "recommendations-off", "on_at": 7.1, "off_at": None}]
    (left_on,) = priority_hypotheses(lab, {"on": _run(0, 0, still_on)})
    assert left_on["passed"] is False and "7.1-end s" in left_on["observed"]
    (never,) = priority_hypotheses(lab, {"on": _run(0, 0, [])})
    assert never["passed"] is False and "never switched on" == never["observed"]
    other = [{"mode": "essential-only", "on_at": 1.0, "off_at": 2.0}]
    (wrong_mode,) = priority_hypotheses(lab, {"on": _run(0, 0, other)})
    assert wrong_mode["passed"] is False
    lenient: Any = _Lab({"degraded": {"mode": "recommendations-off", "restored": False}})
    (on_only,) = priority_hypotheses(lenient, {"on": _run(0, 0, still_on)})
    assert on_only["passed"] is True


def test_rows_show_the_shed_share_per_kind_only_when_something_was_shed() -> None:
    runs = {"off": _run(0.0, 0.0, []), "on": _run(0.135, 0.0, [])}
    assert [
        ("browse: shed (503 + Retry-After)", "0 (0.0%)", "14 (13.5%)"),
        ("checkout: shed (503 + Retry-After)", "0 (0.0%)", "0 (0.0%)"),
    ] == priority_rows(runs, ["off", "on"])
    assert [] == priority_rows({"off": _run(0.0, 0.0, [])}, ["off"])


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "shed_first: {shed: browse,",
            "shed_first: {shed: brwose,",
            "experiments.hypotheses.shed_first.shed: unknown request kind 'brwose' "
            "(browse, checkout)",
        ),
        (
            "protect: checkout, at_most",
            "protect: browse, at_most",
            "experiments.hypotheses.shed_first.protect: must differ from shed",
        ),
        (
            "degraded: {mode: recommendations-off,",
            "degraded: {mode: recs-off,",
            "experiments.hypotheses.degraded.mode: unknown mode 'recs-off' "
            "(known: recommendations-off)",
        ),
        (
            "  runs: [off, on]",
            "  runs: [off, fast]",
            "experiments.runs[1]: Input should be 'off', 'typical' or 'on' (got 'fast')",
        ),
    ],
)
def test_bad_references_are_located_errors(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = SURGE.read_text()
    assert old in text
    bad = tmp_path / "reliability.yaml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(SpecError) as e:
        load_lab(bad)
    assert message in str(e.value)
    assert "reliability.yaml:" in str(e.value)


def test_degraded_needs_healing(tmp_path: Path) -> None:
    text = SURGE.read_text()
    start = text.index("  healing:\n")
    end = text.index("  hypotheses:\n")
    bad = tmp_path / "reliability.yaml"
    bad.write_text(text[:start] + text[end:])
    with pytest.raises(SpecError) as e:
        load_lab(bad)
    assert "experiments.hypotheses.degraded: needs experiments.healing:" in str(e.value)


def test_the_files_runs_are_the_default_runs() -> None:
    surge = load_lab(SURGE)
    assert ["off", "on"] == surge.experiments.runs
    assert ("off", "on") == surge.experiments.run_modes()
    shop = load_lab(ROOT / "examples" / "shop")
    assert ("off", "typical", "on") == shop.experiments.run_modes()  # every run, as before
