"""Exact analysis: availability per journey, downtime, minimal cut sets explained, importance.

:func:`analyse` compiles the system (:mod:`.compiler`), builds one shared BDD over every journey
(domain events first, regions before zones, then depth-first order: shared causes on top keep the
diagram small), and evaluates it with each basic event's steady-state unavailability:

* ``unit`` and ``domain`` events: ``q = MTTR / (MTBF + MTTR)``;
* ``ap`` and ``group`` events: ``1 - A`` of the group's Markov chain (:mod:`.groups`).

Downtime per year is ``(1 - A) * 525 600`` minutes (a 365-day year) and per month a twelfth of it.
Where a journey's downtime comes from is attributed per basic event by its Fussell-Vesely share,
``P - P[x = 0]`` (the downtime that would vanish if that failure never happened).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .analytic import MINUTES_PER_MONTH, MINUTES_PER_YEAR, nines, point_availability
from .bdd import BDD, Importance
from .compiler import CHAIN_KINDS, Compiled, EventInfo, compile_system, occurs
from .faulttree import Event, Node, minimal_cut_sets, minimize
from .system import System

__all__ = [
    "Analysis",
    "CutSet",
    "JourneyResult",
    "analyse",
    "event_probabilities",
    "event_probability",
    "explain_cut_set",
]


@dataclass(frozen=True, slots=True)
class CutSet:
    """A minimal cut set: these events together take the journey down."""

    events: tuple[str, ...]
    labels: tuple[str, ...]
    probability: float
    explanation: str

    @property
    def order(self) -> int:
        return len(self.events)


@dataclass
class JourneyResult:
    """Exact steady-state figures for one journey."""

    name: str
    entry: str
    target: float
    availability: float
    full_service: float
    cut_sets: list[CutSet]
    importance: dict[Event, Importance]
    sources: list[tuple[str, float]] = field(default_factory=list)

    @property
    def unavailability(self) -> float:
        return 1.0 - self.availability

    @property
    def downtime_year(self) -> float:
        """Expected minutes down per year."""
        return self.unavailability * MINUTES_PER_YEAR

    @property
    def downtime_month(self) -> float:
        return self.unavailability * MINUTES_PER_MONTH

    @property
    def nines(self) -> float:
        return nines(self.availability)

    @property
    def meets_target(self) -> bool:
        return self.availability >= self.target

    @property
    def spofs(self) -> list[CutSet]:
        """Single points of failure: the order-1 minimal cut sets."""
        return [c for c in self.cut_sets if c.order == 1]


@dataclass
class Analysis:
    """Everything :func:`analyse` found, plus the compiled model to ask further questions of."""

    system: System
    compiled: Compiled
    bdd: BDD
    roots: dict[str, int]
    degraded_roots: dict[str, int]
    probabilities: dict[Event, float]
    journeys: dict[str, JourneyResult]

    point: dict[float, dict[Event, float]] = field(default_factory=dict, repr=False)
    own: dict[str, int] = field(default_factory=dict, repr=False)
    """Each component's own failure (:attr:`Compiled.intrinsic`) as a node of :attr:`bdd`."""
    first: dict[str, int] = field(default_factory=dict, repr=False)
    """Each component's first variable in :attr:`bdd`'s order (OR them in that order)."""
    rest: dict[Any, Any] = field(default_factory=dict, repr=False)
    """What-if memo (:mod:`.whatif`): a journey's path OR'd without one component, and each
    journey's hard path."""

    def availability_at(self, journey: str, hours: float) -> float:
        """Point availability of ``journey`` at ``hours`` after a start with everything up (the
        events' point unavailabilities are computed once per ``hours`` and kept)."""
        p = self.point.get(hours)
        if p is None:
            p = self.point[hours] = event_probabilities(self.compiled, at=hours)
        return 1.0 - self.bdd.probability(self.roots[journey], p)


def event_probability(system: System, info: EventInfo, at: float | None = None) -> float:
    """Unavailability of one basic event: steady state, or at time ``at`` (hours) from all-up."""
    if info.kind in CHAIN_KINDS:
        assert info.component is not None
        chain = system.components[info.component].chain()
        a = chain.availability() if at is None else chain.availability_at(at)
        return min(1.0, max(0.0, 1.0 - a))
    u = info.unit(system)
    assert u is not None
    return u.q if at is None else 1.0 - point_availability(u.lam, u.mu, at)


