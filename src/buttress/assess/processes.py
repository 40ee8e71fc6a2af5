"""The processes the Monte Carlo simulates, each over ``R`` replicate histories at once (numpy):
the down intervals of one basic event, on a time line ``[0, horizon)`` per replicate.

* :func:`renewal`: a unit or domain alternating up (exponential, mean MTBF) and down (mean MTTR,
  by its :class:`RepairLaw`: exponential, deterministic, Weibull or lognormal);
* :func:`chain_process`: a Markov group's chain (:mod:`.groups`), stepped in lock-step.

Each starts either in the stationary state (long-run figures: down with probability
``MTTR / (MTBF + MTTR)`` and a residual repair drawn from the length-biased repair law, so there is
no warm-up bias) or all up at ``t = 0`` (mission figures).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

    from .ctmc import Chain

__all__ = [
    "EXPONENTIAL",
    "Batch",
    "Deadline",
    "Intervals",
    "OutOfTime",
    "RepairLaw",
    "chain_process",
    "renewal",
]


class OutOfTime(Exception):
    """The time limit passed in the middle of a batch (the batch is dropped)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A ``time.perf_counter`` instant the simulation must stop at, checked between the numpy
    steps of a batch (each a few milliseconds) so ``max_seconds`` holds to within a few percent."""

    at: float = math.inf

    def check(self) -> None:
        if time.perf_counter() > self.at:
            raise OutOfTime


class Intervals:
    def __init__(self) -> None:
        self.rep: list[npt.NDArray[Any]] = []
        self.start: list[npt.NDArray[Any]] = []
        self.end: list[npt.NDArray[Any]] = []
        self.ev: list[npt.NDArray[Any]] = []

    def add(self, np: Any, ev: int, rep: Any, start: Any, end: Any) -> None:
        keep = end > start
        if not keep.all():
            rep, start, end = rep[keep], start[keep], end[keep]
        if len(rep):
            self.rep.append(rep.astype(np.int64))
            self.start.append(start)
            self.end.append(end)
            self.ev.append(np.full(len(rep), ev, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class RepairLaw:
    """The distribution of a repair time, by its mean (MTTR) and a shape.

    ``exponential``; ``deterministic`` (always the mean); ``weibull`` with shape ``k`` (scale
    ``mean / Gamma(1 + 1/k)``); ``lognormal`` with log-standard-deviation ``sigma`` (log-mean
    ``ln(mean) - sigma^2 / 2``).  The long-run availability of a unit depends only on the mean
    (alternating renewal), so the exact analysis is unchanged; the simulation checks that."""

    kind: str = "exponential"
    shape: float = 1.0

    def draw(self, np: Any, rng: Any, mean: float, size: Any) -> npt.NDArray[Any]:
        if self.kind == "deterministic":
            out: npt.NDArray[Any] = np.full(size, mean)
        elif self.kind == "weibull":
            out = mean / math.gamma(1 + 1 / self.shape) * rng.weibull(self.shape, size)
        elif self.kind == "lognormal":
            mu = math.log(mean) - self.shape**2 / 2
            out = rng.lognormal(mu, self.shape, size)
        else:
            out = rng.exponential(mean, size)
        return out

    def residual(self, np: Any, rng: Any, mean: float, n: int) -> npt.NDArray[Any]:
        """Remaining repair time of a unit found in repair at a random instant: a uniform share
        of a length-biased draw (Weibull's is ``scale G^(1/k)``, ``G ~ Gamma(1 + 1/k)``;
        lognormal's is lognormal with log-mean raised by ``sigma^2``)."""
        if self.kind == "deterministic":
            length: npt.NDArray[Any] = np.full(n, mean)
        elif self.kind == "weibull":
            scale = mean / math.gamma(1 + 1 / self.shape)
            length = scale * rng.gamma(1 + 1 / self.shape, 1.0, n) ** (1 / self.shape)
        elif self.kind == "lognormal":
            mu = math.log(mean) - self.shape**2 / 2
            length = rng.lognormal(mu + self.shape**2, self.shape, n)
        else:
            return rng.exponential(mean, n)  # type: ignore[no-any-return]
        result: npt.NDArray[Any] = rng.uniform(0.0, 1.0, n) * length
        return result


EXPONENTIAL = RepairLaw()
"""The default repair law."""


@dataclass(frozen=True, slots=True)
class Batch:
    """What every event's process shares in one batch: ``reps`` replicate histories over
    ``[0, horizon)``, drawn with ``rng`` (numpy is ``np``, imported by the caller), their down
    intervals recorded in ``out``; ``stationary`` starts them in the long-run state (else all
    up)."""

    np: Any
    rng: Any
    out: Intervals
    reps: int
    horizon: float
    deadline: Deadline
    stationary: bool = True


def renewal(
    batch: Batch,
    *,
    ev: int,
    mtbf: float,
    mttr: float,
    law: RepairLaw,
    theta: float | None = None,
    bias: float = 1.0,
) -> npt.NDArray[Any]:
    """Down intervals of a unit alternating exponential up times and ``law`` repairs; returns
    which replicates started down.  Importance sampling: ``theta`` draws the stationary start
    down with that probability instead of ``MTTR / (MTBF + MTTR)``, and ``bias`` multiplies the
    failure rate; the caller weights each history by the likelihood ratio of both."""
    np, rng, out, reps, horizon = batch.np, batch.rng, batch.out, batch.reps, batch.horizon
    if math.isinf(mtbf) or mttr <= 0:
        never: npt.NDArray[Any] = np.zeros(reps, dtype=bool)
        return never
    q = mttr / (mtbf + mttr)
    cycles = horizon / (mtbf / bias + mttr)
    m = int(cycles + 6 * math.sqrt(cycles) + 8)
    p_down = q if theta is None else theta
    down0 = rng.random(reps) < p_down if batch.stationary else np.zeros(reps, dtype=bool)
    resid = law.residual(np, rng, mttr, reps)
    base = np.where(down0, resid, 0.0)
    idx = np.arange(reps)
    first = down0
    out.add(np, ev, idx[first], np.zeros(int(first.sum())), np.minimum(resid[first], horizon))
    offset = base
    todo = idx
    while len(todo):
        batch.deadline.check()
        ups = rng.exponential(mtbf / bias, (len(todo), m))
        downs = law.draw(np, rng, mttr, ups.shape)
        ends = offset[:, None] + np.cumsum(ups + downs, axis=1)
        starts = ends - downs
        mask = starts < horizon
        rows = np.broadcast_to(todo[:, None], starts.shape)[mask]
        out.add(np, ev, rows, starts[mask], np.minimum(ends[mask], horizon))
        more = ends[:, -1] < horizon
        todo = todo[more]
        offset = ends[more, -1]
    started: npt.NDArray[Any] = down0
    return started


def chain_process(
    batch: Batch,
    *,
    ev: int,
    chain: Chain,
    tau: float,
    deterministic: bool,
    theta: float | None = None,
) -> npt.NDArray[Any]:
    """Step a group's Markov chain over all replicates at once, recording its down intervals.

    With ``deterministic``, the switchover states (``("W", j)``, a single exit) hold exactly
    ``tau``; the long-run figure is unchanged (only the mean of a single-exit holding time
    counts), which is what makes it a check of the chain's insensitivity."""
    np, rng, out, reps, horizon = batch.np, batch.rng, batch.out, batch.reps, batch.horizon
    qm = chain.q
    k = len(chain.states)
    rates = -qm.diagonal()
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.where(rates[:, None] > 0, qm / rates[:, None], 0.0)
    np.fill_diagonal(jump, 0.0)
    cum = np.cumsum(jump, axis=1)
    cum[:, -1] = np.maximum(cum[:, -1], 1.0)
    down = ~chain.up
    fixed = np.array(
        [deterministic and isinstance(s, tuple) and s[0] == "W" for s in chain.states], dtype=bool
    )
    mean = np.where(rates > 0, 1.0 / np.where(rates > 0, rates, 1.0), np.inf)
    pi = chain.stationary()
    down_share = float(pi[down].sum())
    if not batch.stationary:
        state = np.zeros(reps, dtype=np.int64)  # the chain's initial state: all working
    elif theta is None or not 0 < down_share < 1:
        state = rng.choice(k, size=reps, p=pi)
    else:
        # Importance sampling: down with probability theta, then a state of that side in its
        # stationary proportions (the likelihood ratio depends on the side only).
        starts_down = rng.random(reps) < theta
        state = np.where(
            starts_down,
            rng.choice(k, size=reps, p=np.where(down, pi, 0.0) / down_share),
            rng.choice(k, size=reps, p=np.where(down, 0.0, pi) / (1 - down_share)),
        )
    started: npt.NDArray[Any] = down[state]
    # Residual of the first holding time: exponential is memoryless; deterministic is uniform.
    hold = rng.exponential(1.0, reps) * mean[state]
    hold = np.where(fixed[state], rng.uniform(0.0, 1.0, reps) * tau, hold)
    t = np.zeros(reps)
    idx = np.arange(reps)
    # Start of the down spell each replicate is in (NaN: up).  Consecutive down states (two
    # units failed, then three) are one outage: one interval, not several touching ones.
    spell = np.full(reps, np.nan)
    while len(idx):
        batch.deadline.check()
        end = t + hold
        d = down[state]
        spell = np.where(d & np.isnan(spell), t, spell)
        alive = end < horizon
        nxt = state.copy()
        u = rng.random(int(alive.sum()))
        nxt[alive] = np.minimum((cum[state[alive]] < u[:, None]).sum(axis=1), k - 1)
        close = d & ~(alive & down[nxt])
        if close.any():
            out.add(np, ev, idx[close], spell[close], np.minimum(end[close], horizon))
        spell = np.where(close, np.nan, spell)
        idx, t, state, spell = idx[alive], end[alive], nxt[alive], spell[alive]
        if not len(idx):
            break
        hold = rng.exponential(1.0, len(idx)) * mean[state]
        hold = np.where(fixed[state], tau, hold)
    return started
