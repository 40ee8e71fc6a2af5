"""Who was shed, and the degraded mode: figures, hypotheses and report rows.

* :func:`shed_figures`: per request kind, how many requests the system *shed*: answered ``503``
  with ``Retry-After`` (a load shedder's or a limit's refusal, which invites the client back),
  told apart from failures (a ``503`` without it, a timeout, a refused connection);
* :func:`priority_hypotheses`: ``hypotheses.shed_first`` and ``hypotheses.degraded`` of
  :mod:`buttress.lab.system.expectations`, judged on the Buttress run;
* :func:`priority_rows`: the side-by-side rows (shed share per kind, when any run shed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .driver import Sample, unless_starved

if TYPE_CHECKING:
    from .load import LoadedLab

__all__ = ["priority_hypotheses", "priority_rows", "shed_figures"]


def shed_figures(samples: Sequence[Sample], kinds: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per request kind: ``total``, ``shed`` and ``share`` (shed / total, ``None`` without
    requests)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        mine = [s for s in samples if s.kind == kind]
        shed = sum(1 for s in mine if s.shed)
        out[kind] = {"total": len(mine), "shed": shed, "share": shed / len(mine) if mine else None}
    return out


def _share(run: dict[str, Any], kind: str) -> float:
    return float((run.get("shed") or {}).get(kind, {}).get("share") or 0.0)


def priority_hypotheses(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``shed_first`` and ``degraded``, on the Buttress run (nothing when it did not run)."""
    hyp = lab.experiments.hypotheses
    run = runs.get("on")
    if run is None:
        return []
    out: list[dict[str, Any]] = []
    first = hyp.shed_first
    if first is not None:
        shed, protect = _share(run, first.shed), _share(run, first.protect)
        passed: bool | None = shed > protect and protect <= first.at_most
        observed = f"{first.shed} {shed:.1%} shed, {first.protect} {protect:.1%}"
        out.append(
            {
                "hypothesis": f"{first.shed} shed before {first.protect} with policies on "
                f"({first.protect} at most {first.at_most:.0%} shed)",
                "mode": "on",
                "expected": f"{first.shed} > {first.protect}, {first.protect} <= "
                f"{first.at_most:.0%}",
                "observed": observed,
                "passed": passed,
            }
        )
        unless_starved(out[-1], {"on": run})
    degraded = hyp.degraded
    if degraded is not None:
        spans = [
            x for x in (run.get("healing") or {}).get("modes", []) if x["mode"] == degraded.mode
        ]
        still_on = [x for x in spans if x["off_at"] is None]
        ok = bool(spans) and not (degraded.restored and still_on)
        shown = ", ".join(
            f"{x['on_at']:.1f}-{'end' if x['off_at'] is None else format(x['off_at'], '.1f')} s"
            for x in spans
        )
        out.append(
            {
                "hypothesis": f"remediation switched {degraded.mode} on"
                + (" and off again before the end" if degraded.restored else "")
                + " with policies on",
                "mode": "on",
                "expected": "on, then off" if degraded.restored else "on",
                "observed": f"on {len(spans)}x ({shown})" if spans else "never switched on",
                "passed": ok,
            }
        )
    return out


def priority_rows(runs: dict[str, Any], modes: list[str]) -> list[tuple[str, ...]]:
    """``shed: <kind>`` rows (count and share per run), when some run shed something."""
    if not any(f["shed"] for m in modes for f in (runs[m].get("shed") or {}).values()):
        return []
    kinds = list(runs[modes[0]].get("shed") or {})
    out: list[tuple[str, ...]] = []
    for kind in kinds:
        cells = []
        for m in modes:
            f = (runs[m].get("shed") or {}).get(kind)
            cells.append("-" if not f or not f["total"] else f"{f['shed']} ({f['share']:.1%})")
        out.append((f"{kind}: shed (503 + Retry-After)", *cells))
    return out
