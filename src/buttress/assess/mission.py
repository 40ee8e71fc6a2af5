"""Mission figures: from an all-up start at ``t = 0`` to the mission time ``T``.

* **point availability** ``A(T)``: exact, the journey's BDD evaluated with every event's point
  unavailability at ``T`` (units: the two-state closed form; Markov groups: the chain's transient
  by the matrix exponential, :mod:`.ctmc`);
* **mean availability** over ``[0, T]``: exact, ``(1/T) integral_0^T A(t) dt``.  ``A(t)`` is a
  smooth mixture of exponentials whose time scales may range from minutes (a switchover) to years
  (a region), so the integral is Gauss-Legendre (16 nodes) on pieces whose ends grow tenfold,
  ``[0, T/10^8], ..., [T/10, T]``: every time scale meets a piece of its own size (error below
  1e-10 on the tests' closed forms);
* **mission reliability**, the probability of no outage in ``[0, T]``: a property of whole paths,
  not of the state at each instant, so it comes from the simulation (histories all up at 0), with
  a Wilson 95% interval; the simulated mean availability comes with its Student-t interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .analysis import Analysis, event_probabilities
from .formats import interval, pct
from .montecarlo import Z95, Histories, _np, mean_interval, run_batch
from .processes import Deadline

__all__ = [
    "MissionSimulation",
    "mean_availability",
    "mission_report",
    "mission_section",
    "simulate_mission",
    "wilson_interval",
]


def _availability(analysis: Analysis, journey: str, hours: float) -> float:
    p = event_probabilities(analysis.compiled, at=hours)
    return 1.0 - analysis.bdd.probability(analysis.roots[journey], p)


def mean_availability(analysis: Analysis, journey: str, hours: float) -> float:
    """Exact mean availability of ``journey`` over ``[0, hours]`` from an all-up start."""
    if hours <= 0:
        return 1.0
    np = _np()
    nodes, weights = np.polynomial.legendre.leggauss(16)
    edges = [0.0, *(hours / 10.0**k for k in range(8, -1, -1))]
    total = 0.0
    for a, b in itertools.pairwise(edges):
        half, mid = (b - a) / 2, (b + a) / 2
        for x, w in zip(nodes, weights, strict=True):
            total += w * half * _availability(analysis, journey, mid + half * float(x))
    return total / hours


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95% score interval for a binomial proportion (honest near 0 and 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class MissionSimulation:
    """Simulated mission figures of one journey over ``runs`` histories of ``hours``."""

    journey: str
    hours: float
    runs: int
    reliability: float
    reliability_low: float
    reliability_high: float
    mean_availability: float
    mean_availability_low: float
    mean_availability_high: float


def simulate_mission(
    analysis: Analysis,
    hours: float,
    *,
    runs: int = 4000,
    seed: int | None = 0,
    journeys: Sequence[str] | None = None,
    batch: int = 2000,
) -> dict[str, MissionSimulation]:
    """Simulate ``runs`` histories of ``hours`` from an all-up start; per journey, the share with
    no outage (mission reliability) and the mean availability, each with a 95% interval."""
    names = list(journeys) if journeys is not None else list(analysis.journeys)
    histories = Histories.of(analysis, names, seed)
    np = histories.np
    up_share: list[Any] = []
    clean = np.zeros(len(names), dtype=np.int64)
    done = 0
    while done < runs:
        reps = min(batch, runs - done)
        downtime, outages = run_batch(
            histories,
            reps=reps,
            horizon=hours,
            deterministic=False,
            deadline=Deadline(),
            stationary=False,
        )
        up_share.append(1.0 - downtime / hours)
        clean += (outages == 0).sum(axis=1)
        done += reps
    mean, low, high = mean_interval(np, np.concatenate(up_share, axis=1))
    out = {}
    for j, name in enumerate(names):
        r_low, r_high = wilson_interval(int(clean[j]), runs)
        out[name] = MissionSimulation(
            journey=name,
            hours=hours,
            runs=runs,
            reliability=int(clean[j]) / runs,
            reliability_low=r_low,
            reliability_high=r_high,
            mean_availability=float(mean[j]),
            mean_availability_low=max(0.0, float(low[j])),
            mean_availability_high=min(1.0, float(high[j])),
        )
    return out


def mission_report(
    analysis: Analysis, hours: dict[str, float], *, simulate: bool, seed: int
) -> dict[str, dict[str, Any]]:
    """Per journey with a mission time (``hours``: journey -> T), the JSON-ready mission block."""
    out: dict[str, dict[str, Any]] = {}
    for name, t in hours.items():
        entry: dict[str, Any] = {
            "hours": t,
            "availability_at_end": _availability(analysis, name, t),
            "mean_availability": mean_availability(analysis, name, t),
        }
        if simulate:
            sim = simulate_mission(analysis, t, seed=seed, journeys=[name])[name]
            entry["simulation"] = {
                "runs": sim.runs,
                "reliability": sim.reliability,
                "reliability_ci95": [sim.reliability_low, sim.reliability_high],
                "mean_availability": sim.mean_availability,
                "mean_availability_ci95": [sim.mean_availability_low, sim.mean_availability_high],
            }
        out[name] = entry
    return out


def mission_section(journeys: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]], str]:
    """The report's mission table, for the journeys whose JSON entry has a ``mission`` block."""
    rows = []
    fixed4 = "{:.4f}".format
    for j in journeys:
        m = j["mission"]
        sim = m.get("simulation")
        reliability = interval(fixed4, sim["reliability"], *sim["reliability_ci95"]) if sim else "-"
        rows.append(
            [
                j["name"],
                f"{m['hours']:g}h",
                pct(m["availability_at_end"]),
                pct(m["mean_availability"]),
                reliability,
            ]
        )
    note = "From everything up at t = 0. No outage: simulated (with --simulate), 95% interval."
    headers = ["journey", "mission T", "A(T)", "mean over [0, T]", "P(no outage in [0, T])"]
    return ("Mission (exact, from an all-up start)", headers, rows, note)
