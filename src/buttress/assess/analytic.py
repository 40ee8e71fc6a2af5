"""Closed-form availability: units, series, parallel, k-of-n, point availability, active-passive.

A repairable unit fails at rate ``lam`` (= 1/MTBF) and is repaired at rate ``mu`` (= 1/MTTR).

* steady state: ``A = mu / (lam + mu) = MTBF / (MTBF + MTTR)``;
* point availability, up at ``t = 0``: ``A(t) = mu/(lam+mu) + lam/(lam+mu) * exp(-(lam+mu) t)``;
* series (all needed): ``prod A_i``; parallel (any one suffices): ``1 - prod (1 - A_i)``;
* k-of-n identical units: ``sum_{i=k..n} C(n, i) A^i (1-A)^(n-i)``.

Active-passive with repair and imperfect coverage is a continuous-time Markov chain (see
:func:`active_passive_chain`); for two units it has the closed form of :func:`active_passive_2`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ActivePassive",
    "MINUTES_PER_MONTH",
    "MINUTES_PER_YEAR",
    "active_passive_2",
    "active_passive_chain",
    "k_of_n",
    "nines",
    "parallel",
    "point_availability",
    "series",
    "steady_state",
]

HOURS_PER_YEAR = 8760.0
MINUTES_PER_YEAR = 525_600.0
"""A 365-day year, as in Treynor's budget (99.99% -> 52.56 minutes)."""
MINUTES_PER_MONTH = MINUTES_PER_YEAR / 12
"""A twelfth of the year (43.8 minutes at 99.9%)."""


def steady_state(mtbf: float, mttr: float) -> float:
    """``MTBF / (MTBF + MTTR)``."""
    if mtbf <= 0 or mttr < 0:
        raise ValueError(f"need mtbf > 0 and mttr >= 0, got {mtbf}, {mttr}")
    return mtbf / (mtbf + mttr)


def point_availability(lam: float, mu: float, t: float) -> float:
    """Availability at time ``t`` of a unit that was up at 0 (exponential failure and repair)."""
    s = lam + mu
    if s == 0:
        return 1.0
    return mu / s + lam / s * math.exp(-s * t)


def series(avail: Iterable[float]) -> float:
    """All blocks needed: ``prod A_i`` (independent blocks)."""
    out = 1.0
    for a in avail:
        out *= a
    return out


def parallel(avail: Iterable[float]) -> float:
    """Any block suffices: ``1 - prod (1 - A_i)`` (independent blocks)."""
    q = 1.0
    for a in avail:
        q *= 1.0 - a
    return 1.0 - q


