"""Redundancy groups as Markov chains: shared repair crews, hot/warm/cold standby, failover time,
imperfect coverage with a recovery path, and beta-factor common cause.

A group is ``n`` identical units of which ``k`` must work (``k = 1`` for active-passive).  Each unit
fails at ``lam`` (per hour) while it serves; the failure rate splits by the beta factor into an
independent part ``(1 - beta) lam`` per unit and a common-cause shock at ``beta lam`` that fails
every unit still working at once (the standard beta-factor model: ``beta`` is the share of a
unit's failures that are common to the group).  ``crews`` repair crews work on the failed units, at
most one per unit, each at rate ``mu``: with ``j`` units failed, repairs complete at
``min(j, crews) mu`` (one crew for two units is not two independent units).  Units are identical,
so which failed unit a crew takes (first-in first-out or by priority) does not change these
figures.

``active-active`` (every working unit serves): the state is ``j``, the number of failed units, up
while ``n - j >= k``; from ``j``, independent failures at ``(n - j)(1 - beta) lam``, the shock at
``beta lam`` to ``n``, repairs at ``min(j, crews) mu``.

``active-passive`` (one active, the others standing by): states ``("up", j)``, ``("W", j)``
(switching over: down, mean ``tau`` = detection + switchover), ``("U", j)`` (the failover did not
take: down until a recovery, at rate ``recovery`` (the manual or reboot path), or a repair) and
``("down", n)``.  From ``("up", j)`` with ``s = n - 1 - j`` working standbys: the active fails at
``(1 - beta) lam``, to ``W`` with probability ``coverage`` and to ``U`` otherwise (to all-down when
``s = 0``); a standby fails at ``s (1 - beta) lam_standby`` (``lam`` hot, a fraction warm, 0 cold);
the shock at ``beta lam``; repairs at ``min(j, crews) mu``.  With ``crews = n``, ``recovery = 0``
and ``beta = 0`` this is the chain of :func:`buttress.assess.analytic.active_passive_chain`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

from .ctmc import Chain, ChainBuilder

__all__ = ["GroupParams", "group_chain", "mgl_rates", "pool_chain"]


@dataclass(frozen=True, slots=True)
class GroupParams:
    """One redundancy group; rates per hour, times in hours (see the module docstring)."""

    mode: Literal["active-active", "active-passive"]
    n: int
    k: int
    lam: float
    mu: float
    crews: int
    lam_standby: float = 0.0
    tau: float = 0.0
    coverage: float = 1.0
    recovery: float = 0.0
    beta: float = 0.0
    gamma: float | None = None
    delta: float | None = None

    def repair_rate(self, failed: int) -> float:
        return min(failed, self.crews) * self.mu


def group_chain(g: GroupParams) -> Chain:
    """The group's chain (built once per distinct parameters and kept)."""
    return _cached(g)


@functools.lru_cache(maxsize=512)
def _cached(g: GroupParams) -> Chain:
    if g.mode == "active-active":
        return _k_of_n(g)
    return _standby(g)


def mgl_rates(g: GroupParams) -> list[float]:
    """``Q[m]``: the rate at which one *specific* set of ``m`` units fails together (multiple
    Greek letter model, Mosleh et al., NUREG/CR-4780), ``m = 1..n``, from a unit's total failure
    rate ``lam``: ``Q1 = (1 - beta) lam``, ``Q2 = beta (1 - gamma) lam / C(n-1, 1)``,
    ``Q3 = beta gamma (1 - delta) lam / C(n-1, 2)``, ``Q4 = beta gamma delta lam / C(n-1, 3)``
    (``delta = 0`` for three units: ``Q3 = beta gamma lam``)."""
    n, lam = g.n, g.lam
    gamma = 1.0 if g.gamma is None else g.gamma
    # With three units "at least three" is "exactly three": no fourth letter (delta = 0).
    delta = 0.0 if g.delta is None or n < 4 else g.delta
    shares = [
        1 - g.beta,
        g.beta * (1 - gamma),
        g.beta * gamma * (1 - delta),
        g.beta * gamma * delta,
    ]
    return [0.0] + [shares[m - 1] * lam / math.comb(n - 1, m - 1) for m in range(1, n + 1)]


