"""Priority load and panic routing: how much traffic each priority level receives.

The algorithm is Envoy's (``LoadBalancerBase::recalculatePerPriorityState`` and
``recalculatePerPriorityPanic``), in integer percentages as Envoy computes them.

**Health of a level** ``p`` with ``healthy`` of ``total`` endpoints, overprovisioning factor ``o``
(default 1.4, held as the integer ``O = round(100 * o)``, 140)::

    health[p] = min(100, O * healthy // total)        (0 for an empty level)

So a level is "fully healthy" until fewer than ``100 / o`` percent (71.4%) of its endpoints are
healthy: with 72% healthy it still takes all of its traffic, with 50% it takes 70%.

**Normalized total health**: ``T = min(100, sum(health))``.

**Priority load** (the percentage of requests sent to each level), highest priority first::

    left = 100
    load[p] = min(left, health[p] * 100 // T);  left -= load[p]

and whatever rounding leaves over goes to the first level with ``health > 0``.  With two levels and
P1 fully healthy, P0 at 100/72/71/50/25/0% healthy gets 100/100/99/70/35/0% of the traffic
(the table in Envoy's documentation).

**Panic.** When ``T == 100`` nobody panics, however unhealthy one level is: the other levels can
absorb its share.  When ``T < 100``, a level whose healthy percentage ``100 * healthy / total`` is
below the panic threshold (default 50%) is *in panic*: requests routed to it go to *all* of its
endpoints, healthy or not, since a few survivors would be crushed by the whole load.  An empty level
counts as 0% healthy.  When *every* level is in panic (*total panic*) the load is split by endpoint
count instead: ``load[p] = 100 * total[p] // sum(total)``, remainder to the first non-empty level.
A panic threshold of 0 disables panic; with ``T == 0`` and no panic, P0 nominally receives 100% (and
has no endpoint to route to).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from buttress.errors import ConfigError

__all__ = [
    "DEFAULT_OVERPROVISIONING_FACTOR",
    "DEFAULT_PANIC_THRESHOLD",
    "PriorityLoad",
    "check_overprovisioning_factor",
    "check_panic_threshold",
    "choose_priority",
    "compute_priority_load",
    "level_health",
]

DEFAULT_OVERPROVISIONING_FACTOR = 1.4
DEFAULT_PANIC_THRESHOLD = 50.0


@dataclass(frozen=True, slots=True)
class PriorityLoad:
    """The outcome of :func:`compute_priority_load`.

    ``loads[p]``: percent of requests for level ``p`` (they sum to 100); ``health[p]``: its health
    score; ``panic[p]``: whether level ``p`` routes to all its endpoints; ``normalized_total``:
    ``min(100, sum(health))``.
    """

    loads: tuple[int, ...]
    health: tuple[int, ...]
    panic: tuple[bool, ...]
    normalized_total: int

    @property
    def total_panic(self) -> bool:
        """Every level is in panic (load split by endpoint count)."""
        return bool(self.panic) and all(self.panic)


def check_overprovisioning_factor(value: float, parameter: str = "overprovisioning_factor") -> int:
    """Validate a factor (``>= 1``, finite); return it as Envoy's integer percent (1.4 -> 140)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value < math.inf:
        raise ConfigError(parameter, value, "must be a finite number >= 1 (Envoy's default is 1.4)")
    return round(value * 100)


def check_panic_threshold(value: float, parameter: str = "panic_threshold") -> float:
    """Validate a panic threshold in percent (``0..100``; 0 disables panic)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ConfigError(parameter, value, "must be a percentage within [0, 100] (0 disables)")
    return float(value)


def level_health(healthy: int, total: int, overprovisioning: int = 140) -> int:
    """``min(100, overprovisioning * healthy // total)``; 0 for an empty level.

    ``overprovisioning`` is the factor in integer percent (140 for 1.4).
    """
    if total <= 0:
        return 0
    return min(100, overprovisioning * healthy // total)


def _in_panic(healthy: int, total: int, threshold: float) -> bool:
    percent = 0.0 if total <= 0 else 100.0 * healthy / total
    return percent < threshold


def compute_priority_load(
    levels: Sequence[tuple[int, int]],
    *,
    overprovisioning_factor: float = DEFAULT_OVERPROVISIONING_FACTOR,
    panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
) -> PriorityLoad:
    """Priority load for ``levels``, a ``(healthy, total)`` pair per priority, highest first.

    See the module documentation for the formulas.  Pure: no state, no clock.
    """
    if not levels:
        raise ConfigError("levels", levels, "need at least one priority level")
    opf = check_overprovisioning_factor(overprovisioning_factor)
    threshold = check_panic_threshold(panic_threshold)
    for i, (h, t) in enumerate(levels):
        if not 0 <= h <= t:
            raise ConfigError(f"levels[{i}]", (h, t), "need 0 <= healthy <= total")
    n = len(levels)
    health = tuple(level_health(h, t, opf) for h, t in levels)
    ntotal = min(100, sum(health))
    loads = [0] * n
    if ntotal > 0:
        left = 100
        for p in range(n):
            share = min(left, health[p] * 100 // ntotal)
            loads[p] = share
            left -= share
        if left:
            first = next(p for p in range(n) if health[p] > 0)
            loads[first] += left
    if threshold == 0 and ntotal == 0:
        loads[0] = 100
        return PriorityLoad(tuple(loads), health, (False,) * n, ntotal)
    # Nobody panics while the other levels can absorb the whole load (T == 100).
    panic = (False,) * n if ntotal == 100 else tuple(_in_panic(h, t, threshold) for h, t in levels)
    if all(panic):
        hosts = sum(t for _, t in levels)
        loads = [0] * n
        if hosts == 0:
            loads[0] = 100
        else:
            left = 100
            for p, (_, t) in enumerate(levels):
                loads[p] = 100 * t // hosts
                left -= loads[p]
            first = next(p for p, (_, t) in enumerate(levels) if t > 0)
            loads[first] += left
    return PriorityLoad(tuple(loads), health, panic, ntotal)


def choose_priority(loads: Sequence[int], draw: int) -> int:
    """The level a request goes to, for ``draw`` uniform in ``1..100``: the first level whose
    cumulative load reaches ``draw``."""
    acc = 0
    for p, load in enumerate(loads):
        acc += load
        if draw <= acc:
            return p
    return len(loads) - 1
