"""The architecture as plain data the analyses work on (and what-if changes copy and edit).

:func:`System.from_spec` turns a validated :class:`~buttress.assess.model.ArchitectureSpec` into
dataclasses with times in hours and defaults resolved:

* a unit given ``availability`` A and ``mttr`` R (default ``defaults.mttr``) gets
  ``MTBF = R * A / (1 - A)`` (infinite when A = 1);
* a unit given nothing gets ``defaults.availability`` (0.999);
* ``detect`` defaults to ``defaults.detect`` and is capped at ``mttr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from .analytic import ActivePassive
from .ctmc import Chain
from .groups import GroupParams, group_chain, pool_chain
from .model import ArchitectureSpec, DataSpec, DefaultsSpec, ReliabilityFields, RepairLawSpec
from .processes import EXPONENTIAL, RepairLaw

__all__ = ["Component", "Domain", "Journey", "System", "UnitParams"]

H = 3600.0


@dataclass(frozen=True, slots=True)
class UnitParams:
    """Failure and repair of one unit, in hours.  ``mtbf`` may be ``inf`` (never fails)."""

    mtbf: float
    mttr: float
    detect: float
    law: RepairLaw = EXPONENTIAL
    """The repair time's distribution (its mean is ``mttr``); only the simulation reads it."""
    schedule: tuple[float, float, float] | None = None
    """Deterministic ``(every, repair, first)`` in hours (see :mod:`.schedules`), or ``None``."""
    ranges: tuple[tuple[str, float, float], ...] = ()
    spread: str = "loguniform"
    """How :attr:`ranges` are drawn: ``loguniform``, ``uniform`` or ``lognormal`` (5%-95%)."""
    """Uncertain figures as ``(field, low, high)``: ``availability``, or ``mtbf`` / ``mttr`` in
    hours (see :mod:`.uncertainty`)."""

    @property
    def lam(self) -> float:
        """Failure rate per hour."""
        return 0.0 if math.isinf(self.mtbf) else 1.0 / self.mtbf

    @property
    def mu(self) -> float:
        """Repair rate per hour (very large when mttr = 0)."""
        return 1.0 / max(self.mttr, 1e-12)

    @property
    def q(self) -> float:
        """Steady-state unavailability ``MTTR / (MTBF + MTTR)``."""
        if math.isinf(self.mtbf):
            return 0.0
        return self.mttr / (self.mtbf + self.mttr)

    @property
    def availability(self) -> float:
        return 1.0 - self.q

    @classmethod
    def resolve(cls, spec: ReliabilityFields, defaults: DefaultsSpec) -> UnitParams:
        if spec.schedule is not None:
            sch = spec.schedule
            every, fix = sch.every / H, sch.repair / H
            first = every if sch.first is None else sch.first / H
            detect = (spec.detect if spec.detect is not None else defaults.detect) / H
            # Random-phase figures for the steady-state analysis: the same means.
            return cls(every, fix, min(detect, fix), schedule=(every, fix, first))
        u = spec.uncertain
        ranges: list[tuple[str, float, float]] = []
        if u is not None:
            if u.availability is not None:
                ranges.append(("availability", *u.availability))
            if u.mtbf is not None:
                ranges.append(("mtbf", u.mtbf[0] / H, u.mtbf[1] / H))
            if u.mttr is not None:
                ranges.append(("mttr", u.mttr[0] / H, u.mttr[1] / H))
        # A figure given only as a range takes the range's geometric middle as its nominal value.
        spread = u.distribution if u is not None else "loguniform"
        middle = {f: middle_of(f, lo, hi, spread) for f, lo, hi in ranges}
        mttr = (spec.mttr / H) if spec.mttr is not None else middle.get("mttr", defaults.mttr / H)
        if spec.mtbf is not None or "mtbf" in middle:
            mtbf = spec.mtbf / H if spec.mtbf is not None else middle["mtbf"]
        else:
            a = spec.availability
            if a is None:
                a = middle.get("availability", defaults.availability)
            mtbf = math.inf if a >= 1.0 or mttr == 0 else mttr * a / (1.0 - a)
        detect = (spec.detect if spec.detect is not None else defaults.detect) / H
        return cls(mtbf, mttr, min(detect, mttr), ranges=tuple(ranges), spread=spread)


def middle_of(field: str, low: float, high: float, spread: str = "loguniform") -> float:
    """The middle of a range: geometric (the median of a log-uniform or lognormal draw), or
    arithmetic for a uniform one; of the unavailability, for an availability range."""
    if field == "availability":
        return 1.0 - middle_of("mtbf", 1.0 - high, 1.0 - low, spread)
    if spread == "uniform" or low <= 0:
        return (low + high) / 2
    return math.sqrt(low * high)