def event_probabilities(compiled: Compiled, at: float | None = None) -> dict[Event, float]:
    """Unavailability of every basic event: steady state, or at time ``at`` (hours) from all-up."""
    system = compiled.system
    return {ev: event_probability(system, info, at) for ev, info in compiled.info.items()}


def _replica_causes(
    compiled: Compiled, comp_name: str, occurred: frozenset[Event]
) -> tuple[dict[str, list[int]], list[int]]:
    """Which replicas are down because of a domain (by domain) and which by themselves."""
    system = compiled.system
    comp = system.components[comp_name]
    by_domain: dict[str, list[int]] = {}
    own: list[int] = []
    for i in range(comp.replicas):
        hit = [
            d
            for d in system.chain(comp.zone_of(i))
            if compiled.events.get(f"domain:{d}") in occurred
        ]
        if hit:
            by_domain.setdefault(hit[-1], []).append(i)
        elif compiled.events.get(f"unit:{comp_name}[{i}]") in occurred:
            own.append(i)
        else:
            # Lost through a dependency bound to its region (or zone): "db in us".
            for dep, kind in comp.scoped:
                where = system.scope_of(comp.zone_of(i), kind)
                node = compiled.local.get((dep, where))
                if node is not None and occurs(node, occurred, {}):
                    by_domain.setdefault(f"{dep} in {where}", []).append(i)
                    break
    return by_domain, own


def _reason(compiled: Compiled, comp_name: str, occurred: frozenset[Event]) -> str:
    system = compiled.system
    comp = system.components[comp_name]
    if comp.crew_pool:
        crews = f"{comp.crews} repair crew{'s' if comp.crews != 1 else ''}"
        return (
            f"{comp_name} needs {comp.required} of {', '.join(comp.members)}, which share "
            f"{crews} ({comp.discipline}), and loses more"
        )
    if comp.composite:
        memo: dict[int, bool] = {}
        down = [m for m in comp.members if occurs(compiled.fails[m], occurred, memo)]
        need = "one" if comp.required == 1 else f"{comp.required}"
        return (
            f"{comp_name} needs {need} of {', '.join(comp.members)} and loses {' and '.join(down)}"
        )
    for s in comp.shared:
        for d in system.chain(s):
            if compiled.events.get(f"domain:{d}") in occurred:
                via = f" (through {s})" if d != s else ""
                return f"{comp_name} shares fate with {d}{via}"
    n = comp.replicas
    by_domain, own = _replica_causes(compiled, comp_name, occurred)
    if comp.active_passive and compiled.events.get(f"ap:{comp_name}") in occurred:
        return (
            f"{comp_name}'s active-passive pair is down (a failover under way, a failover that "
            "did not take, or no unit left)"
        )
    if compiled.events.get(f"group:{comp_name}") in occurred:
        why = []
        if comp.crews is not None and comp.crews < n:
            why.append(f"{comp.crews} repair crew{'s' if comp.crews > 1 else ''} for {n} replicas")
        if comp.beta > 0:
            why.append(f"common-cause failures (beta {comp.beta:g})")
        return (
            f"{comp_name} needs {comp.required} of its {n} replicas and loses more than "
            f"{n - comp.required} ({', '.join(why)})"
        )
    if len(by_domain) == 1 and not own and len(next(iter(by_domain.values()))) == n:
        dom = next(iter(by_domain))
        what = "both replicas" if n == 2 else f"all {n} replicas"
        if " in " in dom:  # lost through a dependency bound to its domain ("db in r")
            who = "its single instance" if n == 1 else what
            return f"{comp_name} loses {who}: they use only {dom}"
        if n == 1:
            return f"{comp_name} runs a single instance, in {dom}"
        tail = ", so no standby is left to fail over to" if comp.active_passive else ""
        return f"{comp_name} has {what} in {dom}{tail}"
    if n == 1:
        return f"{comp_name} runs a single instance"
    lost = []
    for dom, reps in by_domain.items():
        lost.append(
            f"replica{'s' if len(reps) > 1 else ''} {', '.join(str(i + 1) for i in reps)} "
            f"with {dom}"
        )
    if own:
        lost.append(f"replica{'s' if len(own) > 1 else ''} {', '.join(str(i + 1) for i in own)}")
    need = "a standby" if comp.active_passive else f"{comp.required} of its {n} replicas"
    return f"{comp_name} needs {need} and loses {' and '.join(lost)}"


