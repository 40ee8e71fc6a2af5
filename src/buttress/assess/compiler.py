"""Compile an architecture into fault trees: one top event per user journey.

Basic events are independent (that is what makes the evaluation exact):

* ``unit:C[i]``: replica ``i`` of component ``C`` fails by itself (MTBF/MTTR of a unit);
* ``ap:C``: the active-passive group ``C`` is down for reasons internal to it (unit failures,
  failover time, failed failovers), with the probability of its Markov chain;
* ``group:C``: the active-active group ``C`` whose replicas are not independent (fewer repair
  crews than replicas, or a common-cause beta factor) has fewer than ``k`` units working, with the
  probability of its Markov chain (:mod:`.groups`);
* ``domain:D``: failure domain ``D`` (zone, region, shared-fate dependency) is down.

Gates, for a component ``C`` with replicas ``0..n-1`` and hard dependencies ``H``:

    replica_down(i) = OR(unit:C[i], domain:zone(i), domain:parent(zone(i)), ...,
                         local(d, region(i)) for every dependency d bound ``within: region``)
    local(d, R)     = OR(AT_LEAST(m - min(k, m) + 1, replica_down of d's m replicas in R),
                         d's shared domains, fails(h) for d's hard dependencies h)
    active-active:   intrinsic(C) = AT_LEAST(n - k + 1, replica_down(0..n-1))
    Markov group:    intrinsic(C) = OR(ap:C or group:C,
                                   AT_LEAST(n - k + 1, domain chains of the replicas))

The group event and the domains are independent events, so a group is exact without placement;
with placement, a cut mixing a unit failure inside the group and a domain outage is not counted
(the group's chain does not know the domains), which slightly flatters such a group.
    members M (k of): intrinsic(C) = AT_LEAST(|M| - k + 1, fails(m) for m in M)
    fails(C)         = OR(intrinsic(C), shared domains of C and their parents, fails(h) for h in H)
    top(journey)     = fails(entry)

A zone holding two replicas is the *same* event under both, so the tree captures common cause;
the BDD then evaluates it exactly.  Soft dependencies do not fail the caller: they appear only in
``degraded(journey) = OR(top, fails(s) for soft s of any component on the hard path)``.
Asynchronous dependencies appear in neither (they matter for RPO and backlogs).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from .faulttree import AtLeast, Event, Node, Or, postorder
from .system import Component, System, UnitParams

__all__ = ["CHAIN_KINDS", "Compiled", "EventInfo", "compile_system", "occurs", "own_node"]

CHAIN_KINDS = ("ap", "group")
"""Event kinds whose probability comes from a group's Markov chain (:mod:`.groups`)."""


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What a basic event stands for."""

    kind: str  # "unit" | "ap" | "group" | "domain"
    component: str | None = None
    replica: int | None = None
    domain: str | None = None

    def unit(self, system: System) -> UnitParams | None:
        """The unit whose failures this event stands for (a component's or a domain's); ``None``
        for an event of a group's Markov chain (:data:`CHAIN_KINDS`)."""
        if self.kind == "unit" and self.component is not None:
            return system.components[self.component].unit
        if self.kind == "domain" and self.domain is not None:
            return system.domains[self.domain].unit
        return None


@dataclass
class Compiled:
    """The fault trees of a :class:`System` and what their basic events mean."""

    system: System
    events: dict[str, Event] = field(default_factory=dict)
    info: dict[Event, EventInfo] = field(default_factory=dict)
    fails: dict[str, Node] = field(default_factory=dict)
    intrinsic: dict[str, Node] = field(default_factory=dict)
    tops: dict[str, Node] = field(default_factory=dict)
    degraded: dict[str, Node] = field(default_factory=dict)
    hosted: dict[str, set[str]] | None = None
    replica_nodes: dict[str, list[Node]] = field(default_factory=dict)
    local: dict[tuple[str, str | None], Node] = field(default_factory=dict)
    trees: dict[str, tuple[dict[str, int], dict[str, str | None]]] = field(default_factory=dict)

    def domain_events(self) -> list[Event]:
        """Domain events, parents (regions) before children (zones): a good head of a BDD order."""

        def depth(e: Event) -> int:
            name = self.info[e].domain
            return len(self.system.chain(name)) if name else 0

        return sorted(
            (e for e, i in self.info.items() if i.kind == "domain"),
            key=lambda e: (depth(e), e.name),
        )


