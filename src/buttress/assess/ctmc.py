"""A small continuous-time Markov chain solver: steady state, transient, interval and mission
figures of a finite chain whose states are either *up* or *down*.

A :class:`Chain` is a generator matrix ``Q`` (``Q[i, j]`` the rate from ``i`` to ``j``, rows summing
to zero), its states' names and which of them are up.  Everything is plain numpy linear algebra:

* steady state: ``pi Q = 0``, ``sum(pi) = 1`` over the states reachable from the initial one
  (one balance equation replaced by the normalisation, solved directly);
* transient: ``p(t) = p(0) exp(Q t)``, the exponential by scaling and squaring of a Taylor series
  (``Q t / 2^s`` has norm below one half, where 18 terms reach double precision; a generator's
  exponential is a stochastic matrix, so the squarings are stable);
* mean availability over ``[0, T]``: ``(1/T) p(0) (integral_0^T exp(Q s) ds) 1_up``, the integral
  read from the exponential of the block matrix ``[[Q, I], [0, 0]] T`` (Van Loan, 1978);
* mission reliability (no outage in ``[0, T]``): the same transient with the down states made
  absorbing.

Chains here are small (a redundancy group: tens to a few hundred states), so dense matrices are the
simple and fast choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Chain", "ChainBuilder", "expm"]


def _np() -> Any:
    import numpy

    return numpy


def expm(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``exp(a)`` by scaling and squaring a Taylor series (enough for generator matrices)."""
    np = _np()
    norm = float(np.abs(a).sum(axis=1).max()) if a.size else 0.0
    s = max(0, math.ceil(math.log2(norm)) + 1) if norm > 0.5 else 0
    x = a / (2.0**s)
    out = np.eye(len(a))
    term = np.eye(len(a))
    for k in range(1, 19):
        term = term @ x / k
        out = out + term
    for _ in range(s):
        out = out @ out
    result: npt.NDArray[Any] = out
    return result


@dataclass(frozen=True, eq=False)
class Chain:
    """A finite CTMC with up/down states; ``states[0]`` is the initial state (all working)."""

    states: tuple[Hashable, ...]
    q: npt.NDArray[Any]
    up: npt.NDArray[Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def reachable(self) -> list[int]:
        """Indices of the states reachable from the initial state."""
        seen = {0}
        stack = [0]
        while stack:
            i = stack.pop()
            for j in _np().nonzero(self.q[i] > 0)[0]:
                if int(j) not in seen:
                    seen.add(int(j))
                    stack.append(int(j))
        return sorted(seen)

    def stationary(self) -> npt.NDArray[Any]:
        """The stationary distribution (zero on states not reachable from the initial one)."""
        if "pi" not in self._cache:
            np = _np()
            keep = self.reachable()
            sub = self.q[np.ix_(keep, keep)]
            m = len(keep)
            a = sub.T.copy()
            a[-1, :] = 1.0
            b = np.zeros(m)
            b[-1] = 1.0
            try:
                part = np.linalg.solve(a, b)
            except np.linalg.LinAlgError:  # a chain with several closed classes
                part, *_ = np.linalg.lstsq(np.vstack([sub.T, np.ones(m)]), _unit(m + 1), rcond=None)
            pi = np.zeros(len(self.states))
            pi[keep] = np.maximum(part, 0.0)
            self._cache["pi"] = pi / pi.sum()
        result: npt.NDArray[Any] = self._cache["pi"]
        return result

    def availability(self) -> float:
        """Steady-state availability: the stationary mass of the up states."""
        return float(self.stationary()[self.up].sum())

    def initial(self) -> npt.NDArray[Any]:
        p: npt.NDArray[Any] = _np().zeros(len(self.states))
        p[0] = 1.0
        return p

    def transient(self, t: float, p0: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The distribution at time ``t`` from ``p0`` (default: the initial state)."""
        start = self.initial() if p0 is None else p0
        result: npt.NDArray[Any] = start @ expm(self.q * t)
        return result

    def availability_at(self, t: float) -> float:
        """Point availability ``A(t)`` from the initial state."""
        return float(self.transient(t)[self.up].sum())

    def mean_availability(self, t: float) -> float:
        """Mean availability over ``[0, t]`` from the initial state (expected up-time share)."""
        if t <= 0:
            return float(self.up[0])
        np = _np()
        m = len(self.states)
        big = np.zeros((2 * m, 2 * m))
        big[:m, :m] = self.q
        big[:m, m:] = np.eye(m)
        integral = expm(big * t)[:m, m:]
        return float((self.initial() @ integral)[self.up].sum() / t)

    def reliability(self, t: float) -> float:
        """Probability of no outage in ``[0, t]`` from the initial state (mission reliability)."""
        q = self.q.copy()
        q[~self.up, :] = 0.0  # down states absorb
        result = self.initial() @ expm(q * t)
        return float(result[self.up].sum())

    def outage_rate(self) -> float:
        """Long-run entries into the down states per unit time (the outage frequency)."""
        pi = self.stationary()
        flow = pi[self.up, None] * self.q[self.up][:, ~self.up]
        return float(flow.sum())

    def mean_outage(self) -> float:
        """Mean duration of an outage: the down share over the outage rate (0 without outages)."""
        rate = self.outage_rate()
        return (1.0 - self.availability()) / rate if rate > 0 else 0.0


def _unit(m: int) -> npt.NDArray[Any]:
    b: npt.NDArray[Any] = _np().zeros(m)
    b[-1] = 1.0
    return b


class ChainBuilder:
    """Collects transitions between named states, then builds a :class:`Chain`.

    The first state added is the initial one; rates of zero (or below) are ignored and rates
    between the same pair add up."""

    def __init__(self) -> None:
        self.index: dict[Hashable, int] = {}
        self.rates: dict[tuple[int, int], float] = {}

    def state(self, s: Hashable) -> int:
        if s not in self.index:
            self.index[s] = len(self.index)
        return self.index[s]

    def add(self, a: Hashable, b: Hashable, rate: float) -> None:
        i, j = self.state(a), self.state(b)
        if rate > 0 and i != j:
            self.rates[(i, j)] = self.rates.get((i, j), 0.0) + rate

    def build(self, is_up: Callable[[Hashable], bool]) -> Chain:
        np = _np()
        states: Sequence[Hashable] = list(self.index)
        q = np.zeros((len(states), len(states)))
        for (i, j), r in self.rates.items():
            q[i, j] = r
        np.fill_diagonal(q, -q.sum(axis=1))
        up = np.array([bool(is_up(s)) for s in states], dtype=bool)
        return Chain(tuple(states), q, up)
