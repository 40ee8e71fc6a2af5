"""What-if recommendations: candidate changes, each evaluated exactly, ranked by predicted gain.

Candidates are generated for the components and domains that carry a journey's downtime (the
top ``focus`` sources by Fussell-Vesely share), then each is applied to a copy of the system and
the model re-evaluated exactly with the BDD, so the gain accounts for common cause and for every
journey at once.  Only the journeys a change can touch are re-evaluated: those with a changed
component on their hard path, or a component placed in (or sharing the fate of) a changed domain;
every other journey keeps its availability exactly (no candidate adds a hard dependency, so the
paths of the system as it is bound the paths after the change).  That keeps the cost of all
recommendations linear in the size of the system rather than in components x journeys:

* **spread replicas**: replicas sharing a zone while another zone is free move there;
* **add a replica in another zone**: ``n + 1`` replicas, the new one in the least used zone
  (for a single instance: a datastore gets an active-passive standby, anything else a second
  active replica);
* **make a dependency soft**: a hard edge becomes soft with a fallback (the caller degrades);
* **cut MTTR by alerting**: detection time down to one minute for units and domains that take
  longer (MTTR shrinks by the same amount);
* **improve failover coverage**: an active-passive group with coverage below 0.999 gets 0.999.

The gain of a change for a journey is ``A_new - A_now``; candidates are ranked by the minutes of
downtime per year they save, summed over journeys weighted by each journey's share of users.
"""

from __future__ import annotations

from collections import ChainMap, Counter
from dataclasses import dataclass, replace

from .analysis import Analysis, analyse, event_probability
from .analytic import MINUTES_PER_YEAR
from .compiler import Compiled, own_node
from .faulttree import Event
from .system import Component, System, UnitParams

__all__ = ["Recommendation", "recommend"]

ALERT_DETECT = 1.0 / 60.0


@dataclass(frozen=True, slots=True)
class Recommendation:
    """A change and the availability each journey would reach with it."""

    title: str
    kind: str
    target: str
    availability: dict[str, float]
    gain: dict[str, float]
    minutes_saved: float

    def reaches(self, journey: str, target: float) -> bool:
        return self.availability[journey] >= target


def _zones(system: System) -> list[str]:
    return [d.name for d in system.domains.values() if d.kind == "zone"]


def _placement(c: Component) -> list[str | None]:
    return [c.zone_of(i) for i in range(c.replicas)]


def _candidates(system: System, comp: Component) -> list[tuple[str, str, System]]:
    out: list[tuple[str, str, System]] = []
    zones = _zones(system)
    used = [z for z in _placement(comp) if z is not None]
    counts = Counter(used)
    free = [z for z in zones if z not in counts]
    if free and any(v > 1 for v in counts.values()):
        new: list[str] = []
        spare = list(free)
        seen: set[str] = set()
        for z in used:
            if z in seen and spare:
                new.append(spare.pop(0))
            else:
                new.append(z)
                seen.add(z)
        moved = replace(comp, placement=tuple(new))
        out.append(
            (
                f"spread {comp.name}'s replicas across zones ({', '.join(new)})",
                "spread",
                system.with_component(moved),
            )
        )
    if comp.placement or zones:
        pool = zones or list(comp.placement)
        least = min(pool, key=lambda z: (counts.get(z, 0), pool.index(z)))
        place = (*[z or least for z in _placement(comp)], least) if used or zones else ()
    else:
        least, place = "", ()
    where = f" in {least}" if least else ""
    if comp.replicas == 1 and comp.kind == "datastore":
        added = replace(
            comp,
            replicas=2,
            placement=place,
            mode="active-passive",
            detection=30 / 3600,
            switchover=60 / 3600,
            coverage=0.99,
            required=1,
        )
        title = f"add a failover standby for {comp.name}{where} (active-passive)"
        out.append((title, "failover", system.with_component(added)))
    elif comp.kind != "external" or comp.replicas > 1:
        added = replace(comp, replicas=comp.replicas + 1, placement=place)
        title = f"add a replica of {comp.name}{where}"
        out.append((title, "replica", system.with_component(added)))
    if comp.unit.detect > ALERT_DETECT * 1.0001 and comp.unit.lam > 0:
        u = comp.unit
        faster = UnitParams(u.mtbf, u.mttr - u.detect + ALERT_DETECT, ALERT_DETECT)
        title = (
            f"alert on {comp.name} within 1 minute "
            f"(MTTR {u.mttr * 60:.0f}m -> {faster.mttr * 60:.0f}m)"
        )
        out.append((title, "alerting", system.with_component(replace(comp, unit=faster))))
    if comp.active_passive and comp.coverage < 0.999:
        better = replace(comp, coverage=0.999)
        title = (
            f"test {comp.name}'s failover until coverage reaches 99.9% (now {comp.coverage:.1%})"
        )
        out.append((title, "coverage", system.with_component(better)))
    return out