def _event(c: Compiled, name: str, label: str, info: EventInfo) -> Event:
    ev = c.events.get(name)
    if ev is None:
        ev = Event(name, label)
        c.events[name] = ev
        c.info[ev] = info
    return ev


def _domain(c: Compiled, name: str) -> Event:
    d = c.system.domains[name]
    kind = "shared dependency" if d.kind == "shared" else d.kind
    return _event(c, f"domain:{name}", f"{kind} {name} fails", EventInfo("domain", domain=name))


def _chain(c: Compiled, zone: str | None) -> list[Node]:
    return [_domain(c, d) for d in c.system.chain(zone)]


def _local(c: Compiled, dep: str, domain: str | None) -> Node:
    """``dep`` as seen from inside ``domain``: down when its replicas there cannot serve (fewer
    than ``min(k, replicas there)`` up), or its shared domains or hard dependencies fail."""
    key = (dep, domain)
    node = c.local.get(key)
    if node is None:
        system = c.system
        comp = system.components[dep]
        here = [
            r
            for i, r in enumerate(c.replica_nodes[dep])
            if domain is not None and domain in system.chain(comp.zone_of(i))
        ]
        need = min(comp.required, len(here))
        parts: list[Node] = [AtLeast(len(here) - need + 1, *here, name=f"{dep}@{domain}")]
        for s in comp.shared:
            parts.extend(_chain(c, s))
        parts.extend(c.fails[h] for h in comp.hard_deps())
        node = c.local[key] = (
            Or(*parts, name=f"local:{dep}@{domain}") if len(parts) > 1 else parts[0]
        )
    return node


def _group(c: Compiled, comp: Component) -> Node:
    """A Markov group (active-passive, shared crews, common cause): one event for the group's own
    failures, OR'd with its replicas' domains taking down more than it can lose."""
    n = comp.replicas
    if comp.active_passive:
        kind, label = "ap", f"{comp.name}'s failover pair is down"
    else:
        kind, label = "group", f"{comp.name} loses more than {n - comp.required} of {n} replicas"
    ev = _event(c, f"{kind}:{comp.name}", label, EventInfo(kind, component=comp.name))
    chains = [ch for ch in (_chain(c, comp.zone_of(i)) for i in range(n)) if ch]
    need = n - comp.required + 1
    if len(chains) >= need:
        per_unit: list[Node] = [ch[0] if len(ch) == 1 else Or(*ch) for ch in chains]
        return Or(ev, AtLeast(need, *per_unit), name=f"intrinsic:{comp.name}")
    return ev


