"""Monte Carlo cross-check: a vectorised discrete-event simulation of the compiled model.

Every basic event is simulated as its own process over ``R`` independent replicate histories of
``H`` hours each, all replicates at once with numpy:

* ``unit`` and ``domain`` events alternate between up (exponential, mean MTBF) and down (mean MTTR,
  exponential or ``deterministic``); each replicate starts in the stationary state (down with
  probability ``MTTR / (MTBF + MTTR)``, with a residual repair time), so there is no warm-up bias;
* ``ap`` and ``group`` events run their group's Markov chain (:mod:`.groups`; the switchover may
  be ``deterministic``: its state has a single exit, so the long-run figure is unchanged), stepped
  in lock-step over all replicates.

The journey is down exactly when its fault tree's structure function is true.  The down intervals of
all events are put on one time line (replicate ``r`` shifted by ``2rH``) and sorted; *clusters* are
maximal stretches where at least one event is down.  A cluster of one interval takes the journey
down iff that event alone is a cut set (precomputed once).  Clusters of several intervals are cut
into segments at every change, each segment's state is a row of a cumulative-sum matrix, and the
fault tree is evaluated on all rows at once (gates over numpy columns, events that are up folded
to constants).

Each replicate gives an unavailability ``U_r = downtime_r / H``; the replicates are independent
(independent stationary starts), so the estimate is their mean with a Student-t 95% interval
``mean +- t(0.975, R - 1) s / sqrt(R)`` (independent replications: the correlation across time
within one history stays inside its one value).  Batches of replicates, growing geometrically, run
until the interval's half-width is within ``rel_precision`` of the mean (or a limit is reached);
``tests/assess/test_coverage.py`` measures the intervals' coverage over 1,000 seeded runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .analytic import MINUTES_PER_YEAR
from .compiler import CHAIN_KINDS
from .faulttree import Event, Node, postorder
from .processes import Batch, Deadline, Intervals, OutOfTime, RepairLaw, chain_process, renewal

if TYPE_CHECKING:
    from .analysis import Analysis

__all__ = [
    "Histories",
    "SimulationResult",
    "importance_plan",
    "mean_interval",
    "prepare",
    "run_batch",
    "simulate",
]

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
    low: float = math.nan
    """Lower end of the unavailability interval (not below 0; NaN: ``estimate - half_width``)."""
    high: float = math.nan
    """Upper end (NaN: ``estimate + half_width``)."""

    def __post_init__(self) -> None:
        # A result built by hand from a half-width gets the symmetric interval.
        if math.isnan(self.low):
            object.__setattr__(self, "low", max(0.0, self.unavailability - self.half_width))
        if math.isnan(self.high):
            object.__setattr__(self, "high", self.unavailability + self.half_width)

    @property
    def availability(self) -> float:
        return 1.0 - self.unavailability

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


@dataclass(frozen=True, slots=True)
class Histories:
    """What every batch of one simulation shares: numpy, the random generator, the analysis, and
    the journeys prepared by :func:`prepare` (events, gates in post-order, single points)."""

    np: Any
    rng: Any
    analysis: Analysis
    events: list[Event]
    tops: list[list[Node]]
    spof: list[Any]

    @classmethod
    def of(cls, analysis: Analysis, names: Sequence[str], seed: int | None) -> Histories:
        np = _np()
        return cls(np, np.random.default_rng(seed), analysis, *prepare(np, analysis, names))


def run_batch(
    histories: Histories,
    *,
    reps: int,
    horizon: float,
    deterministic: bool,
    deadline: Deadline,
    stationary: bool = True,
    tilt: dict[int, tuple[float, float, float]] | None = None,
    log_weight: Any = None,
) -> tuple[Any, Any]:
    """Per-journey, per-replicate downtime (hours) and outage counts (journeys x replicates) of
    one batch; ``stationary=False`` starts every history with everything up.

    ``tilt`` (importance sampling) maps an event's index to ``(q, theta, b)``: its stationary
    start is down with probability ``theta`` instead of ``q`` and (a unit or domain) it fails at
    ``b`` times its rate; each replicate's log likelihood ratio is added to ``log_weight``:
    ``log(q/theta)`` or ``log((1-q)/(1-theta))`` for the start, and ``-n log b + (b-1) lam U``
    for ``n`` failures and ``U`` hours up in the history (exponential up times, the last one
    censored at the horizon)."""
    np, analysis, events, tops = histories.np, histories.analysis, histories.events, histories.tops
    system = analysis.system
    out = Intervals()
    batch = Batch(np, histories.rng, out, reps, horizon, deadline, stationary)
    for i, ev in enumerate(events):
        info = analysis.compiled.info[ev]
        q_theta = tilt.get(i) if tilt else None
        theta = None if q_theta is None else q_theta[1]
        first = len(out.rep)
        if info.kind in CHAIN_KINDS:
            assert info.component is not None
            comp = system.components[info.component]
            started = chain_process(
                batch,
                ev=i,
                chain=comp.chain(),
                tau=comp.detection + comp.switchover,
                deterministic=deterministic,
                theta=theta,
            )
        else:
            u = info.unit(system)
            assert u is not None
            started = renewal(
                batch,
                ev=i,
                mtbf=u.mtbf,
                mttr=u.mttr,
                law=RepairLaw("deterministic") if deterministic else u.law,
                theta=theta,
                bias=1.0 if q_theta is None else q_theta[2],
            )
            if q_theta is not None and log_weight is not None and q_theta[2] != 1.0:
                log_weight += _rate_bias_log_ratio(
                    np, out, first, reps=reps, horizon=horizon, lam=u.lam, b=q_theta[2]
                )
        if q_theta is not None and log_weight is not None:
            q, th, _ = q_theta
            log_weight += np.where(started, math.log(q / th), math.log((1 - q) / (1 - th)))
    nj = len(tops)
    downtime = np.zeros((nj, reps))
    outages = np.zeros((nj, reps), dtype=np.int64)
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
        hit = single & histories.spof[j][ev]
        downtime[j] += np.bincount(rep[hit], weights=dur[hit], minlength=reps)
        outages[j] += np.bincount(rep[hit], minlength=reps)
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
        deadline.check()
        b = min(len(times), a + limit)
        t = times[a:b]
        ids = cev[a:b]
        held = np.fromiter(carry, dtype=np.int64, count=len(carry))
        local, col = np.unique(np.concatenate([ids, held]), return_inverse=True)
        mat = np.zeros((b - a, len(local)), dtype=np.int32)
        mat[np.arange(b - a), col[: b - a]] = delta[a:b]
        # The open intervals' counts carry over in full (two touching intervals of one event
        # cut between the start of the second and the end of the first hold 2, not 1).
        mat[0, col[b - a :]] += np.fromiter(carry.values(), dtype=np.int32, count=len(carry))
        counts = np.cumsum(mat, axis=0)
        state = counts > 0
        carry = {int(e): int(counts[-1, k]) for k, e in enumerate(local) if counts[-1, k] > 0}
        nxt = times[b] if b < len(times) else t[-1]
        seg = np.diff(t, append=nxt)
        last_cl = ccl[b] if b < len(times) else -1
        same = np.append(ccl[a + 1 : b] == ccl[a : b - 1], ccl[b - 1] == last_cl)
        seg = np.where(same, seg, 0.0)
        # Replicate r's times lie in [r span, r span + horizon], horizon = span / 2: a quarter
        # span of slack keeps a time of exactly r span (a start at 0) in r despite rounding.
        seg_rep = (t / span + 0.25).astype(np.int64)
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
            began = down & same & ~(prev & prev_same)
            outages[j] += np.bincount(seg_rep[began], minlength=reps)
            was_down[j] = bool(down[-1])
        was_same[0] = bool(same[-1])
    return downtime, outages


def prepare(
    np: Any, analysis: Analysis, names: Sequence[str]
) -> tuple[list[Event], list[list[Node]], list[Any]]:
    """The events, each journey's gates in post-order, and which events alone take each journey
    down (the single points of failure the time line can settle without evaluating the tree)."""
    events = list(analysis.compiled.info)
    tops = [postorder(analysis.compiled.tops[j]) for j in names]
    eye = np.eye(len(events), dtype=bool)
    cols = {e: i for i, e in enumerate(events)}
    spof = []
    for nodes in tops:
        res = _evaluate(np, nodes, cols, eye)
        spof.append(np.broadcast_to(np.asarray(res, dtype=bool), (len(events),)).copy())
    return events, tops, spof


def _rate_bias_log_ratio(
    np: Any, out: Intervals, first: int, *, reps: int, horizon: float, lam: float, b: float
) -> Any:
    """Per replicate ``-n log b + (b - 1) lam U`` for the intervals one event added to ``out``
    (from position ``first``): ``n`` failures (intervals not starting at 0), ``U`` up hours."""
    if len(out.rep) == first:
        return np.full(reps, (b - 1) * lam * horizon)
    rep = np.concatenate(out.rep[first:])
    start = np.concatenate(out.start[first:])
    end = np.concatenate(out.end[first:])
    down = np.bincount(rep, weights=end - start, minlength=reps)
    failures = np.bincount(rep[start > 0], minlength=reps)
    return -failures * math.log(b) + (b - 1) * lam * (horizon - down)


def importance_plan(
    analysis: Analysis, events: list[Event], names: Sequence[str]
) -> tuple[dict[int, tuple[float, float, float]], float]:
    """Failure biasing for rare outages: which events start down more often, and how long the
    histories are.

    Every event of the journeys' trees that can fail starts down with probability
    ``theta = max(q, min(1/2, P(event down | journey down)))`` instead of its stationary ``q``
    (the conditional probability from the exact analysis: ``q P[x=1] / P``), so a history often
    starts inside a likely cut; a unit or domain also fails ``b`` times faster, ``b`` set for
    about one biased failure per two histories.  Given its start, a history evolves unbiased, so the
    likelihood ratio is that of the start.  Histories last a quarter of the shortest mean outage
    of those events: the downtime of a history then comes mostly from the cut it starts in
    (weighted by the start's small likelihood ratio), and seldom from a cut completed later by
    an unbiased failure, whose large weight would make the estimate heavy-tailed."""
    from .faulttree import events_of

    in_tree: set[Event] = set()
    for name in names:
        in_tree.update(events_of(analysis.compiled.tops[name]))
    system = analysis.system
    q_of: dict[int, float] = {}
    window = 0.0
    for i, ev in enumerate(events):
        q = analysis.probabilities[ev]
        if ev not in in_tree or not 0 < q < 1:
            continue
        q_of[i] = q
        info = analysis.compiled.info[ev]
        if info.kind in CHAIN_KINDS and info.component is not None:
            outage = system.components[info.component].chain().mean_outage()
        elif info.kind == "unit" and info.component is not None:
            outage = system.components[info.component].unit.mttr
        else:
            assert info.domain is not None
            outage = system.domains[info.domain].unit.mttr
        window = min(window, outage / 4.0) if window else outage / 4.0
    window = window or 1.0
    tilt: dict[int, tuple[float, float, float]] = {}
    for i, q in q_of.items():
        info = analysis.compiled.info[events[i]]
        lam = 0.0
        if info.kind == "unit" and info.component is not None:
            lam = system.components[info.component].unit.lam
        elif info.kind == "domain" and info.domain is not None:
            lam = system.domains[info.domain].unit.lam
        # Failure biasing: about one biased failure per two histories, all events together.
        b = max(1.0, 0.5 / (len(q_of) * lam * window)) if lam > 0 else 1.0
        tilt[i] = (q, max(q, _given_outage(analysis, events[i], names, q)), b)
    return tilt, window


def _given_outage(analysis: Analysis, ev: Event, names: Sequence[str], q: float) -> float:
    """``P(event down | journey down)``, the largest over ``names``, capped at one half: drawing
    each start from these marginals puts most histories inside the likely cuts (the exact
    conditional law would be the zero-variance choice), and the cap keeps every start possible,
    so histories in which a cut forms later are still drawn."""
    best = 0.0
    for name in names:
        res = analysis.journeys[name]
        imp = res.importance.get(ev)
        if imp is not None and res.unavailability > 0:
            best = max(best, q * imp.if_always / res.unavailability)
    return min(0.5, best)


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom.

    Exact values for the smallest ``df`` (where the expansion is poor), then the Cornish-Fisher
    expansion around the normal quantile (error below 1e-4 from ``df = 8``)."""
    exact = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836}
    exact.update({6: 2.446911851, 7: 2.364624252})
    if df < 1:
        return math.inf
    if df in exact:
        return exact[df]
    z = Z95
    v = float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
        + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * v**4)
    )


