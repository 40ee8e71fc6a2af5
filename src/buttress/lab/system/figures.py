"""The figures of a lab run: requests, SLO verdicts (users' and services' view), the budget each
fault consumed, per-second series, breaker changes, the driver's own lag, the recovery after each
fault; then the hypotheses and the assessment.

See :mod:`buttress.lab.system.run` for the definitions (budget per fault, SLO verdicts).

**Latency of every request.**  The p99 latency figures and series count every request, not only
the answered ones: a request that timed out counts at the client's timeout (what the user waited),
so a run whose requests time out does not look faster than one whose requests are answered late.
(``p99`` of :func:`figures`' ``requests`` keeps the good requests' p99, labelled as such.)

**Metastable failure.**  After a fault ends, the system should return to its steady state.  For
each fault and request kind, :func:`recovery` compares the error rate in the *recovery window*
(from the fault's removal plus the client timeout, so no request that met the fault counts, to the
next fault or the end of the run) with the *steady state* (the requests sent before the first
fault).  The run *stayed failed* when the error rate of the whole window and of its last half are
both more than :data:`METASTABLE_MARGIN` above the steady state (windows shorter than
:data:`RECOVERY_MIN_WINDOW` seconds or with fewer than :data:`RECOVERY_MIN_REQUESTS` requests, and
runs without a steady state, are not judged).

**Inconclusive.**  A run whose driver was starved (:func:`~buttress.lab.system.driver.lag_stats`)
cannot tell a slow system from a slow driver: :func:`hypotheses` calls an SLO hypothesis of that run
*inconclusive* (``passed: None``) unless it held as expected; :func:`verdict` is then
``"inconclusive"`` instead of a false ``"failed"``, with the lag figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from buttress.chaos.checker import History, check_set
from buttress.slo import SLIStore
from buttress.slo import math as slomath
from buttress.slo.evaluator import evaluate
from buttress.slo.spec import LatencySLI, RatioSLI, SLOSpec, WindowSLI

from .caught import caught_budget, caught_in_flight
from .compare import add_amplification, attempt_totals, beats_typical
from .driver import Sample, lag_stats
from .load import LoadedLab
from .plan import FaultPlan

__all__ = [
    "METASTABLE_MARGIN",
    "RECOVERY_MIN_REQUESTS",
    "RECOVERY_MIN_WINDOW",
    "assessment",
    "figures",
    "hypotheses",
    "metastable_sentences",
    "plotted_latency",
    "recovery",
    "slo_kind",
    "starved_text",
    "verdict",
]

METASTABLE_MARGIN = 0.05
"""Stayed failed: the recovery window's error rate exceeds the steady state's by more than this."""
RECOVERY_MIN_WINDOW = 2.0
"""Seconds: a shorter recovery window is not judged."""
RECOVERY_MIN_REQUESTS = 20
"""A recovery window (or a steady state) with fewer requests is not judged."""


def slo_kind(slo: SLOSpec, kinds: dict[str, Any]) -> str | None:
    """The request kind an SLO is about: its SLI's ``pipeline``, else its own name (or None)."""
    sli = slo.sli.of if isinstance(slo.sli, WindowSLI) else slo.sli
    pipe = sli.pipeline if isinstance(sli, RatioSLI | LatencySLI) else None
    if pipe in kinds:
        return pipe
    return slo.name if slo.name in kinds else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def figures(
    lab: LoadedLab,
    samples: list[Sample],
    plan: FaultPlan,
    history: History,
    *,
    stores: tuple[Path, Path],
    wall0: float,
    duration: float,
    attempts: dict[str, dict[int, int]] | None = None,
    pending: set[str] | frozenset[str] = frozenset(),
    effects: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Everything measured in one run; ``stores`` are the services' and the driver's SLI stores,
    ``attempts`` what the entry service sent to each dependency per unix second, ``pending`` the
    stored orders left unfinished."""
    kinds = lab.experiments.load.requests
    timeout = lab.experiments.load.timeout
    requests = {k: _requests([s for s in samples if s.kind == k], timeout) for k in kinds}
    slos = _slos(lab, kinds, *stores)
    check = check_set(history)
    faults = _faults(lab, samples, plan, requests=requests, slos=slos, duration=duration)
    breakers, breaker_names = _breakers(stores[0], wall0)
    unfinished = sorted(pending & {str(i) for i in check.acknowledged})
    if attempts is not None:
        add_amplification(lab, samples, faults, attempts, wall0=wall0)
    acknowledged = {str(i) for i in check.acknowledged}
    return {
        "effects": {
            name: _effect(counts, acknowledged) for name, counts in (effects or {}).items()
        },
        "pending": {"count": len(unfinished), "ids": unfinished[:20]},
        "attempts": None if attempts is None else attempt_totals(attempts, samples),
        "requests": requests,
        "slos": slos,
        "faults": faults,
        "history": check.summary() | {"lost": check.summary()["lost"][:20]},
        "series": _series(samples, slos, kinds, duration, timeout),
        "breakers": breakers,
        "breaker_names": breaker_names,
        "driver": lag_stats(samples, timeout),
        "recovery": recovery(samples, faults, kinds, duration=duration, timeout=timeout),
    }


def _effect(counts: dict[str, int], acknowledged: set[str]) -> dict[str, Any]:
    """How often each acknowledged order had one effect: missing (0), once, duplicated (2+)."""
    missing = sorted(o for o in acknowledged if counts.get(o, 0) == 0)
    twice = sorted(o for o in acknowledged if counts.get(o, 0) > 1)
    return {
        "once": sum(1 for o in acknowledged if counts.get(o, 0) == 1),
        "missing_count": len(missing),
        "missing": missing[:20],
        "duplicated_count": len(twice),
        "duplicated": twice[:20],
    }


def plotted_latency(s: Sample, timeout: float) -> float:
    """A request's latency as the charts count it: a timeout at the client's ``timeout``."""
    return timeout if s.timed_out else min(s.latency, timeout)


def _requests(ks: list[Sample], timeout: float) -> dict[str, Any]:
    good = sum(s.good for s in ks)
    return {
        "total": len(ks),
        "good": good,
        "bad": len(ks) - good,
        "timed_out": sum(s.timed_out for s in ks),
        "good_ratio": good / len(ks) if ks else None,
        "p50": _percentile([s.latency for s in ks if s.good], 0.5),
        "p99": _percentile([s.latency for s in ks if s.good], 0.99),
        "p99_all": _percentile([plotted_latency(s, timeout) for s in ks], 0.99),
    }


def _slos(
    lab: LoadedLab, kinds: dict[str, Any], store_path: Path, client_path: Path
) -> list[dict[str, Any]]:
    """SLO verdicts from what the users saw (the driver's store); the services' own view beside."""
    at = time.time() + 60
    with SLIStore(client_path) as store:
        statuses = evaluate(lab.spec.slos, store, at=at)
    with SLIStore(store_path) as store:
        served = evaluate(lab.spec.slos, store, at=at)
    slos: list[dict[str, Any]] = []
    for slo, st, sv in zip(lab.spec.slos, statuses, served, strict=True):
        verdict = "no data" if not st.total else ("held" if st.budget_consumed <= 1 else "burned")
        slos.append(
            {
                "name": slo.name,
                "objective": slo.objective,
                "request_kind": slo_kind(slo, kinds),
                "good": st.good,
                "total": st.total,
                "sli": st.sli,
                "budget_consumed": st.budget_consumed,
                "verdict": verdict,
                "service_good": sv.good,
                "service_total": sv.total,
                "service_sli": sv.sli,
                "service_budget_consumed": sv.budget_consumed,
            }
        )
    return slos


def _faults(
    lab: LoadedLab,
    samples: list[Sample],
    plan: FaultPlan,
    *,
    requests: dict[str, Any],
    slos: list[dict[str, Any]],
    duration: float,
) -> list[dict[str, Any]]:
    """Each fault as it happened, with the share of each SLO's budget it consumed."""
    timeout = lab.experiments.load.timeout
    faults: list[dict[str, Any]] = []
    starts = sorted(a.applied_at for a in plan.faults if a.applied_at is not None)
    windows: list[tuple[str, float, float]] = []
    for a in plan.faults:
        entry = a.to_json()
        per_slo: dict[str, float | None] = {}
        bad_requests: dict[str, int] = {}
        if a.applied_at is not None:
            lo = a.applied_at
            hi = (a.removed_at if a.removed_at is not None else duration) + timeout
            # A request is charged to one fault only: the window ends where the next one begins.
            hi = min([hi, *(t for t in starts if t > lo)])
            windows.append((a.fault.name, lo, hi))
            for s in slos:
                k = s["request_kind"]
                total = requests[k]["total"] if k else 0
                if not k or not total:
                    per_slo[s["name"]] = None
                    continue
                bad = sum(1 for x in samples if x.kind == k and not x.good and lo <= x.start < hi)
                ratio = 1 - s["objective"] / 100
                per_slo[s["name"]] = slomath.budget_consumed(bad, total, ratio)
                bad_requests[s["name"]] = bad
        entry["budget_consumed"] = per_slo
        entry["bad_requests"] = bad_requests
        faults.append(entry)
    kinds = {s["name"]: s["request_kind"] for s in slos if s["request_kind"]}
    caught = caught_in_flight(samples, windows, kinds)
    for entry in faults:
        entry["caught_in_flight"] = caught.get(entry["name"], {})
    return faults


def _series(
    samples: list[Sample],
    slos: list[dict[str, Any]],
    kinds: dict[str, Any],
    duration: float,
    timeout: float,
) -> dict[str, Any]:
    """Per-second series: bad fraction, p99 latency (every request, timeouts at ``timeout``) and
    timeouts per request kind, and each SLO's cumulative budget consumption (client side)."""
    n = max(1, math.ceil(duration))
    out: dict[str, Any] = {"t": list(range(n))}
    buckets: dict[str, list[list[Sample]]] = {k: [[] for _ in range(n)] for k in kinds}
    for s in samples:
        i = min(n - 1, int(s.start))
        buckets[s.kind][i].append(s)
    for k, bs in buckets.items():
        out[f"{k}_error"] = [(sum(not s.good for s in b) / len(b)) if b else None for b in bs]
        out[f"{k}_p99"] = [
            _percentile([plotted_latency(s, timeout) for s in b], 0.99) if b else None for b in bs
        ]
        out[f"{k}_timeouts"] = [sum(s.timed_out for s in b) for b in bs]
        out[f"{k}_rate"] = [len(b) for b in bs]
    for slo in slos:
        k = slo["request_kind"]
        if not k:
            continue
        total = sum(len(b) for b in buckets[k])
        ratio = 1 - slo["objective"] / 100
        cum = 0
        series: list[float | None] = []
        for b in buckets[k]:
            cum += sum(not s.good for s in b)
            series.append(slomath.budget_consumed(cum, total, ratio) if total else None)
        out[f"budget_{slo['name']}"] = series
    return out


def _breakers(store_path: Path, wall0: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Circuit-breaker state changes the services published into the store, and the name of
    every breaker published (those that never changed state too)."""
    from buttress.dashboard.feed import FeedReader

    with FeedReader(store_path) as reader:
        events = reader.events(since=wall0 - 5, limit=1_000_000)  # every change of the run
        states = reader.states()
    changes = [
        {
            "time": round(e.time - wall0, 3),
            "name": f"{e.scope}/{e.name}",
            "state": e.state,
            "source": e.source,
        }
        for e in events
        if e.policy_type == "circuit_breaker"
    ]
    names = {f"{r.scope}/{r.name}" for r in states if r.policy_type == "circuit_breaker"}
    return changes, sorted(names | {str(c["name"]) for c in changes})


def _error_rate(samples: list[Sample], lo: float, hi: float) -> tuple[int, float | None]:
    window = [s for s in samples if lo <= s.start < hi]
    if not window:
        return 0, None
    return len(window), sum(not s.good for s in window) / len(window)


def recovery(
    samples: list[Sample],
    faults: list[dict[str, Any]],
    kinds: Any,
    *,
    duration: float,
    timeout: float,
) -> list[dict[str, Any]]:
    """Per fault and request kind: the error rate after the fault ended against the steady state,
    and whether the run stayed failed (see the module docstring).  ``faults`` are the run's faults
    as :func:`figures` reports them (``applied_at``, ``removed_at``)."""
    applied = [f for f in faults if f.get("applied_at") is not None]
    if not applied:
        return []
    first = min(float(f["applied_at"]) for f in applied)
    out: list[dict[str, Any]] = []
    for f in applied:
        if f.get("removed_at") is None:
            continue
        end = float(f["removed_at"])
        lo = end + timeout
        # The window ends where the next fault begins; a fault still applied spoils it.
        later = [float(g["applied_at"]) for g in applied if g["applied_at"] > f["applied_at"]]
        overlapping = any(
            g is not f
            and float(g["applied_at"]) <= lo
            and (g.get("removed_at") is None or float(g["removed_at"]) > end)
            for g in applied
        )
        hi = min([duration, *(t for t in later if t > end)])
        if overlapping or hi - lo < RECOVERY_MIN_WINDOW:
            continue
        for k in kinds:
            ks = [s for s in samples if s.kind == k]
            n_steady, steady = _error_rate(ks, 0.0, first)
            n, rate = _error_rate(ks, lo, hi)
            _, tail = _error_rate(ks, (lo + hi) / 2, hi)
            if n_steady < RECOVERY_MIN_REQUESTS or n < RECOVERY_MIN_REQUESTS:
                continue
            assert steady is not None and rate is not None
            stayed = (
                rate > steady + METASTABLE_MARGIN
                and tail is not None
                and tail > steady + METASTABLE_MARGIN
            )
            out.append(
                {
                    "fault": f["name"],
                    "kind": k,
                    "recovered_after": _recovered_after(ks, end, hi, steady),
                    "ended_at": end,
                    "window": [lo, hi],
                    "requests": n,
                    "error_rate": rate,
                    "last_half_error_rate": tail,
                    "steady_error_rate": steady,
                    "stayed_failed": stayed,
                }
            )
    return out


def _recovered_after(ks: list[Sample], end: float, hi: float, steady: float) -> float | None:
    """Seconds from a fault's removal to the first one-second window (stepping 0.5 s) whose error
    rate is back within :data:`METASTABLE_MARGIN` of the steady state; ``None``: not before
    ``hi``."""
    t = end
    while t + 1.0 <= hi:
        n, rate = _error_rate(ks, t, t + 1.0)
        if n and rate is not None and rate <= steady + METASTABLE_MARGIN:
            return round(t - end, 2)
        t += 0.5
    return None


def metastable_sentences(mode: str, run: dict[str, Any]) -> list[str]:
    """One sentence, with the figures, for each request kind that stayed failed after a fault."""
    out = []
    for r in run.get("recovery", []):
        if not r["stayed_failed"]:
            continue
        lo, hi = r["window"]
        out.append(
            f"With policies {mode}, {r['kind']} stayed failed after {r['fault']} ended at "
            f"{r['ended_at']:.1f} s: {r['error_rate']:.1%} of its requests failed from "
            f"{lo:.1f} to {hi:.1f} s ({r['last_half_error_rate']:.1%} in the last half) against "
            f"{r['steady_error_rate']:.1%} before the first fault, so the fault was gone but the "
            "system did not recover (a metastable failure)."
        )
    return out


def hypotheses(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each hypothesis of ``experiments.hypotheses`` per run: expected, observed, passed."""
    hyp = lab.experiments.hypotheses
    out: list[dict[str, Any]] = []
    for name, expect in hyp.slos.items():
        for mode, run in runs.items():
            wanted = {"on": expect.policies_on, "off": expect.policies_off}.get(
                mode, expect.typical
            )
            if wanted == "any":  # nothing expected, nothing to check
                continue
            got, observed = _judged_verdict(run, name, expect.except_during)
            passed: bool | None = wanted == got
            lag = run.get("driver") or {}
            # A starved driver makes the system look worse than it is: a failure, or a "burned"
            # that was expected, cannot be told from the driver's own lateness.
            if lag.get("starved") and (not passed or got == "burned"):
                passed = None
                observed = f"{got} (inconclusive: {starved_text(lag)})"
            besides = f" outside {', '.join(expect.except_during)}" if expect.except_during else ""
            out.append(
                {
                    "hypothesis": f"SLO {name} {wanted} with {_with(mode)}{besides}",
                    "mode": mode,
                    "expected": wanted,
                    "observed": observed,
                    "passed": passed,
                }
            )
    if hyp.nothing_lost:
        for mode, run in runs.items():
            h = run["history"]
            out.append(
                {
                    "hypothesis": f"no acknowledged order lost with {_with(mode)}",
                    "mode": mode,
                    "expected": "0 lost",
                    "observed": (
                        "no final read"
                        if h["valid"] is None
                        else f"{h['lost_count']} lost of {h['acknowledged_count']} acknowledged"
                    ),
                    "passed": h["valid"] is True and h["lost_count"] == 0,
                }
            )
    out.extend(_exactly_once(hyp.exactly_once, runs))
    if hyp.beats_typical:
        out.extend(beats_typical(runs))
    return out


def _exactly_once(required: Sequence[str], runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run with effects: none twice; and, in the runs named, each exactly once."""
    out = []
    for mode, run in runs.items():
        effects = run.get("effects") or {}
        if not effects:
            continue
        names = " and ".join(effects)
        twice = {n: e["duplicated_count"] for n, e in effects.items()}
        missing = {n: e["missing_count"] for n, e in effects.items()}
        observed = ", ".join(
            f"{n}: {e['once']} once, {e['missing_count']} never, {e['duplicated_count']} twice+"
            for n, e in effects.items()
        )
        if mode in required:
            out.append(
                {
                    "hypothesis": f"every acknowledged order {names} exactly once with "
                    f"{_with(mode)}",
                    "mode": mode,
                    "expected": "each exactly once",
                    "observed": observed,
                    "passed": not any(twice.values()) and not any(missing.values()),
                }
            )
        else:
            out.append(
                {
                    "hypothesis": f"no acknowledged order {names} twice with {_with(mode)}",
                    "mode": mode,
                    "expected": "at most once",
                    "observed": observed,
                    "passed": not any(twice.values()),
                }
            )
    return out


def _with(mode: str) -> str:
    return "the typical protections" if mode == "typical" else f"policies {mode}"


def _judged_verdict(run: dict[str, Any], name: str, leave_out: list[str]) -> tuple[str, str]:
    """``(verdict, observed)`` of SLO ``name`` over the run, without the budget the faults named
    in ``leave_out`` consumed (each request is charged to at most one fault, so the shares add)."""
    slo = next(s for s in run["slos"] if s["name"] == name)
    if not leave_out or slo["verdict"] == "no data":
        return slo["verdict"], slo["verdict"]
    spent = {f["name"]: f["budget_consumed"].get(name) or 0.0 for f in run["faults"]}
    caught, n_caught = caught_budget(run, name, leave_out)
    rest = slo["budget_consumed"] - sum(spent.get(fault, 0.0) for fault in leave_out) - caught
    got = "held" if rest <= 1 else "burned"
    struck = f" and the {n_caught} bad request(s) it caught in flight" if n_caught else ""
    observed = (
        f"{got}: {rest:.0%} of the budget outside {', '.join(leave_out)}{struck} "
        f"({slo['budget_consumed']:.0%} over the whole run, {slo['verdict']})"
    )
    return got, observed


def starved_text(lag: dict[str, Any]) -> str:
    """The lag figures of a starved driver, in words."""
    return (
        f"the load driver was starved, its p99 scheduling lag {lag['p99'] * 1000:.0f} ms "
        f"(max {lag['max'] * 1000:.0f} ms) is above the {lag['limit'] * 1000:.0f} ms limit"
    )


def verdict(hypotheses: list[dict[str, Any]]) -> str:
    """``"failed"`` when a hypothesis failed, else ``"inconclusive"`` when one could not be
    judged (a starved driver), else ``"passed"``."""
    if any(h["passed"] is False for h in hypotheses):
        return "failed"
    if any(h["passed"] is None for h in hypotheses):
        return "inconclusive"
    return "passed"


def assessment(lab: LoadedLab) -> dict[str, Any] | None:
    """The ``architecture:`` section assessed (steady state, exact); ``None`` without one."""
    arch = lab.spec.architecture
    if arch is None:
        return None
    from buttress.assess import assess
    from buttress.assess.system import System

    report = assess(System.from_spec(arch), source=str(lab.file))
    journeys = [
        {
            "name": j["name"],
            "target": j["target"],
            "availability": j["availability"],
            "meets_target": j["meets_target"],
            "downtime_minutes_per_month": j["downtime_minutes_per_month"],
            "spofs": [c.get("explanation", "") for c in j["spofs"]],
        }
        for j in report["journeys"]
    ]
    return {"journeys": journeys}