def _with_law(unit: UnitParams, spec: RepairLawSpec) -> UnitParams:
    if spec.distribution == "exponential":
        return unit
    return replace(unit, law=RepairLaw(spec.distribution, spec.shape or 1.0))


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    kind: str
    parent: str | None
    unit: UnitParams


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    kind: str
    replicas: int
    placement: tuple[str, ...]
    shared: tuple[str, ...]
    mode: str
    required: int
    detection: float
    switchover: float
    coverage: float
    standby: str
    unit: UnitParams
    deps: tuple[tuple[str, str], ...]
    fallbacks: tuple[tuple[str, str], ...] = ()
    rollback: float | None = None
    data: DataSpec | None = None
    standby_factor: float = 0.1
    recovery: float | None = None
    beta: float = 0.0
    gamma: float | None = None
    delta: float | None = None
    crews: int | None = None
    members: tuple[str, ...] = ()
    discipline: str = "fifo"
    member_units: tuple[UnitParams, ...] = ()
    """For members sharing repair crews: each member's unit (the chain is built from them)."""
    scoped: tuple[tuple[str, str], ...] = ()
    """Hard dependencies bound per replica to a domain kind: ``(dependency, "zone" | "region")``."""

    def zone_of(self, i: int) -> str | None:
        """The domain replica ``i`` is placed in, or ``None``."""
        return self.placement[i % len(self.placement)] if self.placement else None

    def hard_deps(self) -> list[str]:
        """Hard dependencies in series with the component (not its members, nor the ones bound
        per replica to a domain)."""
        bound = {d for d, _ in self.scoped}
        return [d for d, t in self.deps if t == "hard" and d not in bound]

    def requires(self) -> list[str]:
        """Everything the component's own structure function reads: members, dependencies bound
        per replica, then hard dependencies."""
        return [*self.members, *(d for d, _ in self.scoped), *self.hard_deps()]

    def deps_of(self, kind: str) -> list[str]:
        return [d for d, t in self.deps if t == kind]

    @property
    def active_passive(self) -> bool:
        return self.mode == "active-passive" and self.replicas >= 2

    @property
    def composite(self) -> bool:
        """Made of other components (``members``), with no units of its own."""
        return bool(self.members)

    @property
    def crew_pool(self) -> bool:
        """Members sharing repair crews: one Markov chain over the members' units."""
        return self.composite and self.crews is not None

    @property
    def grouped(self) -> bool:
        """Whether the replicas are one Markov group (:mod:`.groups`) rather than independent
        units: active-passive, fewer repair crews than replicas, or a common-cause beta."""
        if self.replicas < 2 or self.composite:
            return False
        shared_repair = self.crews is not None and self.crews < self.replicas
        return self.active_passive or shared_repair or self.beta > 0

    def group_params(self) -> GroupParams:
        """The replicas as a :class:`~buttress.assess.groups.GroupParams`."""
        u = self.unit
        standby = {"hot": u.lam, "warm": self.standby_factor * u.lam, "cold": 0.0}[self.standby]
        return GroupParams(
            mode="active-passive" if self.active_passive else "active-active",
            n=self.replicas,
            k=1 if self.active_passive else self.required,
            lam=u.lam,
            mu=u.mu,
            crews=min(self.crews or self.replicas, self.replicas),
            lam_standby=standby,
            tau=self.detection + self.switchover,
            coverage=self.coverage,
            recovery=0.0 if self.recovery is None else 1.0 / max(self.recovery, 1e-12),
            beta=self.beta,
            gamma=self.gamma,
            delta=self.delta,
        )

    def chain(self) -> Chain:
        """The group's Markov chain (cached per distinct parameters)."""
        if self.crew_pool:
            assert self.crews is not None
            return pool_chain(
                tuple((u.lam, u.mu) for u in self.member_units),
                self.required,
                self.crews,
                self.discipline,
            )
        return group_chain(self.group_params())

    def ap_params(self) -> ActivePassive:
        u = self.unit
        return ActivePassive(
            n=self.replicas,
            lam=u.lam,
            mu=u.mu,
            tau=self.detection + self.switchover,
            coverage=self.coverage,
            lam_standby=self.group_params().lam_standby,
        )


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    entry: str
    target: float
    criticality: str
    users: float
    rto: dict[str, float | None] = field(default_factory=dict)
    rpo: dict[str, float | None] = field(default_factory=dict)
    mission: float | None = None
    """Mission time in hours (from an all-up start), or ``None``."""
    mtd: float | None = None
    """Maximum tolerable downtime in hours (the business impact analysis), or ``None``."""
    wrt: float = 0.0
    """Work recovery time in hours: what follows the systems' recovery within the MTD."""


