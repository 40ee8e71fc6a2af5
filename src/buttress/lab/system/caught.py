"""Requests a fault caught in flight, for the SLO hypotheses' ``except_during``.

The budget a fault consumed counts the bad requests that *arrived* while it was applied (see
:mod:`buttress.lab.system.run`).  A request that arrived just before (a write sent 10 ms before the
primary database was lost, cut off with its connection) went bad because of the fault too, but its
arrival places it outside the fault's window: in the previous fault's, or in none.  For each fault,
:func:`caught_in_flight` counts the bad requests that were in flight at the moment it was applied
(arrived before, answered or timed out after), each under the fault whose window holds its arrival
(``""``: none); a request in flight across several applications is the last one's.

``except_during`` leaves out of an SLO's verdict the budget of the faults it names *and* of the
requests they caught in flight (:func:`caught_budget`), unless that request is already left out
with the fault whose window holds it.  The per-fault budgets in the report are unchanged: each
request is still charged to at most one fault, by its arrival.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from buttress.slo import math as slomath

from .driver import Sample

__all__ = ["caught_budget", "caught_in_flight"]


def caught_in_flight(
    samples: Iterable[Sample], windows: Sequence[tuple[str, float, float]], kinds: dict[str, str]
) -> dict[str, dict[str, dict[str, int]]]:
    """``{fault: {slo: {charged to: n}}}`` over ``windows`` (``(fault, applied_at, end)`` of every
    applied fault: the window of arrivals charged to it) and ``kinds`` (SLO name -> request kind):
    for each fault, the bad requests in flight when it was applied (see the module docstring)."""
    applied = sorted((lo, name) for name, lo, _ in windows)
    by_kind: dict[str, list[str]] = {}
    for slo, kind in kinds.items():
        by_kind.setdefault(kind, []).append(slo)
    out: dict[str, dict[str, dict[str, int]]] = {}
    for s in samples:
        if s.good or s.kind not in by_kind:
            continue
        end = s.start + s.lag + s.latency  # answered (or given up on) then
        struck = [name for lo, name in applied if s.start < lo <= end]
        if not struck:
            continue
        charged = next((n for n, lo, hi in windows if lo <= s.start < hi), "")
        per_slo = out.setdefault(struck[-1], {})
        for slo in by_kind[s.kind]:
            counts = per_slo.setdefault(slo, {})
            counts[charged] = counts.get(charged, 0) + 1
    return out


def caught_budget(run: dict[str, Any], name: str, leave_out: Sequence[str]) -> tuple[float, int]:
    """The share of SLO ``name``'s budget spent by the requests the faults in ``leave_out`` caught
    in flight (not already left out with the fault they arrived in), and how many there were."""
    slo = next(s for s in run["slos"] if s["name"] == name)
    kind = slo.get("request_kind")
    total = (run.get("requests") or {}).get(kind, {}).get("total") if kind else None
    if not total:
        return 0.0, 0
    n = 0
    for fault in run["faults"]:
        if fault["name"] not in leave_out:
            continue
        counts = (fault.get("caught_in_flight") or {}).get(name, {})
        n += sum(c for charged, c in counts.items() if charged not in leave_out)
    ratio = 1 - float(slo["objective"]) / 100
    return slomath.budget_consumed(n, total, ratio), n