def _k_of_n(g: GroupParams) -> Chain:
    if g.gamma is not None:
        return _k_of_n_mgl(g)
    b = ChainBuilder()
    b.state(0)
    for j in range(g.n + 1):
        working = g.n - j
        if working > 0:
            b.add(j, j + 1, working * (1 - g.beta) * g.lam)
            b.add(j, g.n, g.beta * g.lam)
        if j > 0:
            b.add(j, j - 1, g.repair_rate(j))
    return b.build(lambda s: g.n - int(s) >= g.k)  # type: ignore[call-overload]


def _k_of_n_mgl(g: GroupParams) -> Chain:
    """k-of-n with multiple Greek letter common cause: with ``w`` units working and ``j = n - w``
    failed, a shock on a specific set of ``m`` units fails those of them still working: ``r`` new
    failures at ``sum_m Q[m] C(w, r) C(j, m - r)``."""
    q = mgl_rates(g)
    n = g.n
    b = ChainBuilder()
    b.state(0)
    for j in range(n + 1):
        w = n - j
        for r in range(1, w + 1):
            rate = sum(
                q[m] * math.comb(w, r) * math.comb(j, m - r) for m in range(r, min(n, r + j) + 1)
            )
            b.add(j, j + r, rate)
        if j > 0:
            b.add(j, j - 1, g.repair_rate(j))
    return b.build(lambda s: n - int(s) >= g.k)  # type: ignore[call-overload]


def _standby(g: GroupParams) -> Chain:
    b = ChainBuilder()
    n = g.n
    b.state(("up", 0))
    lam_i = (1 - g.beta) * g.lam
    for j in range(n):
        here = ("up", j)
        spares = n - 1 - j
        if spares > 0:
            if g.tau > 0:
                b.add(here, ("W", j + 1), g.coverage * lam_i)
            else:
                b.add(here, ("up", j + 1), g.coverage * lam_i)
            b.add(here, ("U", j + 1), (1 - g.coverage) * lam_i)
            b.add(here, ("up", j + 1), spares * (1 - g.beta) * g.lam_standby)
        else:
            b.add(here, ("down", n), lam_i)
        b.add(here, ("down", n), g.beta * g.lam)
        if j > 0:
            b.add(here, ("up", j - 1), g.repair_rate(j))
    b.add(("down", n), ("up", n - 1), g.repair_rate(n))
    for j in range(1, n):
        if g.tau > 0:
            b.add(("W", j), ("up", j), 1.0 / g.tau)
        b.add(("U", j), ("up", j), g.recovery)
        b.add(("U", j), ("up", j - 1), g.repair_rate(j))
    return b.build(lambda s: s[0] == "up")  # type: ignore[index]


@functools.lru_cache(maxsize=256)
def pool_chain(
    units: tuple[tuple[float, float], ...], k: int, crews: int, discipline: str
) -> Chain:
    """Different units ``(lam, mu)`` sharing ``crews`` repair crews, up while ``k`` work.

    The state is the repair queue: the failed units in the order a crew takes them, the first
    ``crews`` of them in repair.  ``fifo`` appends a failed unit; ``priority`` keeps the queue in
    the units' order, so a failure of an earlier unit takes a crew from a later one (preemptive;
    with exponential repairs, resuming and restarting are the same)."""
    n = len(units)
    b = ChainBuilder()
    b.state(())
    todo: list[tuple[int, ...]] = [()]
    seen: set[tuple[int, ...]] = {()}
    while todo:
        queue = todo.pop()
        moves: list[tuple[tuple[int, ...], float]] = []
        for i in range(n):
            if i not in queue:
                nxt = (*queue, i) if discipline == "fifo" else tuple(sorted((*queue, i)))
                moves.append((nxt, units[i][0]))
        for i in queue[:crews]:
            moves.append((tuple(x for x in queue if x != i), units[i][1]))
        for nxt, rate in moves:
            b.add(queue, nxt, rate)
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return b.build(lambda s: n - len(s) >= k)  # type: ignore[arg-type]