@dataclass(frozen=True, slots=True)
class System:
    domains: dict[str, Domain]
    components: dict[str, Component]
    journeys: dict[str, Journey]

    @classmethod
    def from_spec(cls, arch: ArchitectureSpec) -> System:
        d = arch.defaults
        domains = {
            n: Domain(n, s.kind, s.parent, _with_law(UnitParams.resolve(s, d), s.repair))
            for n, s in arch.domains.items()
        }
        comps = {}
        for n, c in arch.components.items():
            r = c.redundancy
            # A composite's "replicas" are its members; it never fails by itself.
            unit = (
                UnitParams(math.inf, 0.0, 0.0)
                if c.members
                else _with_law(UnitParams.resolve(c, d), c.repair)
            )
            if c.members:
                unit = replace(unit, detect=(c.detect if c.detect is not None else d.detect) / H)
            comps[n] = Component(
                name=n,
                kind=c.kind,
                replicas=len(c.members) or c.replicas,
                placement=tuple(c.placement),
                shared=tuple(c.shared),
                mode=r.mode,
                required=r.required,
                detection=r.detection / H,
                switchover=r.switchover / H,
                coverage=r.coverage,
                standby=r.standby,
                unit=unit,
                deps=tuple((k, e.type) for k, e in c.depends_on.items()),
                fallbacks=tuple((k, e.fallback) for k, e in c.depends_on.items() if e.fallback),
                rollback=None if c.rollback is None else c.rollback / H,
                data=c.data,
                standby_factor=0.1 if r.standby_factor is None else r.standby_factor,
                recovery=None if r.recovery is None else r.recovery / H,
                beta=r.beta,
                gamma=r.gamma,
                delta=r.delta,
                crews=c.repair.crews,
                discipline=c.repair.discipline,
                members=tuple(c.members),
                scoped=tuple((k, e.within) for k, e in c.depends_on.items() if e.within),
            )
        for n, comp in comps.items():
            if comp.crew_pool:
                units = tuple(comps[m].unit for m in comp.members)
                comps[n] = replace(comp, member_units=units)
        journeys = {
            n: Journey(
                n,
                j.entry,
                j.target,
                j.criticality,
                j.users,
                {k: (None if v is None else v / H) for k, v in j.rto.model_dump().items()},
                {k: (None if v is None else v / H) for k, v in j.rpo.model_dump().items()},
                None if j.mission is None else j.mission / H,
                None if j.bia is None else j.bia.mtd / H,
                0.0 if j.bia is None else j.bia.wrt / H,
            )
            for n, j in arch.journeys.items()
        }
        if not journeys:
            # No journey declared: assess every component nobody depends on as an entry point.
            called = {dep for c in comps.values() for dep in [*(d for d, _ in c.deps), *c.members]}
            for n in comps:
                if n not in called:
                    journeys[n] = Journey(n, n, 0.999, "medium", 1.0)
        return cls(domains, comps, journeys)

    def scope_of(self, zone: str | None, kind: str) -> str | None:
        """The domain of ``kind`` (zone or region) at or above ``zone``."""
        for d in self.chain(zone):
            if self.domains[d].kind == kind:
                return d
        return None

    def chain(self, domain: str | None) -> list[str]:
        """``domain`` and its ancestors (zone, region, ...)."""
        out: list[str] = []
        while domain is not None:
            out.append(domain)
            domain = self.domains[domain].parent
        return out

    def hard_closure(self, entry: str) -> list[str]:
        """``entry`` and every component it reaches through hard dependencies (breadth first)."""
        return self._reach(entry, Component.hard_deps)

    def structural_closure(self, entry: str) -> list[str]:
        """``entry`` and every component its availability reads: hard dependencies and members,
        transitively (a superset of :meth:`hard_closure`, the components in series)."""
        return self._reach(entry, Component.requires)

    def closure(self, entry: str) -> list[str]:
        """``entry`` and every component reachable through any dependency or membership."""
        return self._reach(entry, lambda c: [*(d for d, _ in c.deps), *c.members])

    def _reach(self, entry: str, edges: Callable[[Component], Iterable[str]]) -> list[str]:
        """``entry`` and every component reached from it through ``edges``, breadth first."""
        out = [entry]
        seen = {entry}
        for name in out:  # the list grows while it is walked: a queue without pops
            for dep in edges(self.components[name]):
                if dep not in seen:
                    seen.add(dep)
                    out.append(dep)
        return out

    def with_component(self, comp: Component) -> System:
        """A copy with ``comp`` replacing the component of the same name."""
        comps = dict(self.components)
        comps[comp.name] = comp
        return replace(self, components=comps)

    def with_domain(self, dom: Domain) -> System:
        doms = dict(self.domains)
        doms[dom.name] = dom
        return replace(self, domains=doms)
