"""Uncertainty: ranges on units' figures propagated to an interval on every journey's availability.

A unit (component or domain) may give ``uncertain: {availability: [low, high]}`` (or ``mtbf`` and
``mttr`` ranges).  Each of ``samples`` draws picks every uncertain figure independently,
log-uniformly within its range by default (an availability through its unavailability, so
``[0.999, 0.9999]`` spreads evenly over the nines; a range starting at 0 is uniform), uniformly
with ``distribution: uniform``, or lognormal with the range as its 5th to 95th percentile with
``distribution: lognormal`` (the reliability engineer's median and error factor), rebuilds
those units (``MTBF = MTTR * A / (1 - A)`` when an availability is drawn) and re-runs the exact
analysis of the journeys they touch.  The interval is the empirical 5th to 95th percentile of
the journey's availability over the draws, beside their median.  Independent draws of
independent figures: a figure shared by several units should be a domain, not copies of a range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from .analysis import analyse
from .system import System, UnitParams

__all__ = ["UncertaintyInterval", "has_uncertainty", "propagate"]


@dataclass(frozen=True, slots=True)
class UncertaintyInterval:
    """A journey's availability across the draws: 5th percentile, median, 95th percentile."""

    journey: str
    samples: int
    low: float
    median: float
    high: float


def has_uncertainty(system: System) -> bool:
    """Whether any unit of ``system`` has a range."""
    units = [c.unit for c in system.components.values()]
    units += [d.unit for d in system.domains.values()]
    return any(u.ranges for u in units)


Z90 = 1.6448536269514722
"""The 95th percentile of the standard normal: a lognormal range spans +-Z90 log-sigmas."""


def _draw(rng: Any, low: float, high: float, spread: str = "loguniform") -> float:
    if low == high:
        return low
    if spread == "uniform" or low <= 0:
        return float(rng.uniform(low, high))
    a, b = math.log(low), math.log(high)
    if spread == "lognormal":
        return math.exp(float(rng.normal((a + b) / 2, (b - a) / (2 * Z90))))
    return math.exp(float(rng.uniform(a, b)))


def _sample_unit(rng: Any, unit: UnitParams) -> UnitParams:
    mtbf, mttr = unit.mtbf, unit.mttr
    drawn = {f: (lo, hi) for f, lo, hi in unit.ranges}
    if "mttr" in drawn:
        # An MTBF (given, or derived from a fixed availability) stays: the availability moves.
        mttr = _draw(rng, *drawn["mttr"], unit.spread)
    if "mtbf" in drawn:
        mtbf = _draw(rng, *drawn["mtbf"], unit.spread)
    if "availability" in drawn:
        lo, hi = drawn["availability"]
        q = min(1.0 - 1e-12, _draw(rng, 1.0 - hi, 1.0 - lo, unit.spread))
        mtbf = math.inf if q <= 0 or mttr == 0 else mttr * (1.0 - q) / q
    return replace(unit, mtbf=mtbf, mttr=mttr, detect=min(unit.detect, mttr))


def sample_system(system: System, rng: Any) -> System:
    """A copy of ``system`` with every uncertain figure drawn once."""
    comps = {
        n: (replace(c, unit=_sample_unit(rng, c.unit)) if c.unit.ranges else c)
        for n, c in system.components.items()
    }
    doms = {
        n: (replace(d, unit=_sample_unit(rng, d.unit)) if d.unit.ranges else d)
        for n, d in system.domains.items()
    }
    return replace(system, components=comps, domains=doms)


def propagate(
    system: System, *, samples: int = 200, seed: int | None = 0
) -> dict[str, UncertaintyInterval]:
    """Per journey, the 90% interval of its availability over ``samples`` draws."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {j: [] for j in system.journeys}
    for _ in range(samples):
        drawn = analyse(sample_system(system, rng), cut_sets=False, explain=False)
        for name, res in drawn.journeys.items():
            values[name].append(res.availability)
    out = {}
    for name, vals in values.items():
        low, median, high = (float(x) for x in np.quantile(vals, [0.05, 0.5, 0.95]))
        out[name] = UncertaintyInterval(name, samples, low, median, high)
    return out
