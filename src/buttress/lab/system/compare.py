"""Comparing runs: the load each one put on its dependencies, and Buttress against typical.

**Load amplification.**  The entry service counts every attempt it sends to each dependency, per
second (retries included, however deep in a transport they happen; ``load.attempts_read``).  The
*attempts per request* of a dependency over a window is its attempts divided by the user requests
sent in that window; its *amplification* is that figure over the same figure in the steady state
(the requests before the first fault).  1.0: the fault changed nothing; 3.0: every user request
cost the dependency three times what it costs normally (retries piling onto it); 0: the
dependency was spared (a breaker open, a fallback served).

**Buttress against typical** (``hypotheses.beats_typical``).  For every fault and every SLO, the
Buttress run must spend no more of the budget than the typical run, unless the difference is
noise: the two counts of bad requests are compared with :func:`within_noise` (Poisson: a
difference within two standard deviations of the two counts' sum, plus one request).  Where
typical does as well (within noise, or better), the hypothesis passes or fails as the figures say,
and :func:`as_well_sentences` says so plainly in the report.  On the instance or service a
*latency* fault makes fail (slow, so every attempt is work it does), Buttress must not amplify load
more than typical, nor above the steady load when typical stays below it (a margin of 10% plus
0.1 for the per-second resolution of the counts); see :data:`JUDGED_LOAD`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .driver import Sample, unless_starved
from .load import LoadedLab
from .spec import instance_names

__all__ = [
    "AMPLIFICATION_MARGIN",
    "JUDGED_LOAD",
    "add_amplification",
    "as_well_sentences",
    "attempt_totals",
    "beats_typical",
    "within_noise",
]

AMPLIFICATION_MARGIN = (1.10, 0.10)
"""Buttress's amplification may exceed typical's (or 1.0, the steady load, when typical's is
lower: load at or below the steady state is not amplification) by this factor plus this
constant."""
JUDGED_LOAD = frozenset({"latency"})
"""Fault kinds whose load is judged: a slow dependency still does the work of every attempt
sent to it, so retries piling onto it are the harm.  An outage or a killed instance refuses the
connection at the proxy: the attempts cost the dead dependency nothing, and their count only
says how eagerly a client probes for its return (shown in the table, not judged)."""


def within_noise(a: int, b: int) -> bool:
    """Two counts of bad requests differ by no more than chance would (two standard deviations of
    a Poisson difference, plus one)."""
    return abs(a - b) <= 2 * math.sqrt(a + b) + 1


def attempt_totals(attempts: dict[str, dict[int, int]], samples: list[Sample]) -> dict[str, Any]:
    """Per dependency: every attempt of the run, and attempts per user request."""
    n = len(samples)
    out: dict[str, Any] = {}
    for dep, per_second in sorted(attempts.items()):
        total = sum(per_second.values())
        out[dep] = {"total": total, "per_request": total / n if n else None}
    return out


def _targets(lab: LoadedLab, target: str) -> list[str]:
    """The instances a fault's target stands for (a service: all of its instances)."""
    svc = lab.experiments.system.get(target)
    return instance_names(target, svc) if svc is not None else [target]


def _summed(attempts: dict[str, dict[int, int]], names: list[str]) -> dict[int, int]:
    out: dict[int, int] = {}
    for name in names:
        for t, n in attempts.get(name, {}).items():
            out[t] = out.get(t, 0) + n
    return out


def _per_request(
    per_second: dict[int, int], samples: list[Sample], lo: float, hi: float, wall0: float
) -> float | None:
    requests = sum(1 for s in samples if lo <= s.start < hi)
    if not requests:
        return None
    # An attempt counted in unix second t happened in [t, t + 1): charge it at its middle.
    sent = sum(n for t, n in per_second.items() if lo <= t + 0.5 - wall0 < hi)
    return sent / requests