def _intrinsic(c: Compiled, comp: Component) -> Node:
    n = comp.replicas
    if comp.crew_pool:
        # Members sharing repair crews: one chain over their units (plain units used nowhere else).
        label = f"{comp.name} loses more than {n - comp.required} of {', '.join(comp.members)}"
        return _event(c, f"group:{comp.name}", label, EventInfo("group", component=comp.name))
    if comp.composite:
        # Different components backing each other up: down when more than n - k of them are,
        # each member failing with its own dependencies.
        members = [c.fails[m] for m in comp.members]
        return AtLeast(n - comp.required + 1, *members, name=f"intrinsic:{comp.name}")
    if comp.grouped:
        return _group(c, comp)
    replicas: list[Node] = []
    own: list[Node] = []
    for i in range(n):
        zone = comp.zone_of(i)
        where = f" ({zone})" if zone else ""
        label = (
            f"{comp.name} replica {i + 1}{where} fails" if n > 1 else f"{comp.name}{where} fails"
        )
        unit = _event(
            c, f"unit:{comp.name}[{i}]", label, EventInfo("unit", component=comp.name, replica=i)
        )
        doms = _chain(c, zone)
        node: Node = Or(unit, *doms, name=f"replica:{comp.name}[{i}]") if doms else unit
        own.append(node)
        bound = [_local(c, dep, c.system.scope_of(zone, kind)) for dep, kind in comp.scoped]
        replicas.append(Or(node, *bound, name=f"serving:{comp.name}[{i}]") if bound else node)
    c.replica_nodes[comp.name] = own
    if n == 1:
        return replicas[0]
    return AtLeast(n - comp.required + 1, *replicas, name=f"intrinsic:{comp.name}")


def own_node(c: Compiled, comp: Component) -> Node:
    """``comp``'s own failure (its units, redundancy and shared domains; not its hard
    dependencies), adding the events it needs to ``c``; members must be compiled already."""
    intr = _intrinsic(c, comp)
    shared: list[Node] = []
    for s in comp.shared:
        shared.extend(_chain(c, s))
    return Or(intr, *shared, name=f"own:{comp.name}") if shared else intr


def compile_system(system: System, journeys: Collection[str] | None = None) -> Compiled:
    """Fault trees for the journeys of ``system`` (all of them, or only ``journeys``) and the
    components they need: every component, or for a subset of journeys only those on their hard
    paths and behind their soft dependencies (what-if evaluations re-analyse just the journeys a
    change touches)."""
    c = Compiled(system)
    names = list(system.journeys) if journeys is None else list(journeys)
    roots: Iterable[str] = system.components
    if journeys is not None:
        needed: set[str] = set()
        for jname in names:
            path = system.structural_closure(system.journeys[jname].entry)
            needed.update(path)
            for caller in path:
                for dep in system.components[caller].deps_of("soft"):
                    needed.update(system.structural_closure(dep))
        roots = [name for name in system.components if name in needed]
    # Components in dependency order (hard edges are acyclic: checked at load time).
    order: list[str] = []
    state: dict[str, int] = {}
    for root in roots:
        stack = [(root, False)]
        while stack:
            name, done = stack.pop()
            if done:
                if state.get(name) != 2:
                    state[name] = 2
                    order.append(name)
                continue
            if state.get(name):
                continue
            state[name] = 1
            stack.append((name, True))
            stack.extend((d, False) for d in system.components[name].requires() if not state.get(d))
    for name in order:
        comp = system.components[name]
        c.intrinsic[name] = own_node(c, comp)
        deps = [c.fails[d] for d in comp.hard_deps()]
        c.fails[name] = (
            Or(c.intrinsic[name], *deps, name=f"fails:{name}") if deps else c.intrinsic[name]
        )
    for jname in names:
        j = system.journeys[jname]
        top = c.fails[j.entry]
        c.tops[jname] = top
        soft: list[Node] = []
        for caller in system.hard_closure(j.entry):
            soft.extend(c.fails[s] for s in system.components[caller].deps_of("soft"))
        c.degraded[jname] = Or(top, *soft, name=f"degraded:{jname}") if soft else top
    return c


def occurs(root: Node, occurred: frozenset[Event] | set[Event], memo: dict[int, bool]) -> bool:
    """Whether ``root`` occurs when exactly the events ``occurred`` have (structure function).

    ``memo`` (keyed by node id) may be shared between calls with the same ``occurred``.
    """
    for node in postorder(root, skip=memo):
        if isinstance(node, Event):
            memo[id(node)] = node in occurred
        else:
            memo[id(node)] = sum(memo[id(ch)] for ch in node.children) >= node.m
    return memo[id(root)]
