"""Monte Carlo cross-check: a vectorised discrete-event simulation of the compiled model.

Every basic event is simulated as its own process over ``R`` independent replicate histories of
``H`` hours each, all replicates at once with numpy:

* ``unit`` and ``domain`` events alternate between up (exponential, mean MTBF) and down (mean MTTR,
  exponential or ``deterministic``); each replicate starts in the stationary state (down with
  probability ``MTTR / (MTBF + MTTR)``, with a residual repair time), so there is no warm-up bias;
* ``ap`` events run the active-passive semi-Markov chain of :mod:`.analytic` (the switchover may be
  ``deterministic``: its state has a single exit, so the long-run figure is unchanged), stepped in
  lock-step over all replicates.

The journey is down exactly when its fault tree's structure function is true.  The down intervals of
all events are put on one time line (replicate ``r`` shifted by ``2rH``) and sorted; *clusters* are
maximal stretches where at least one event is down.  A cluster of one interval takes the journey
down iff that event alone is a cut set (precomputed once).  Clusters of several intervals are cut
into segments at every change, each segment's state is a row of a cumulative-sum matrix, and the
fault tree is evaluated on all rows at once (gates over numpy columns, events that are up folded
to constants).

Each replicate gives an unavailability ``U_r = downtime_r / H``; the estimate is their mean with a
normal 95% confidence interval ``mean +- 1.96 s / sqrt(R)``.  Batches of replicates run until the
interval's half-width is within ``rel_precision`` of the mean (or a limit is reached).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .analytic import MINUTES_PER_YEAR, active_passive_chain, active_passive_stationary
from .faulttree import Event, Node, postorder

if TYPE_CHECKING:
    import numpy.typing as npt

    from .analysis import Analysis

__all__ = ["SimulationResult", "simulate"]

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """Estimated unavailability of one journey with its 95% confidence interval."""

    journey: str
    unavailability: float
    half_width: float
    replicates: int
    years: float
    outages: int
    seconds: float

    @property
    def availability(self) -> float:
        return 1.0 - self.unavailability

    @property
    def low(self) -> float:
        """Lower end of the unavailability interval (not below 0)."""
        return max(0.0, self.unavailability - self.half_width)

    @property
    def high(self) -> float:
        return self.unavailability + self.half_width

    @property
    def relative_half_width(self) -> float:
        return self.half_width / self.unavailability if self.unavailability > 0 else math.inf

    @property
    def downtime_year(self) -> float:
        return self.unavailability * MINUTES_PER_YEAR

    def contains(self, unavailability: float) -> bool:
        """Whether ``unavailability`` lies in the confidence interval."""
        return self.low <= unavailability <= self.high


def _np() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy is a dependency of the extra
        from buttress.errors import MissingExtra

        raise MissingExtra("the Monte Carlo simulation", "assess", "numpy") from None
    return numpy


class _Intervals:
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


def _renewal(
    *,
    np: Any,
    rng: Any,
    out: _Intervals,
    ev: int,
    reps: int,
    horizon: float,
    mtbf: float,
    mttr: float,
    deterministic: bool,
) -> None:
    if math.isinf(mtbf) or mttr <= 0:
        return
    q = mttr / (mtbf + mttr)
    cycles = horizon / (mtbf + mttr)
    m = int(cycles + 6 * math.sqrt(cycles) + 8)
    down0 = rng.random(reps) < q
    resid = rng.uniform(0.0, mttr, reps) if deterministic else rng.exponential(mttr, reps)
    base = np.where(down0, resid, 0.0)
    idx = np.arange(reps)
    first = down0
    out.add(np, ev, idx[first], np.zeros(int(first.sum())), np.minimum(resid[first], horizon))
    offset = base
    todo = idx
    while len(todo):
        ups = rng.exponential(mtbf, (len(todo), m))
        downs = np.full_like(ups, mttr) if deterministic else rng.exponential(mttr, ups.shape)
        ends = offset[:, None] + np.cumsum(ups + downs, axis=1)
        starts = ends - downs
        mask = starts < horizon
        rows = np.broadcast_to(todo[:, None], starts.shape)[mask]
        out.add(np, ev, rows, starts[mask], np.minimum(ends[mask], horizon))
        more = ends[:, -1] < horizon
        todo = todo[more]
        offset = ends[more, -1]


def _ctmc(
    *,
    np: Any,
    rng: Any,
    out: _Intervals,
    ev: int,
    reps: int,
    horizon: float,
    g: Any,
    deterministic: bool,
) -> None:
    states, q = active_passive_chain(g)
    _, pi = active_passive_stationary(g)
    qm = np.array(q)
    k = len(states)
    rates = -qm.diagonal()
    with np.errstate(divide="ignore", invalid="ignore"):
        jump = np.where(rates[:, None] > 0, qm / rates[:, None], 0.0)
    np.fill_diagonal(jump, 0.0)
    cum = np.cumsum(jump, axis=1)
    cum[:, -1] = np.maximum(cum[:, -1], 1.0)
    down = np.array([s[0] != "up" for s in states])
    fixed = np.array([s[0] == "W" and deterministic for s in states])
    mean = np.where(rates > 0, 1.0 / np.where(rates > 0, rates, 1.0), np.inf)
    pi_arr = np.array(pi) / max(sum(pi), 1e-300)
    state = rng.choice(k, size=reps, p=pi_arr)
    # Residual of the first holding time: exponential is memoryless; deterministic is uniform.
    hold = rng.exponential(1.0, reps) * mean[state]
    hold = np.where(fixed[state], rng.uniform(0.0, 1.0, reps) * g.tau, hold)
    t = np.zeros(reps)
    idx = np.arange(reps)
    while len(idx):
        end = t + hold
        d = down[state]
        if d.any():
            out.add(np, ev, idx[d], t[d], np.minimum(end[d], horizon))
        alive = end < horizon
        idx, t, state = idx[alive], end[alive], state[alive]
        if not len(idx):
            break
        u = rng.random(len(idx))
        state = (cum[state] < u[:, None]).sum(axis=1)
        state = np.minimum(state, k - 1)
        hold = rng.exponential(1.0, len(idx)) * mean[state]
        hold = np.where(fixed[state], g.tau, hold)


def _evaluate(np: Any, nodes: Sequence[Node], cols: dict[Event, int], states: Any) -> Any:
    """Structure function on every row of ``states`` (rows x local columns); folds constants."""
    val: dict[int, Any] = {}
    for node in nodes:
        if isinstance(node, Event):
            c = cols.get(node)
            val[id(node)] = False if c is None else states[:, c]
            continue
        arrays = []
        const = 0
        for ch in node.children:
            v = val[id(ch)]
            if v is True:
                const += 1
            elif v is not False:
                arrays.append(v)
        need = node.m - const
        if need <= 0:
            val[id(node)] = True
        elif len(arrays) < need:
            val[id(node)] = False
        elif need == 1:
            acc = arrays[0]
            for a in arrays[1:]:
                acc = acc | a
            val[id(node)] = acc
        elif need == len(arrays):
            acc = arrays[0]
            for a in arrays[1:]:
                acc = acc & a
            val[id(node)] = acc
        else:
            total = arrays[0].astype(np.int16)
            for a in arrays[1:]:
                total = total + a
            val[id(node)] = total >= need
    return val[id(nodes[-1])]


def _batch(
    *,
    np: Any,
    rng: Any,
    analysis: Analysis,
    events: list[Event],
    tops: list[list[Node]],
    spof: Any,
    reps: int,
    horizon: float,
    deterministic: bool,
) -> tuple[Any, Any]:
    """Per-journey, per-replicate downtime (hours) and outage counts of one batch."""
    system = analysis.system
    out = _Intervals()
    for i, ev in enumerate(events):
        info = analysis.compiled.info[ev]
        if info.kind == "ap":
            assert info.component is not None
            g = system.components[info.component].ap_params()
            _ctmc(
                np=np,
                rng=rng,
                out=out,
                ev=i,
                reps=reps,
                horizon=horizon,
                g=g,
                deterministic=deterministic,
            )
        else:
            if info.kind == "unit":
                assert info.component is not None
                u = system.components[info.component].unit
            else:
                assert info.domain is not None
                u = system.domains[info.domain].unit
            _renewal(
                np=np,
                rng=rng,
                out=out,
                ev=i,
                reps=reps,
                horizon=horizon,
                mtbf=u.mtbf,
                mttr=u.mttr,
                deterministic=deterministic,
            )
    nj = len(tops)
    downtime = np.zeros((nj, reps))
    outages = np.zeros(nj, dtype=np.int64)
    if not out.rep:
        return downtime, outages
    rep = np.concatenate(out.rep)
    span = 2.0 * horizon
    gs = np.concatenate(out.start) + rep * span
    ge = np.concatenate(out.end) + rep * span
    ev = np.concatenate(out.ev)
    order = np.argsort(gs, kind="stable")
    gs, ge, ev, rep = gs[order], ge[order], ev[order], rep[order]
    reach = np.maximum.accumulate(ge)
    new = np.empty(len(gs), dtype=bool)
    new[0] = True
    new[1:] = gs[1:] > reach[:-1]
    cluster = np.cumsum(new) - 1
    size = np.bincount(cluster)
    single = size[cluster] == 1
    dur = ge - gs
    for j in range(nj):
        hit = single & spof[j][ev]
        downtime[j] += np.bincount(rep[hit], weights=dur[hit], minlength=reps)
        outages[j] += int(hit.sum())
    multi = ~single
    if not multi.any():
        return downtime, outages
    was_down = [False] * nj
    was_same = [False]
    m_s, m_e, m_ev, m_cl = gs[multi], ge[multi], ev[multi], cluster[multi]
    times = np.concatenate([m_s, m_e])
    delta = np.concatenate([np.ones(len(m_s), np.int32), -np.ones(len(m_e), np.int32)])
    cev = np.concatenate([m_ev, m_ev])
    ccl = np.concatenate([m_cl, m_cl])
    o = np.argsort(times, kind="stable")
    times, delta, cev, ccl = times[o], delta[o], cev[o], ccl[o]
    # Chunks of changepoints; the state of every event carries from one chunk to the next, so a
    # long stretch where something is always down (large models) needs no giant matrix.
    limit = 2048
    carry: dict[int, int] = {}
    for a in range(0, len(times), limit):
        b = min(len(times), a + limit)
        t = times[a:b]
        ids = cev[a:b]
        held = np.fromiter((e for e, c in carry.items() if c > 0), dtype=np.int64)
        local, col = np.unique(np.concatenate([ids, held]), return_inverse=True)
        mat = np.zeros((b - a, len(local)), dtype=np.int32)
        mat[np.arange(b - a), col[: b - a]] = delta[a:b]
        mat[0, col[b - a :]] += 1
        counts = np.cumsum(mat, axis=0)
        state = counts > 0
        carry = {int(e): int(counts[-1, k]) for k, e in enumerate(local) if counts[-1, k] > 0}
        nxt = times[b] if b < len(times) else t[-1]
        seg = np.diff(t, append=nxt)
        last_cl = ccl[b] if b < len(times) else -1
        same = np.append(ccl[a + 1 : b] == ccl[a : b - 1], ccl[b - 1] == last_cl)
        seg = np.where(same, seg, 0.0)
        seg_rep = (t // span).astype(np.int64)
        cols = {events[int(e)]: c for c, e in enumerate(local)}
        for j in range(nj):
            down = _evaluate(np, tops[j], cols, state)
            if down is False:
                continue
            if down is True:
                down = np.ones(len(t), dtype=bool)
            downtime[j] += np.bincount(seg_rep, weights=seg * down, minlength=reps)
            prev = np.concatenate([[bool(was_down[j])], down[:-1]])
            prev_same = np.concatenate([[was_same[0]], same[:-1]])
            outages[j] += int((down & same & ~(prev & prev_same)).sum())
            was_down[j] = bool(down[-1])
        was_same[0] = bool(same[-1])
    return downtime, outages


def simulate(
    analysis: Analysis,
    *,
    seed: int | None = 0,
    rel_precision: float = 0.1,
    years: float | None = None,
    max_years: float = 200_000.0,
    max_seconds: float = 30.0,
    horizon_years: float = 1.0,
    batch: int = 2000,
    repair: Literal["exponential", "deterministic"] = "exponential",
    journeys: Sequence[str] | None = None,
) -> dict[str, SimulationResult]:
    """Simulate ``analysis``'s model; per journey, the unavailability with a 95% interval.

    With ``years`` the run simulates that many replicate-years; otherwise batches of ``batch``
    replicates of ``horizon_years`` each run until every journey's interval half-width is within
    ``rel_precision`` (default 10%) of its estimate, or ``max_years`` / ``max_seconds`` is reached.
    ``repair="deterministic"`` makes repair and switchover times fixed instead of exponential
    (repairs inside active-passive groups stay exponential: that chain is Markov).
    """
    np = _np()
    names = list(journeys) if journeys is not None else list(analysis.journeys)
    events = list(analysis.compiled.info)
    tops = [postorder(analysis.compiled.tops[j]) for j in names]
    eye = np.eye(len(events), dtype=bool)
    cols = {e: i for i, e in enumerate(events)}
    spof = []
    for nodes in tops:
        res = _evaluate(np, nodes, cols, eye)
        spof.append(np.broadcast_to(np.asarray(res, dtype=bool), (len(events),)).copy())
    rng = np.random.default_rng(seed)
    horizon = horizon_years * 8760.0
    deterministic = repair == "deterministic"
    chunks: list[Any] = []
    outages = np.zeros(len(names), dtype=np.int64)
    start = time.perf_counter()
    done_years = 0.0
    while True:
        reps = batch
        if years is not None:
            reps = max(1, min(batch, math.ceil((years - done_years) / horizon_years)))
        dt, out = _batch(
            np=np,
            rng=rng,
            analysis=analysis,
            events=events,
            tops=tops,
            spof=spof,
            reps=reps,
            horizon=horizon,
            deterministic=deterministic,
        )
        chunks.append(dt / horizon)
        outages += out
        done_years += reps * horizon_years
        if years is not None:
            if done_years >= years - 1e-9:
                break
            continue
        u = np.concatenate(chunks, axis=1)
        mean = u.mean(axis=1)
        half = Z95 * u.std(axis=1, ddof=1) / math.sqrt(u.shape[1])
        precise = bool(np.all((mean > 0) & (half <= rel_precision * mean)))
        if precise or done_years >= max_years or time.perf_counter() - start > max_seconds:
            break
    u = np.concatenate(chunks, axis=1)
    n = u.shape[1]
    mean = u.mean(axis=1)
    sd = u.std(axis=1, ddof=1) if n > 1 else np.zeros(len(names))
    elapsed = time.perf_counter() - start
    return {
        name: SimulationResult(
            journey=name,
            unavailability=float(mean[j]),
            half_width=float(Z95 * sd[j] / math.sqrt(n)),
            replicates=n,
            years=done_years,
            outages=int(outages[j]),
            seconds=elapsed,
        )
        for j, name in enumerate(names)
    }