def add_amplification(
    lab: LoadedLab,
    samples: list[Sample],
    faults: list[dict[str, Any]],
    attempts: dict[str, dict[int, int]],
    *,
    wall0: float,
) -> None:
    """Give each fault of ``faults`` its ``failing`` target (the instance or service it makes
    fail; ``None`` for a burst) and the ``amplification`` over the fault's window (from its
    application to its removal plus the client timeout) of every instance the entry service
    called, and of the failing target."""
    timeout = lab.experiments.load.timeout
    applied = [f["applied_at"] for f in faults if f.get("applied_at") is not None]
    first = min(applied) if applied else math.inf
    for f in faults:
        f["failing"] = None if f["kind"] == "burst" else f["target"]
        series = dict(attempts)
        if f["failing"] is not None:
            series[f["failing"]] = _summed(attempts, _targets(lab, f["failing"]))
        amplification: dict[str, float | None] = {}
        if f.get("applied_at") is not None:
            lo = float(f["applied_at"])
            hi = float(f["removed_at"] if f.get("removed_at") is not None else lo) + timeout
            for name, per_second in sorted(series.items()):
                now = _per_request(per_second, samples, lo, hi, wall0)
                base = _per_request(per_second, samples, 0.0, first, wall0)
                amplification[name] = None if now is None or not base else now / base
        f["amplification"] = amplification


def _fault(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in run["faults"] if f["name"] == name)


def _bad_pairs(runs: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, int, int]]:
    """``(fault, SLO, Buttress's bad requests, typical's)`` for each fault and SLO, in order;
    nothing without both runs."""
    if "on" not in runs or "typical" not in runs:
        return
    for f_on in runs["on"]["faults"]:
        f_typ = _fault(runs["typical"], f_on["name"])
        for slo, bad_on in sorted(f_on.get("bad_requests", {}).items()):
            yield f_on["name"], slo, bad_on, f_typ.get("bad_requests", {}).get(slo, 0)


def beats_typical(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``beats_typical`` hypotheses (empty without both runs): one per fault and SLO on the
    budget, one per fault on the load put on its failing dependency."""
    if "on" not in runs or "typical" not in runs:
        return []
    on, typical = runs["on"], runs["typical"]
    spent: dict[str, list[dict[str, Any]]] = {}
    for fault, slo, bad_on, bad_typ in _bad_pairs(runs):
        noise = within_noise(bad_on, bad_typ)
        spent.setdefault(fault, []).append(
            {
                "hypothesis": f"Buttress spends no more of the {slo} budget than typical "
                f"during {fault}",
                "mode": "on",
                "expected": "fewer bad requests, or within noise",
                "observed": f"{bad_on} bad against {bad_typ}{' (within noise)' if noise else ''}",
                "passed": bad_on <= bad_typ or noise,
            }
        )
    out: list[dict[str, Any]] = []
    for f_on in on["faults"]:
        out.extend(spent.get(f_on["name"], []))
        f_typ = _fault(typical, f_on["name"])
        dep = f_on.get("failing")
        amp_on = (f_on.get("amplification") or {}).get(dep) if dep else None
        amp_typ = (f_typ.get("amplification") or {}).get(dep) if dep else None
        if f_on["kind"] not in JUDGED_LOAD or amp_on is None or amp_typ is None:
            continue
        factor, extra = AMPLIFICATION_MARGIN
        out.append(
            {
                "hypothesis": f"Buttress amplifies load on {dep} no more than typical "
                f"during {f_on['name']}",
                "mode": "on",
                "expected": f"at most x{factor:g} typical's (or the steady load) + {extra:g}",
                "observed": f"x{amp_on:.2f} against x{amp_typ:.2f}",
                "passed": amp_on <= max(amp_typ, 1.0) * factor + extra,
            }
        )
    return [unless_starved(h, {"on": on, "typical": typical}) for h in out]


def as_well_sentences(runs: dict[str, dict[str, Any]]) -> list[str]:
    """Plain sentences naming every fault where typical did as well as Buttress (or better); a
    fault that cost neither run a bad request is no comparison and gets none."""
    out = []
    for fault, slo, bad_on, bad_typ in _bad_pairs(runs):
        if bad_typ < bad_on or (bad_typ > bad_on and within_noise(bad_on, bad_typ)):
            out.append(
                f"During {fault}, typical did as well as Buttress on {slo}: "
                f"{bad_typ} bad requests against Buttress's {bad_on}"
                + (" (the difference is within noise)." if bad_typ > bad_on else ".")
            )
        elif bad_typ == bad_on > 0:  # both untouched (0 each) is no comparison
            out.append(
                f"During {fault}, typical did as well as Buttress on {slo}: "
                f"{bad_on} bad requests each."
            )
    return out