def mean_interval(np: Any, values: Any) -> tuple[Any, Any, Any]:
    """Estimate, lower and upper 95% bounds of the mean of each row of ``values`` (rows: journeys;
    columns: independent replications): Student's t with ``n - 1`` degrees of freedom, with
    Johnson's correction for skewness.

    The replications are independent and identically distributed (each starts from an independent
    draw of the stationary state), so the correlation across time inside one history is inside
    its single value and a t-interval on the replication means is valid.  Downtime per history is
    skewed to the right (most histories see a little, a few see a lot): a sample that drew few of
    the long ones has both a low mean and a low spread, and a symmetric interval then misses the
    true value from below more often than 2.5% of the time.  Johnson's modified t (1978) moves the
    interval's centre up by ``m3 / (6 s^2 n)`` (``m3`` the sample's third central moment), which
    restores the balance.  With fewer than two replications the interval is unbounded."""
    n = values.shape[1]
    mean = values.mean(axis=1)
    if n < 2:
        return mean, np.zeros(len(mean)), np.full(len(mean), math.inf)
    dev = values - mean[:, None]
    var = (dev**2).sum(axis=1) / (n - 1)
    m3 = (dev**3).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(var > 0, m3 / (6.0 * var * n), 0.0)
    half = t_quantile_975(n - 1) * np.sqrt(var / n)
    centre = mean + shift
    return mean, np.maximum(centre - half, 0.0), centre + half