def _soften(system: System, dep: str) -> list[tuple[str, str, System]]:
    out = []
    for caller in system.components.values():
        if dep in caller.hard_deps():
            deps = tuple((d, "soft" if d == dep else t) for d, t in caller.deps)
            title = f"make {caller.name} -> {dep} soft, with a fallback"
            out.append((title, "soften", system.with_component(replace(caller, deps=deps))))
    return out


def _domain_alerting(system: System, name: str) -> list[tuple[str, str, System]]:
    d = system.domains[name]
    u = d.unit
    if u.detect <= ALERT_DETECT * 1.0001 or u.lam == 0:
        return []
    faster = UnitParams(u.mtbf, u.mttr - u.detect + ALERT_DETECT, ALERT_DETECT)
    title = (
        f"detect {d.kind} {name} outages within 1 minute "
        f"(MTTR {u.mttr * 60:.0f}m -> {faster.mttr * 60:.0f}m)"
    )
    return [(title, "alerting", system.with_domain(replace(d, unit=faster)))]


def _journey_index(system: System) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Component -> journeys with it on their hard path; domain -> journeys with a component on
    their hard path placed in it (or beneath it) or sharing its fate."""
    on_path: dict[str, set[str]] = {}
    in_domain: dict[str, set[str]] = {}
    for jname, j in system.journeys.items():
        for name in system.structural_closure(j.entry):
            on_path.setdefault(name, set()).add(jname)
            comp = system.components[name]
            doms = {d for i in range(comp.replicas) for d in system.chain(comp.zone_of(i))}
            doms.update(d for s in comp.shared for d in system.chain(s))
            for d in doms:
                in_domain.setdefault(d, set()).add(jname)
    return on_path, in_domain


def incremental(
    analysis: Analysis,
    changed: System,
    touched: set[str],
    diff: tuple[list[str], list[str]] | None = None,
) -> dict[str, float] | None:
    """The availability of the ``touched`` journeys of ``changed`` (``analysis``'s system with one
    component or domain replaced), on ``analysis``'s own BDD: the changed component's own failure
    is rebuilt (new events appended to the variable order) and each journey's OR over its hard
    path re-made from the kept nodes (mostly hits in the BDD's memo); a changed domain only
    changes a probability.  ``None`` when the change is not of that kind (or the model has
    members or bound dependencies, whose nodes nest other components): re-analyse instead.
    ``diff`` names the changed components and domains when the caller knows them."""
    base = analysis.system
    comps, doms = diff if diff is not None else _diff(base, changed)
    if len(comps) + len(doms) != 1 or not analysis.own:
        return None
    nested = analysis.rest.get("nested")
    if nested is None:
        nested = analysis.rest["nested"] = any(
            c.composite or c.scoped for c in base.components.values()
        )
    if nested:
        return None
    compiled, bdd = analysis.compiled, analysis.bdd
    new_p: dict[Event, float] = {}
    own, first = analysis.own, analysis.first
    if doms:
        ev = compiled.events.get(f"domain:{doms[0]}")
        if ev is None:
            return {j: analysis.journeys[j].availability for j in touched}
        return _one_event(analysis, ev, event_probability(changed, compiled.info[ev]), touched)
    name = comps[0]
    if name not in own:
        return None
    scratch = Compiled(changed, events=dict(compiled.events), info=dict(compiled.info))
    scratch.fails = compiled.fails
    node = own_node(scratch, changed.components[name])
    mine = [ev for ev, info in scratch.info.items() if info.component == name]
    for ev in mine:
        bdd.add_var(ev)
        new_p[ev] = event_probability(changed, scratch.info[ev])
    mine_node = bdd.build(node)
    moved = [ev for ev in mine if new_p[ev] != analysis.probabilities.get(ev)]
    # The hard paths change only when the changed component's dependencies do (soften).
    paths_kept = changed.components[name].deps == base.components[name].deps
    same = mine_node == own[name] and (
        paths_kept
        or all(
            changed.hard_closure(changed.journeys[j].entry) == _path(analysis, j) for j in touched
        )
    )
    if same and len(moved) == 1:
        return _one_event(analysis, moved[0], new_p[moved[0]], touched)
    out: dict[str, float] = {}
    p = ChainMap(new_p, analysis.probabilities)
    for j in touched:
        entry = changed.journeys[j].entry
        path = _path(analysis, j) if paths_kept else changed.hard_closure(entry)
        if any(c not in own for c in path):
            return None
        if mine_node == own[name] and path == _path(analysis, j):
            root = analysis.roots[j]  # the same function: only probabilities changed
        elif name in path:
            root = bdd.or_(mine_node, _rest(analysis, j, name, path))
        else:
            root = bdd.or_all([own[c] for c in sorted(path, key=lambda c: first.get(c, 0))])
        out[j] = 1.0 - bdd.probability(root, p)
    return out


def _diff(base: System, changed: System) -> tuple[list[str], list[str]]:
    """The components and domains ``changed`` replaced (compared by identity)."""
    comps = [n for n, c in changed.components.items() if base.components.get(n) is not c]
    doms = [n for n, d in changed.domains.items() if base.domains.get(n) is not d]
    return comps, doms


def _path(analysis: Analysis, journey: str) -> list[str]:
    """The journey's hard path in the base system (kept)."""
    path = analysis.rest.get(("path", journey))
    if path is None:
        entry = analysis.system.journeys[journey].entry
        path = analysis.rest[("path", journey)] = analysis.system.hard_closure(entry)
    return list(path)


def _one_event(analysis: Analysis, ev: Event, p_new: float, touched: set[str]) -> dict[str, float]:
    """Availabilities when only ``ev``'s probability changes: the top probability is
    multilinear in the events' probabilities, so it moves by ``(p_new - p) * Birnbaum``
    exactly (no diagram walked)."""
    delta = p_new - analysis.probabilities[ev]
    out = {}
    for j in touched:
        res = analysis.journeys[j]
        imp = res.importance.get(ev)
        out[j] = res.availability - (delta * imp.birnbaum if imp is not None else 0.0)
    return out


def _rest(analysis: Analysis, journey: str, name: str, path: list[str]) -> int:
    """The OR of the own failures of ``path`` but ``name``, kept per (journey, component, path):
    the candidate changes of one component share it."""
    key = (journey, name, tuple(path))
    node = analysis.rest.get(key)
    if node is None:
        others = sorted((c for c in path if c != name), key=lambda c: analysis.first.get(c, 0))
        node = analysis.rest[key] = analysis.bdd.or_all([analysis.own[c] for c in others])
    return node


def recommend(analysis: Analysis, *, focus: int = 6, limit: int = 10) -> list[Recommendation]:
    """Ranked recommendations for ``analysis``'s system (at most ``limit``)."""
    system = analysis.system
    targets: list[str] = []
    for res in analysis.journeys.values():
        for name, _ in res.sources[:focus]:
            if name not in targets:
                targets.append(name)
    cands: list[tuple[str, str, str, System]] = []
    for name in targets:
        if name in system.components:
            found = _candidates(system, system.components[name]) + _soften(system, name)
        else:
            found = _domain_alerting(system, name)
        cands.extend((t, k, name, s) for t, k, s in found)
    now = {j: r.availability for j, r in analysis.journeys.items()}
    users = {j: system.journeys[j].users for j in system.journeys}
    on_path, in_domain = _journey_index(system)
    out: list[Recommendation] = []
    seen: set[str] = set()
    for title, kind, target, changed in cands:
        if title in seen:
            continue
        seen.add(title)
        touched: set[str] = set()
        diff = _diff(system, changed)
        for name in diff[0]:
            touched |= on_path.get(name, set())
        for name in diff[1]:
            touched |= in_domain.get(name, set())
        avail = dict(now)
        if touched:
            fast = incremental(analysis, changed, touched, diff)
            if fast is None:
                new = analyse(changed, cut_sets=False, explain=False, journeys=sorted(touched))
                fast = {j: r.availability for j, r in new.journeys.items()}
            avail.update(fast)
        # Differences below 1e-12 are rounding (another variable order), not a gain.
        gain = {j: d if abs(d := avail[j] - now[j]) > 1e-12 else 0.0 for j in avail}
        saved = sum(gain[j] * users[j] for j in gain) * MINUTES_PER_YEAR
        if saved <= 1e-9:
            continue
        out.append(Recommendation(title, kind, target, avail, gain, saved))
    out.sort(key=lambda r: (-r.minutes_saved, r.title))
    return out[:limit]