def k_of_n(k: int, n: int, a: float) -> float:
    """At least ``k`` of ``n`` identical independent units up."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return sum(math.comb(n, i) * a**i * (1 - a) ** (n - i) for i in range(k, n + 1))


def nines(a: float) -> float:
    """``-log10(1 - A)``: 0.999 is 3 nines."""
    return math.inf if a >= 1.0 else -math.log10(1.0 - a)


@dataclass(frozen=True, slots=True)
class ActivePassive:
    """Parameters of an active-passive group; rates per hour, times in hours.

    ``n`` units: one active, ``n - 1`` standbys.  ``lam`` failure rate of the active unit,
    ``lam_standby`` of a standby (= ``lam`` hot, 0 cold), ``mu`` repair rate of each failed unit
    (independent repair), ``tau`` detection + switchover time, ``coverage`` probability that a
    failover succeeds.
    """

    n: int
    lam: float
    mu: float
    tau: float
    coverage: float
    lam_standby: float


def active_passive_2(g: ActivePassive) -> float:
    """Closed-form steady-state availability of a two-unit active-passive pair.

    States: 0 both up; W switching (down, mean ``tau``); U failover failed (down until the failed
    unit is repaired); 1 one up, one in repair; 2 both down (two repairs at rate ``2 mu``).
    Balance equations give, relative to ``p0``:

        pW = c lam tau,  pU = (1 - c) lam / mu,  p1 = (c lam + lam_s) / mu,
        p2 = lam (c lam + lam_s) / (2 mu^2)

    and ``A = (p0 + p1) / (p0 + pW + pU + p1 + p2)``.
    """
    if g.n != 2:
        raise ValueError("the closed form is for two units; use active_passive_chain")
    lam, mu, c, ls = g.lam, g.mu, g.coverage, g.lam_standby
    if lam == 0:
        return 1.0
    p_w = c * lam * g.tau
    p_u = (1 - c) * lam / mu
    p_1 = (c * lam + ls) / mu
    p_2 = lam * (c * lam + ls) / (2 * mu * mu)
    return (1 + p_1) / (1 + p_w + p_u + p_1 + p_2)


def _states(n: int) -> list[tuple[str, int]]:
    # ("up", j): j units in repair, up; ("down", n): all failed; ("W", j) / ("U", j): switching /
    # uncovered with j units in repair (1 <= j <= n - 1).
    out: list[tuple[str, int]] = [("up", j) for j in range(n)]
    out.append(("down", n))
    out += [("W", j) for j in range(1, n)]
    out += [("U", j) for j in range(1, n)]
    return out


def active_passive_chain(g: ActivePassive) -> tuple[list[tuple[str, int]], list[list[float]]]:
    """States and generator matrix ``Q`` (rows sum to zero) of the n-unit active-passive chain.

    From ``("up", j)`` (one active, ``s = n-1-j`` working standbys): the active fails at ``lam``:
    with ``s > 0`` to ``W`` with probability ``c`` (or straight to ``("up", j+1)`` when
    ``tau = 0``) and to ``U`` with ``1 - c``; with ``s = 0`` to all-down.  A standby fails at
    ``s * lam_standby``; a repair completes at ``j * mu``.  ``W`` ends at ``1/tau``; ``U`` and
    all-down end at the next repair, ``j * mu``, the repaired unit taking over.
    """
    n = g.n
    states = _states(n)
    idx = {s: i for i, s in enumerate(states)}
    q = [[0.0] * len(states) for _ in states]

    def add(a: tuple[str, int], b: tuple[str, int], rate: float) -> None:
        if rate > 0:
            q[idx[a]][idx[b]] += rate

    for j in range(n):
        s = n - 1 - j
        here = ("up", j)
        if s > 0:
            if g.tau > 0:
                add(here, ("W", j + 1), g.coverage * g.lam)
            else:
                add(here, ("up", j + 1), g.coverage * g.lam)
            add(here, ("U", j + 1), (1 - g.coverage) * g.lam)
            add(here, ("up", j + 1), s * g.lam_standby)
        else:
            add(here, ("down", n), g.lam)
        if j > 0:
            add(here, ("up", j - 1), j * g.mu)
    add(("down", n), ("up", n - 1), n * g.mu)
    for j in range(1, n):
        if g.tau > 0:
            add(("W", j), ("up", j), 1.0 / g.tau)
        add(("U", j), ("up", j - 1), j * g.mu)
    for i in range(len(states)):
        q[i][i] = -sum(q[i])
    return states, q


def _reachable(q: Sequence[Sequence[float]]) -> list[int]:
    seen = {0}
    stack = [0]
    while stack:
        i = stack.pop()
        for j, r in enumerate(q[i]):
            if r > 0 and j not in seen:
                seen.add(j)
                stack.append(j)
    return sorted(seen)


def active_passive_stationary(g: ActivePassive) -> tuple[list[tuple[str, int]], list[float]]:
    """Stationary distribution of :func:`active_passive_chain` (solved with numpy)."""
    import numpy as np

    states, q = active_passive_chain(g)
    keep = _reachable(q)
    qm = np.array(q)[np.ix_(keep, keep)]
    m = len(keep)
    a = np.vstack([qm.T, np.ones(m)])
    b = np.zeros(m + 1)
    b[-1] = 1.0
    pi, *_ = np.linalg.lstsq(a, b, rcond=None)
    full = [0.0] * len(states)
    for k, i in enumerate(keep):
        full[i] = max(0.0, float(pi[k]))
    return states, full


def active_passive(g: ActivePassive) -> float:
    """Steady-state availability of an n-unit active-passive group (time share of up states)."""
    if g.lam == 0:
        return 1.0
    states, pi = active_passive_stationary(g)
    return sum(p for s, p in zip(states, pi, strict=True) if s[0] == "up")


def active_passive_at(g: ActivePassive, t: float) -> float:
    """Point availability at ``t`` (all units up at 0), by uniformisation:
    ``p(t) = sum_k Poisson(k; Lambda t) p0 P^k`` with ``P = I + Q / Lambda``."""
    import numpy as np

    states, q = active_passive_chain(g)
    qm = np.array(q)
    lam_max = float(max(-qm.diagonal().min(), 1e-12))
    p_mat = np.eye(len(states)) + qm / lam_max
    vec = np.zeros(len(states))
    vec[0] = 1.0
    x = lam_max * t
    term = math.exp(-x) if x < 700 else 0.0
    if term == 0.0:
        return active_passive(g)
    total = np.zeros(len(states))
    k = 0
    weight_sum = 0.0
    while weight_sum < 1 - 1e-13 and k < 100_000:
        total += term * vec
        weight_sum += term
        k += 1
        vec = vec @ p_mat
        term *= x / k
    up = [i for i, s in enumerate(states) if s[0] == "up"]
    return float(total[up].sum())