def _hosted(compiled: Compiled) -> dict[str, set[str]]:
    """Domain -> components with a replica in it (or its descendants) or sharing its fate."""
    if compiled.hosted is not None:
        return compiled.hosted
    system = compiled.system
    out: dict[str, set[str]] = {}
    for c in system.components.values():
        for i in range(c.replicas):
            for d in system.chain(c.zone_of(i)):
                out.setdefault(d, set()).add(c.name)
        for s in c.shared:
            for d in system.chain(s):
                out.setdefault(d, set()).add(c.name)
    compiled.hosted = out
    return out


def _hard_tree(compiled: Compiled, journey: str) -> tuple[dict[str, int], dict[str, str | None]]:
    """Breadth-first tree of ``journey``'s hard dependencies: each component's rank in BFS order
    and its parent (``None`` for the entry); computed once per journey and kept on ``compiled``."""
    tree = compiled.trees.get(journey)
    if tree is None:
        system = compiled.system
        entry = system.journeys[journey].entry
        prev: dict[str, str | None] = {entry: None}
        rank: dict[str, int] = {}
        queue = [entry]
        for name in queue:  # the list grows while it is walked: a FIFO queue
            rank[name] = len(rank)
            for dep in system.components[name].hard_deps():
                if dep not in prev:
                    prev[dep] = name
                    queue.append(dep)
        tree = compiled.trees[journey] = (rank, prev)
    return tree


def explain_cut_set(compiled: Compiled, journey: str, cut: frozenset[Event]) -> str:
    """A sentence saying why ``cut`` takes ``journey`` down.

    The chain of hard dependencies is followed from the entry to the first component whose own
    redundancy (or shared-fate domain) is exhausted, breadth first, so the shortest chain is told.
    """
    touched: set[str] = set()
    for ev in cut:
        info = compiled.info[ev]
        if info.component is not None:
            touched.add(info.component)
        elif info.domain is not None:
            touched.update(_hosted(compiled).get(info.domain, ()))
    rank, prev = _hard_tree(compiled, journey)
    memo: dict[int, bool] = {}
    culprit: str | None = None
    # The touched component nearest the entry (breadth first) whose own redundancy is exhausted;
    # walk whichever is smaller, the touched set (a unit's component) or the journey's path (a
    # zone touches every component placed in it, most of them on other journeys' paths).
    if len(touched) < len(rank):
        candidates = sorted((c for c in touched if c in rank), key=rank.__getitem__)
    else:
        candidates = [c for c in rank if c in touched]  # rank's keys are in BFS order
    for name in candidates:
        if occurs(compiled.intrinsic[name], cut, memo):
            culprit = name
            break
    if culprit is None:
        # The cut reaches the path only through members: the first component on the path, breadth
        # first, whose own structure fails (a group of members that loses too many).
        culprit = next((c for c in rank if occurs(compiled.intrinsic[c], cut, memo)), None)
    what = " and ".join(sorted(e.label or e.name for e in cut))
    if culprit is None:
        return f"{journey} fails if {what}"
    path = [culprit]
    while (p := prev[path[-1]]) is not None:
        path.append(p)
    path.reverse()
    hops = [f"{a} requires {b}" for a, b in itertools.pairwise(path)]
    reason = _reason(compiled, culprit, cut)
    because = ", ".join([*hops, reason]) if hops else reason
    return f"{journey} fails if {what}, because {because}"


