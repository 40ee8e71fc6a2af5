"""The figures of a lab run: requests, SLO verdicts (users' and services' view), the budget each
fault consumed, per-second series, breaker changes; then the hypotheses and the assessment.

See :mod:`buttress.lab.system.run` for the definitions (budget per fault, SLO verdicts).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from buttress.chaos.checker import History, check_set
from buttress.slo import SLIStore
from buttress.slo import math as slomath
from buttress.slo.evaluator import evaluate
from buttress.slo.spec import LatencySLI, RatioSLI, SLOSpec, WindowSLI

from .driver import Sample
from .load import LoadedLab
from .plan import FaultPlan

__all__ = ["assessment", "figures", "hypotheses", "slo_kind"]


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
) -> dict[str, Any]:
    """Everything measured in one run; ``stores`` are the services' and the driver's SLI stores."""
    kinds = lab.experiments.load.requests
    requests = {k: _requests([s for s in samples if s.kind == k]) for k in kinds}
    slos = _slos(lab, kinds, *stores)
    check = check_set(history)
    return {
        "requests": requests,
        "slos": slos,
        "faults": _faults(lab, samples, plan, requests=requests, slos=slos, duration=duration),
        "history": check.summary() | {"lost": check.summary()["lost"][:20]},
        "series": _series(samples, slos, kinds, duration),
        "breakers": _breakers(stores[0], wall0),
    }


def _requests(ks: list[Sample]) -> dict[str, Any]:
    good = sum(s.good for s in ks)
    return {
        "total": len(ks),
        "good": good,
        "bad": len(ks) - good,
        "good_ratio": good / len(ks) if ks else None,
        "p50": _percentile([s.latency for s in ks if s.good], 0.5),
        "p99": _percentile([s.latency for s in ks if s.good], 0.99),
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
    for a in plan.faults:
        entry = a.to_json()
        per_slo: dict[str, float | None] = {}
        if a.applied_at is not None:
            lo = a.applied_at
            hi = (a.removed_at if a.removed_at is not None else duration) + timeout
            # A request is charged to one fault only: the window ends where the next one begins.
            hi = min([hi, *(t for t in starts if t > lo)])
            for s in slos:
                k = s["request_kind"]
                total = requests[k]["total"] if k else 0
                if not k or not total:
                    per_slo[s["name"]] = None
                    continue
                bad = sum(1 for x in samples if x.kind == k and not x.good and lo <= x.start < hi)
                ratio = 1 - s["objective"] / 100
                per_slo[s["name"]] = slomath.budget_consumed(bad, total, ratio)
        entry["budget_consumed"] = per_slo
        faults.append(entry)
    return faults


def _series(
    samples: list[Sample], slos: list[dict[str, Any]], kinds: dict[str, Any], duration: float
) -> dict[str, Any]:
    """Per-second series: bad fraction and p99 latency per request kind, and each SLO's
    cumulative budget consumption (client side)."""
    n = max(1, math.ceil(duration))
    out: dict[str, Any] = {"t": list(range(n))}
    buckets: dict[str, list[list[Sample]]] = {k: [[] for _ in range(n)] for k in kinds}
    for s in samples:
        i = min(n - 1, int(s.start))
        buckets[s.kind][i].append(s)
    for k, bs in buckets.items():
        out[f"{k}_error"] = [(sum(not s.good for s in b) / len(b)) if b else None for b in bs]
        out[f"{k}_p99"] = [
            _percentile([s.latency for s in b if s.status], 0.99) if b else None for b in bs
        ]
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


def _breakers(store_path: Path, wall0: float) -> list[dict[str, Any]]:
    """Circuit-breaker state changes the services published into the store."""
    from buttress.dashboard.feed import FeedReader

    with FeedReader(store_path) as reader:
        events = reader.events(since=wall0 - 5, limit=5000)
    return [
        {
            "time": round(e.time - wall0, 3),
            "name": f"{e.scope}/{e.name}",
            "state": e.state,
            "source": e.source,
        }
        for e in events
        if e.policy_type == "circuit_breaker"
    ]


def hypotheses(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each hypothesis of ``experiments.hypotheses`` per run: expected, observed, passed."""
    hyp = lab.experiments.hypotheses
    out: list[dict[str, Any]] = []
    for name, expect in hyp.slos.items():
        for mode in runs:
            wanted = expect.policies_on if mode == "on" else expect.policies_off
            got = next(s["verdict"] for s in runs[mode]["slos"] if s["name"] == name)
            out.append(
                {
                    "hypothesis": f"SLO {name} {wanted} with policies {mode}",
                    "expected": wanted,
                    "observed": got,
                    "passed": wanted in ("any", got),
                }
            )
    if hyp.nothing_lost:
        for mode, run in runs.items():
            h = run["history"]
            out.append(
                {
                    "hypothesis": f"no acknowledged order lost with policies {mode}",
                    "expected": "0 lost",
                    "observed": (
                        "no final read"
                        if h["valid"] is None
                        else f"{h['lost_count']} lost of {h['acknowledged_count']} acknowledged"
                    ),
                    "passed": h["valid"] is True and h["lost_count"] == 0,
                }
            )
    return out


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
