"""Cross-reference checks of the ``architecture:`` section that concern redundancy structure:
members (different components backing each other up) and dependencies bound per replica to a
zone or region.  :func:`architecture_problems` (below) calls them; each returns
``(loc, message)`` pairs, ``loc`` relative to the section."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from buttress.spec.types import format_duration

if TYPE_CHECKING:
    from .model import ArchitectureSpec, ComponentSpec, JourneySpec

__all__ = [
    "DISRUPTIONS",
    "Loc",
    "architecture_problems",
    "bia_problems",
    "close_match",
    "grouped",
    "member_problems",
    "scope_problems",
    "unit_problems",
]

Loc = tuple[str | int, ...]

DISRUPTIONS: tuple[str, ...] = ("instance", "zone", "region", "deploy")
"""Disruption types that RTO/RPO targets may name."""


def close_match(name: str, options: Sequence[str]) -> str:
    import difflib

    near = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    if near:
        return f"; did you mean {near[0]!r}?"
    if options:
        return f" (known: {', '.join(sorted(options))})"
    return ""


def grouped(c: ComponentSpec) -> bool:
    """Whether the replicas form one Markov group (see :mod:`buttress.assess.groups`)."""
    r = c.redundancy
    shared_repair = c.repair.crews is not None and c.repair.crews < c.replicas
    return c.replicas >= 2 and (r.mode == "active-passive" or shared_repair or r.beta > 0)


def _scope_domain(arch: ArchitectureSpec, zone: str | None, kind: str) -> str | None:
    """The domain of ``kind`` at or above ``zone`` (``None`` if there is none)."""
    seen: set[str] = set()
    while zone is not None and zone in arch.domains and zone not in seen:
        seen.add(zone)
        if arch.domains[zone].kind == kind:
            return zone
        zone = arch.domains[zone].parent
    return None


def _placed(c: ComponentSpec, i: int) -> str | None:
    return c.placement[i % len(c.placement)] if c.placement else None


def scope_problems(arch: ArchitectureSpec, name: str, dep: str, kind: str) -> list[tuple[Loc, str]]:
    """A scoped edge (``within: region``): hard, between components with units of their own that
    are not one Markov group, and every caller replica's region holds a replica of the
    dependency."""
    loc: Loc = ("components", name, "depends_on", dep, "within")
    caller, callee = arch.components[name], arch.components[dep]
    if caller.depends_on[dep].type != "hard":
        return [(loc, "only a hard dependency can be bound within a domain")]
    for who, comp in ((name, caller), (dep, callee)):
        if comp.members or grouped(comp):
            what = "has members" if comp.members else "is one Markov group"
            return [(loc, f"{who} {what}: its replicas cannot be bound to a {kind}")]
    for i in range(caller.replicas):
        here = _scope_domain(arch, _placed(caller, i), kind)
        if here is None:
            return [(loc, f"{name}'s replica {i + 1} is placed in no {kind}")]
        local = [
            j
            for j in range(callee.replicas)
            if _scope_domain(arch, _placed(callee, j), kind) == here
        ]
        if not local:
            return [(loc, f"{dep} has no replica in {here}, where {name}'s replica {i + 1} runs")]
    return []


_OWN_UNITS = ("replicas", "availability", "mtbf", "mttr", "placement", "uncertain")


def member_problems(arch: ArchitectureSpec, name: str, c: ComponentSpec) -> list[tuple[Loc, str]]:
    """A component with ``members`` names known, distinct other components, needs at most as many
    as it has, and has no units of its own."""
    out: list[tuple[Loc, str]] = []
    comps = arch.components
    for i, m in enumerate(c.members):
        if m == name:
            out.append((("components", name, "members", i), "a component cannot be its own member"))
        elif m not in comps:
            out.append(
                (
                    ("components", name, "members", i),
                    f"unknown component {m!r}{close_match(m, list(comps))}",
                )
            )
        elif m in c.members[:i]:
            out.append((("components", name, "members", i), f"{m!r} is listed twice"))
    if c.redundancy.required > len(c.members):
        out.append(
            (
                ("components", name, "redundancy", "required"),
                f"k of k-of-n must not exceed the members: required={c.redundancy.required} > "
                f"{len(c.members)} members",
            )
        )
    if c.redundancy.mode != "active-active":
        out.append(
            (
                ("components", name, "redundancy", "mode"),
                "members back each other up as active-active (any k of them)",
            )
        )
    if "repair" in c.model_fields_set:
        out.extend(_crew_problems(arch, name, c))
    for field in _OWN_UNITS:
        if field in c.model_fields_set:
            out.append(
                (
                    ("components", name, field),
                    f"a component with members has no units of its own: drop {field} (give it "
                    "to the members)",
                )
            )
    return out


def _crew_problems(arch: ArchitectureSpec, name: str, c: ComponentSpec) -> list[tuple[Loc, str]]:
    """Members sharing repair crews are one Markov chain, so each must be a plain unit (one
    replica, no placement, shared domain, dependency or group of its own) that nothing else uses:
    elsewhere it would be an event dependent on this one."""
    out: list[tuple[Loc, str]] = []
    if c.repair.crews is None or c.repair.distribution != "exponential":
        out.append(
            (
                ("components", name, "repair"),
                "a component with members takes only crews (and discipline): its members' "
                "repairs, exponential, share them",
            )
        )
        return out
    users: dict[str, list[str]] = {}
    for other, comp in arch.components.items():
        for dep in [*comp.depends_on, *(comp.members if other != name else [])]:
            users.setdefault(dep, []).append(other)
    for j in arch.journeys.values():
        users.setdefault(j.entry, []).append("a journey")
    for i, m in enumerate(c.members):
        member = arch.components.get(m)
        if member is None:
            continue
        why = ""
        if member.replicas != 1 or member.placement or member.shared or member.members:
            why = "must be a single unit with no placement, shared domain or members"
        elif member.depends_on or member.schedule is not None:
            why = "must have no dependencies or schedule"
        elif users.get(m):
            why = f"is also used by {', '.join(sorted(set(users[m])))}"
        if why:
            out.append(
                (
                    ("components", name, "members", i),
                    f"{m} shares {name}'s repair crews, so it {why}",
                )
            )
    return out


def unit_problems(name: str, c: ComponentSpec) -> list[tuple[Loc, str]]:
    """Problems of one component's own redundancy and repair fields: a schedule on several
    replicas, a non-exponential repair in a Markov group, a standby factor off a warm standby,
    misfitting multiple Greek letters, a beta factor on one replica."""
    out: list[tuple[Loc, str]] = []
    r = c.redundancy
    if c.schedule is not None and c.replicas > 1:
        out.append(
            (
                ("components", name, "schedule"),
                "a schedule is for one unit: give each replica its own component",
            )
        )
    if c.repair.distribution != "exponential" and grouped(c):
        out.append(
            (
                ("components", name, "repair", "distribution"),
                "the replicas form a Markov group (active-passive, shared crews or a beta "
                "factor), whose repairs are exponential",
            )
        )
    if r.standby_factor is not None and r.standby != "warm":
        out.append(
            (
                ("components", name, "redundancy", "standby_factor"),
                f"standby_factor applies to a warm standby, not {r.standby}",
            )
        )
    mgl_problem = _mgl_problem(c)
    if mgl_problem:
        out.append((("components", name, "redundancy", mgl_problem[0]), mgl_problem[1]))
    if r.beta > 0 and c.replicas < 2:
        out.append(
            (
                ("components", name, "redundancy", "beta"),
                "a common-cause beta factor needs a group of at least two replicas",
            )
        )
    return out


def _mgl_problem(c: ComponentSpec) -> tuple[str, str] | None:
    """Where the multiple Greek letter parameters do not fit the group, if they do not."""
    r = c.redundancy
    if r.gamma is None and r.delta is None:
        return None
    field = "gamma" if r.gamma is not None else "delta"
    if r.gamma is None:
        return field, "delta needs gamma (and beta)"
    if r.beta <= 0:
        return field, "the multiple Greek letters refine a beta factor: give beta > 0"
    if r.mode != "active-active" or not 3 <= c.replicas <= 4:
        return field, "the multiple Greek letters apply to an active-active group of 3 or 4"
    if r.delta is not None and c.replicas != 4:
        return "delta", "delta (four failing together) needs 4 replicas"
    return None


def hard_cycle(arch: ArchitectureSpec) -> list[str] | None:
    """A cycle among hard edges as a list ``[a, b, ..., a]``, or ``None``."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(arch.components, white)
    for start in arch.components:
        if colour[start] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(start, _hard(arch, start))]
        path = [start]
        colour[start] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                colour[node] = black
                continue
            nxt = todo.pop(0)
            if colour[nxt] == grey:
                return [*path[path.index(nxt) :], nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append((nxt, _hard(arch, nxt)))
    return None


def _hard(arch: ArchitectureSpec, name: str) -> list[str]:
    comp = arch.components[name]
    deps = [d for d, e in comp.depends_on.items() if e.type == "hard" and d in arch.components]
    return deps + [m for m in comp.members if m in arch.components and m != name]


def architecture_problems(arch: ArchitectureSpec) -> list[tuple[Loc, str]]:
    """Every cross-reference problem of ``arch`` as ``(loc, message)``, ``loc`` relative to the
    section, in file order of the checks below.

    Checks: domain parents exist and form no cycle; placements and shared domains exist;
    ``required <= replicas`` (or ``<=`` the members, which must be known, other components, with
    no units of their own given); an active-passive component keeps ``required == 1``;
    dependencies name known components and not themselves; hard dependencies (and members) form
    no cycle (reported once, at the edge that closes it); journeys enter at known components.
    """
    out: list[tuple[Loc, str]] = []
    domains = arch.domains
    for name, d in domains.items():
        if d.parent is not None and d.parent not in domains:
            out.append(
                (
                    ("domains", name, "parent"),
                    f"unknown domain {d.parent!r}{close_match(d.parent, list(domains))}",
                )
            )
    in_cycle: set[str] = set()
    for name in domains:
        seen = [name]
        cur = domains[name].parent
        while cur is not None and cur in domains:
            if cur in seen:
                # Report each cycle once, at the parent field of its first member.
                if cur == name and name not in in_cycle:
                    in_cycle.update(seen)
                    chain = " -> ".join([*seen, cur])
                    out.append(
                        (("domains", name, "parent"), f"domain parents form a cycle: {chain}")
                    )
                break
            seen.append(cur)
            cur = domains[cur].parent
    comps = arch.components
    for name, c in comps.items():
        for field in ("placement", "shared"):
            for i, dom in enumerate(getattr(c, field)):
                if dom not in domains:
                    out.append(
                        (
                            ("components", name, field, i),
                            f"unknown domain {dom!r}{close_match(dom, list(domains))}",
                        )
                    )
        r = c.redundancy
        if c.members:
            out.extend(member_problems(arch, name, c))
        elif r.required > c.replicas:
            out.append(
                (
                    ("components", name, "redundancy", "required"),
                    f"k of k-of-n must not exceed n: required={r.required} > replicas={c.replicas}",
                )
            )
        out.extend(unit_problems(name, c))
        if r.mode == "active-passive" and r.required != 1:
            out.append(
                (
                    ("components", name, "redundancy", "required"),
                    "active-passive serves from one unit: required must be 1",
                )
            )
        for dep in c.depends_on:
            if dep == name:
                out.append(
                    (("components", name, "depends_on", dep), "a component cannot depend on itself")
                )
            elif dep not in comps:
                out.append(
                    (
                        ("components", name, "depends_on", dep),
                        f"unknown component {dep!r}{close_match(dep, list(comps))}",
                    )
                )
    for name, c in comps.items():
        for dep, edge in c.depends_on.items():
            if edge.within is not None and dep in comps and dep != name:
                out.extend(scope_problems(arch, name, dep, edge.within))
    cycle = hard_cycle(arch)
    if cycle is not None:
        chain = " -> ".join(cycle)
        closer = arch.components[cycle[-2]]
        loc: Loc = ("components", cycle[-2], "depends_on", cycle[-1])
        if cycle[-1] in closer.members and cycle[-1] not in closer.depends_on:
            loc = ("components", cycle[-2], "members", closer.members.index(cycle[-1]))
        out.append((loc, f"hard dependencies form a cycle: {chain} (make one edge soft or async)"))
    for jname, j in arch.journeys.items():
        if j.entry not in comps:
            out.append(
                (
                    ("journeys", jname, "entry"),
                    f"unknown component {j.entry!r}{close_match(j.entry, list(comps))}",
                )
            )
        out.extend(bia_problems(jname, j))
    return out


def bia_problems(name: str, j: JourneySpec) -> list[tuple[Loc, str]]:
    """A recovery time objective that, with the work recovery time after it, overruns the maximum
    tolerable downtime (NIST SP 800-34: RTO + WRT <= MTD), located at the RTO target."""
    bia = j.bia
    if bia is None:
        return []
    out: list[tuple[Loc, str]] = []
    shown = functools.partial(format_duration, days_from=2)  # 24h, as a BIA writes it, not 1d
    for kind in DISRUPTIONS:
        rto = getattr(j.rto, kind)
        if rto is not None and rto + bia.wrt > bia.mtd + 1e-9:
            out.append(
                (
                    ("journeys", name, "rto", kind),
                    f"RTO {shown(rto)} plus the work recovery time {shown(bia.wrt)} exceeds the "
                    f"maximum tolerable downtime {shown(bia.mtd)} (bia.mtd): RTO + WRT must not "
                    "exceed MTD",
                )
            )
    return out