def analyse(
    system: System,
    *,
    max_order: int = 2,
    max_cut_sets: int = 200,
    max_explained: int = 60,
    explain: bool = True,
    cut_sets: bool = True,
    journeys: Collection[str] | None = None,
) -> Analysis:
    """Exact steady-state analysis of every journey of ``system`` (or only of ``journeys``).

    ``max_order`` bounds the minimal cut sets listed (2: single points of failure and pairs);
    ``max_cut_sets`` the number kept per journey (the most probable first within each order);
    ``cut_sets=False`` skips them (what-if evaluations need only the figures).  Every single
    point of failure is explained in words, and the ``max_explained`` most likely cut sets.
    ``journeys`` restricts the analysis (and the model compiled for it) to those journeys and
    the components they need.

    Cost: linear in the size of the journeys' fault trees (the components on each journey's hard
    path, summed over journeys) for a fixed set of failure domains.
    """
    compiled = compile_system(system, journeys)
    names = list(compiled.tops)
    order: list[Event] = compiled.domain_events()
    seen = set(order)
    tops: list[Node] = [*compiled.tops.values(), *compiled.degraded.values()]
    from .faulttree import events_of

    for top in tops:
        for ev in events_of(top):
            if ev not in seen:
                seen.add(ev)
                order.append(ev)
    for ev in compiled.info:
        if ev not in seen:
            seen.add(ev)
            order.append(ev)
    bdd = BDD(order)
    p = event_probabilities(compiled)
    # fails(entry) = OR of intrinsic(c) over the hard closure: the same function as the nested
    # tree, but built flat from small pieces it costs O(size) instead of O(components x size).
    own = {name: bdd.build(node) for name, node in compiled.intrinsic.items()}
    first: dict[str, int] = {}
    for ev, info in compiled.info.items():
        if info.component is not None:
            at = bdd.index[ev]
            first[info.component] = min(first.get(info.component, at), at)

    def by_order(names: set[str] | list[str]) -> list[int]:
        return [own[c] for c in sorted(names, key=lambda c: first.get(c, 0))]

    roots: dict[str, int] = {}
    degraded: dict[str, int] = {}
    for jname in names:
        path = system.hard_closure(system.journeys[jname].entry)
        roots[jname] = bdd.or_all(by_order(path))
        extra = [s for c in path for s in system.components[c].deps_of("soft")]
        reach = {x for s in extra for x in system.hard_closure(s)} - set(path)
        # Full service needs the soft dependencies too: the journey's own diagram OR'd with the
        # components only they bring in (the journey's part is built once, not twice).
        degraded[jname] = (
            bdd.or_(roots[jname], bdd.or_all(by_order(reach))) if reach else roots[jname]
        )
    results: dict[str, JourneyResult] = {}
    own_cuts: dict[str, list[frozenset[Event]]] = {}
    for jname in names:
        j = system.journeys[jname]
        root = roots[jname]
        q = bdd.probability(root, p)
        q_deg = bdd.probability(degraded[jname], p)
        imp = bdd.importance(root, p)
        cuts: list[frozenset[Event]] = []
        if cut_sets:
            # Same function as the nested tree, flattened: the union over the hard path of each
            # component's own cut sets, minimised once (linear instead of quadratic in depth).
            for c in system.hard_closure(j.entry):
                if c not in own_cuts:
                    own_cuts[c] = minimal_cut_sets(compiled.intrinsic[c], max_order=max_order)
                cuts.extend(own_cuts[c])
            # An event that cannot happen (availability 1) makes no cut set: "top fails if top
            # fails" is not a single point of failure.
            cuts = [cut for cut in minimize(cuts) if all(p[e] > 0 for e in cut)]
        cut_reports = []
        for cut in cuts:
            prob = math.prod(p[e] for e in cut)
            cut_reports.append((len(cut), -prob, cut, prob))
        cut_reports.sort(key=lambda t: (t[0], t[1], sorted(e.name for e in t[2])))
        listed = [
            CutSet(
                tuple(sorted(e.name for e in cut)),
                tuple(sorted(e.label for e in cut)),
                prob,
                explain_cut_set(compiled, jname, cut)
                if explain and (len(cut) == 1 or rank < max_explained)
                else "",
            )
            for rank, (_, _, cut, prob) in enumerate(cut_reports[:max_cut_sets])
        ]
        sources: dict[str, float] = {}
        for ev, im in imp.items():
            share = q - im.if_never
            if share <= 0:
                continue
            info = compiled.info[ev]
            key = f"{info.domain}" if info.kind == "domain" else f"{info.component}"
            sources[key] = sources.get(key, 0.0) + share * MINUTES_PER_YEAR
        results[jname] = JourneyResult(
            name=jname,
            entry=j.entry,
            target=j.target,
            availability=1.0 - q,
            full_service=1.0 - q_deg,
            cut_sets=listed,
            importance={e: v for e, v in imp.items() if v.birnbaum > 0},
            sources=sorted(sources.items(), key=lambda kv: -kv[1]),
        )
    return Analysis(system, compiled, bdd, roots, degraded, p, results, own=own, first=first)


def probabilities_of(analysis: Analysis) -> Mapping[Event, float]:
    """The steady-state event probabilities the analysis used."""
    return analysis.probabilities