MIN_REPLICATES = 30
"""Replications before a precision target may stop the run (the t-interval's variance estimate
needs that many to be trusted on the skewed per-history downtime)."""
MIN_OUTAGES = 30
"""Outages per journey before a precision target may stop the run: with fewer, most histories
see no outage and the interval is not yet honest."""


def simulate(
    analysis: Analysis,
    *,
    seed: int | None = 0,
    rel_precision: float = 0.1,
    years: float | None = None,
    max_years: float = 200_000.0,
    max_seconds: float = 30.0,
    horizon_years: float = 1.0,
    batch: int | None = None,
    repair: Literal["exponential", "deterministic"] = "exponential",
    journeys: Sequence[str] | None = None,
    importance: bool = False,
) -> dict[str, SimulationResult]:
    """Simulate ``analysis``'s model; per journey, the unavailability with a 95% interval.

    ``importance=True`` is for rare outages (:func:`importance_plan`): short histories whose
    stationary start is failure-biased, each history's downtime weighted by its likelihood ratio
    (unbiased; ``outages`` then counts the biased histories' outages).

    Independent replications of ``horizon_years`` each (stationary start), the interval a
    Student-t interval on their means (:func:`mean_interval`).  With ``years`` the run simulates
    that many replicate-years (fixed length: the interval's coverage is the nominal 95%);
    otherwise replications run until every journey's half-width is within ``rel_precision``
    (default 10%) of its estimate, with at least :data:`MIN_REPLICATES` replications and
    :data:`MIN_OUTAGES` outages, or until ``max_years`` or ``max_seconds`` is reached.

    Batches start small and grow geometrically (the precision is looked at a logarithmic number
    of times, which keeps the sequential stop from eroding the coverage), each sized to take at
    most a twentieth of ``max_seconds``; the clock is also checked between the numpy steps of a
    batch, and a batch the limit interrupts is dropped, so the run ends within a few percent of
    ``max_seconds``.  ``batch`` fixes the batch size instead.  ``repair="deterministic"`` makes
    repair and switchover times fixed instead of exponential (repairs inside Markov groups stay
    exponential).
    """
    start = time.perf_counter()  # the limit counts the set-up too
    names = list(journeys) if journeys is not None else list(analysis.journeys)
    histories = Histories.of(analysis, names, seed)
    np = histories.np
    tilt: dict[int, tuple[float, float, float]] | None = None
    if importance:
        tilt, window = importance_plan(analysis, histories.events, names)
        horizon_years = min(horizon_years, window / 8760.0)
    horizon = horizon_years * 8760.0
    deterministic = repair == "deterministic"
    chunks: list[Any] = []
    outages = np.zeros(len(names), dtype=np.int64)
    # A fixed-length run (``years``) is not cut short: its interval must keep its coverage.
    deadline = Deadline(start + max_seconds) if years is None else Deadline()
    done_years = 0.0
    # Short importance-sampled histories are cheap: start with enough of them to meet a cut.
    reps = batch or (2000 if years is not None else (256 if tilt else 8))
    while True:
        if years is not None:
            reps = max(1, min(reps, math.ceil((years - done_years) / horizon_years - 1e-9)))
        began = time.perf_counter()
        log_weight = np.zeros(reps)
        try:
            dt, out = run_batch(
                histories,
                reps=reps,
                horizon=horizon,
                deterministic=deterministic,
                # The first batch always completes: a run reports something.
                deadline=deadline if chunks else Deadline(),
                tilt=tilt,
                log_weight=log_weight,
            )
        except OutOfTime:
            break
        per_rep = (time.perf_counter() - began) / reps
        chunks.append(dt / horizon * np.exp(log_weight) if tilt else dt / horizon)
        outages += out.sum(axis=1)
        done_years += reps * horizon_years
        n = sum(c.shape[1] for c in chunks)
        if years is not None:
            if done_years >= years - 1e-9:
                break
        elif _precise(np, chunks, outages, rel_precision) or done_years >= max_years:
            break
        if time.perf_counter() >= deadline.at:
            break
        if batch is None:
            # Double the sample each time, but never plan a batch longer than 1/20 of the limit.
            budget = max_seconds / 20.0
            reps = max(1, min(n, int(budget / max(per_rep, 1e-9))))
    elapsed = time.perf_counter() - start
    return _results(
        np, names, chunks, outages=outages, horizon_years=horizon_years, elapsed=elapsed
    )


def _precise(np: Any, chunks: list[Any], outages: Any, rel_precision: float) -> bool:
    """Whether a precision-targeted run may stop: enough histories and outages, and every
    journey's interval within ``rel_precision`` of its estimate."""
    values = np.concatenate(chunks, axis=1)
    if values.shape[1] < MIN_REPLICATES or not np.all(outages >= MIN_OUTAGES):
        return False
    mean, low, high = mean_interval(np, values)
    return bool(np.all((mean > 0) & ((high - low) / 2 <= rel_precision * mean)))


def _results(
    np: Any,
    names: list[str],
    chunks: list[Any],
    *,
    outages: Any,
    horizon_years: float,
    elapsed: float,
) -> dict[str, SimulationResult]:
    u = np.concatenate(chunks, axis=1)
    mean, low, high = mean_interval(np, u)
    return {
        name: SimulationResult(
            journey=name,
            unavailability=float(mean[j]),
            half_width=float((high[j] - low[j]) / 2),
            low=float(low[j]),
            high=float(high[j]),
            replicates=u.shape[1],
            years=u.shape[1] * horizon_years,
            outages=int(outages[j]),
            seconds=elapsed,
        )
        for j, name in enumerate(names)
    }
