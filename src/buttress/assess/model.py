"""The ``architecture:`` section of ``reliability.yaml``: components, failure domains, journeys.

.. code-block:: yaml

    architecture:
      defaults: {mttr: 1h, detect: 5m}
      domains:
        us-east:  {kind: region, mtbf: 8760h, mttr: 4h}
        zone-a:   {kind: zone, parent: us-east, mtbf: 4380h, mttr: 1h}
        dns:      {kind: shared, availability: 0.99999}
      components:
        web:
          replicas: 3
          placement: [zone-a, zone-b, zone-c]     # replica i goes to placement[i % len]
          mtbf: 720h
          mttr: 20m                                # includes detection time
          detect: 2m
          redundancy: {mode: active-active, required: 2}
          shared: [dns]                            # shared-fate domains of the whole component
          depends_on: {api: hard, recs: soft, events: async}
        db:
          kind: datastore
          replicas: 2
          placement: [zone-a, zone-b]
          availability: 0.999
          redundancy: {mode: active-passive, detection: 30s, switchover: 1m, coverage: 0.98,
                       recovery: 15m, standby: warm, standby_factor: 0.2, beta: 0.05}
          repair: {crews: 1}                       # one crew for both units
          data: {replication: async, lag: 2s, backup_interval: 1h}
      journeys:
        checkout:
          entry: web
          target: 0.9995
          criticality: high
          rto: {instance: 1m, zone: 5m, region: 1h, deploy: 15m}
          rpo: {instance: 0s, zone: 5s, region: 5m, deploy: 1h}

Units of time: durations as in the rest of the spec (``30s``, ``1h30m``, plain numbers are seconds).
Per-unit failure behaviour is given either as ``availability`` (then ``mttr`` defaults to
``defaults.mttr``, one hour, and ``mtbf = mttr * A / (1 - A)``) or as ``mtbf`` and ``mttr``.

Field checks (ranges, negative times, unknown keys) are pydantic's and point at the exact field.
Cross-references (unknown components or domains, ``required`` greater than ``replicas``, cycles
among hard dependencies, parent cycles among domains) are found by :func:`architecture_problems`
and raised from :class:`ArchitectureSpec`'s model validator as ordinary pydantic errors, each with
the location of the offending node (``components.db.depends_on.web``).  Pydantic prefixes that
location with wherever the section sits, so :func:`buttress.spec.validation.validate` turns each of
them into ``file:line:column: architecture.components.db.depends_on.web: ...`` whichever loader
read the file: ``buttress assess`` (:func:`load_architecture`), ``buttress spec validate`` and every
other command that loads ``reliability.yaml`` (:func:`buttress.spec.load_spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from buttress.errors import SpecError
from buttress.spec.sections import register_section
from buttress.spec.source import Document, load_yaml
from buttress.spec.types import Duration, PositiveDuration, PositiveShare, Share
from buttress.spec.validation import validate

from .model_checks import DISRUPTIONS, Loc, architecture_problems, bia_problems

__all__ = [
    "ArchitectureSpec",
    "BIASpec",
    "ComponentSpec",
    "DataSpec",
    "DefaultsSpec",
    "DependencySpec",
    "DomainSpec",
    "JourneySpec",
    "RedundancySpec",
    "RepairLawSpec",
    "RepairSpec",
    "ScheduleSpec",
    "UncertainSpec",
    "architecture_problems",
    "bia_problems",
    "check_architecture",
    "load_architecture",
    "DISRUPTIONS",
]

ErrorFactory = Callable[[Loc, str], Exception]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UncertainSpec(_Strict):
    """Ranges ``[low, high]`` for a unit's figures, sampled (log-uniformly by default; an
    availability through its unavailability) to put an interval on every result."""

    availability: tuple[PositiveShare, PositiveShare] | None = None
    mtbf: tuple[PositiveDuration, PositiveDuration] | None = None
    mttr: tuple[Duration, Duration] | None = None
    distribution: Literal["loguniform", "lognormal", "uniform"] = Field(
        default="loguniform",
        description="How the ranges are drawn: log-uniformly, uniformly, or lognormal with the "
        "range as its 5th to 95th percentile (an error factor).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> UncertainSpec:
        for name in ("availability", "mtbf", "mttr"):
            pair = getattr(self, name)
            if pair is not None and pair[0] > pair[1]:
                raise ValueError(
                    f"{name}: the low end {pair[0]:g} exceeds the high end {pair[1]:g}"
                )
        if self.availability is not None and self.mtbf is not None:
            raise ValueError("give a range for either availability or mtbf, not both")
        return self


class ScheduleSpec(_Strict):
    """Deterministic failures and repairs: the unit fails after every ``every`` of *operating*
    time (it does not age while the journey it serves is down) and is repaired in ``repair``."""

    every: PositiveDuration = Field(description="Operating time between failures.")
    repair: Duration = Field(description="Time to repair, fixed.")
    first: Duration | None = Field(
        default=None, description="Operating time before the first failure (default: every)."
    )


class ReliabilityFields(_Strict):
    """Failure behaviour of one unit: ``availability`` or ``mtbf``/``mttr``, plus detection time."""

    availability: PositiveShare | None = Field(
        default=None, description="Steady-state availability of one unit, in (0, 1]."
    )
    mtbf: PositiveDuration | None = Field(default=None, description="Mean time between failures.")
    mttr: Duration | None = Field(
        default=None,
        description="Mean time to restore, detection included (default defaults.mttr).",
    )
    detect: Duration | None = Field(
        default=None,
        description="Part of mttr spent detecting the failure (default defaults.detect).",
    )
    uncertain: UncertainSpec | None = Field(
        default=None,
        description="Ranges for availability, mtbf or mttr: the report adds an interval on every "
        "journey's availability, by sampling (a figure given only as a range takes its "
        "geometric middle as the nominal value).",
    )

    schedule: ScheduleSpec | None = Field(
        default=None,
        description="Fixed failure and repair times instead of random ones (see docs/assess.md).",
    )

    @model_validator(mode="after")
    def _one_way(self) -> ReliabilityFields:
        if self.schedule is not None:
            for name in ("availability", "mtbf", "mttr", "uncertain"):
                if getattr(self, name) is not None:
                    raise ValueError(f"a schedule fixes failures and repairs: drop {name}")
        if self.availability is not None and self.mtbf is not None:
            raise ValueError("give either availability or mtbf (with mttr), not both")
        u = self.uncertain
        if u is not None and (
            (u.availability is not None and self.mtbf is not None)
            or (u.mtbf is not None and self.availability is not None)
        ):
            raise ValueError("a range must be for the figure given (availability or mtbf)")
        return self


class DefaultsSpec(_Strict):
    """Defaults for units that leave fields out."""

    mttr: Duration = Field(default=3600.0, description="MTTR when only availability is given (1h).")
    detect: Duration = Field(default=300.0, description="Detection time when not given (5m).")
    availability: PositiveShare = Field(
        default=0.999, description="Unit availability when neither it nor mtbf is given."
    )


class RepairLawSpec(_Strict):
    """How long repairs take around their mean (``mttr``), for the simulation."""

    distribution: Literal["exponential", "deterministic", "weibull", "lognormal"] = Field(
        default="exponential",
        description="Repair-time distribution; the exact figures depend only on its mean.",
    )
    shape: float | None = Field(
        default=None,
        gt=0,
        description="Weibull shape k, or lognormal sigma (required for those two).",
    )

    @model_validator(mode="after")
    def _shape_fits(self) -> RepairLawSpec:
        needs = self.distribution in ("weibull", "lognormal")
        if needs and self.shape is None:
            raise ValueError(f"a {self.distribution} repair needs a shape")
        if not needs and self.shape is not None:
            raise ValueError(f"an {self.distribution} repair takes no shape")
        return self


class RepairSpec(RepairLawSpec):
    """Repair resources of a component's replicas, and the repair-time distribution."""

    crews: int | None = Field(
        default=None,
        ge=1,
        description="Repair crews shared by the replicas, or by the members of a component with "
        "members (default: one per unit, i.e. independent repair); one crew repairs one unit "
        "at a time.",
    )
    discipline: Literal["fifo", "priority"] = Field(
        default="fifo",
        description="Which failed unit a free crew takes: the first failed (fifo), or the first "
        "in members order, preempting (priority).  Identical replicas give the same figures "
        "either way.",
    )


class DomainSpec(ReliabilityFields):
    """A failure domain: a zone, a region or a shared-fate dependency (DNS, identity, deploys)."""

    kind: Literal["zone", "region", "shared"] = "zone"
    parent: str | None = Field(default=None, description="Enclosing domain (a zone's region).")
    repair: RepairLawSpec = Field(default_factory=RepairLawSpec)
    description: str = ""


class RedundancySpec(_Strict):
    """How the replicas of a component back each other up.

    ``active-active``: all replicas serve; the component is up while at least ``required`` (k) of
    its ``replicas`` (n) are up (k-of-n).  ``active-passive``: one active, the others on standby;
    when the active fails the failure is detected and switched over (``detection + switchover``,
    down meanwhile) with probability ``coverage``, otherwise the component stays down until a
    repair.
    """

    mode: Literal["active-active", "active-passive"] = "active-active"
    required: int = Field(default=1, ge=1, description="k of k-of-n (active-active).")
    detection: Duration = Field(
        default=30.0, description="Failover detection time (active-passive)."
    )
    switchover: Duration = Field(default=60.0, description="Switchover time (active-passive).")
    coverage: Share = Field(
        default=1.0, description="Probability that a failover succeeds (active-passive)."
    )
    standby: Literal["hot", "warm", "cold"] = Field(
        default="hot",
        description="hot standbys fail like the active unit, warm ones at standby_factor of its "
        "rate, cold ones do not fail idle (active-passive).",
    )
    standby_factor: Share | None = Field(
        default=None,
        description="A warm standby's failure rate as a share of the active's (default 0.1).",
    )
    recovery: PositiveDuration | None = Field(
        default=None,
        description="Mean time to restore service after a failover that did not take (the manual "
        "or reboot path); default: wait for the failed unit's repair (active-passive).",
    )
    beta: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Beta factor: the share of a unit's failures that fail every unit of the "
        "group at once (common cause), in [0, 1).",
    )
    gamma: Share | None = Field(
        default=None,
        description="Multiple Greek letter: of the common-cause failures, the share that fail "
        "at least three units (the rest fail exactly two); active-active, 3 or 4 replicas.",
    )
    delta: Share | None = Field(
        default=None,
        description="Multiple Greek letter: of those failing at least three, the share that fail "
        "four (4 replicas).",
    )


class DependencySpec(_Strict):
    """An edge: ``hard`` (the caller fails), ``soft`` (the caller degrades) or ``async``."""

    type: Literal["hard", "soft", "async"] = "hard"
    fallback: str | None = Field(
        default=None, description="What the caller does without it (soft)."
    )
    within: Literal["zone", "region"] | None = Field(
        default=None,
        description="Bind each replica to the dependency's replicas in its own zone or region "
        "(a region's app uses that region's database) instead of the dependency as a whole.",
    )


class DataSpec(_Strict):
    """Data durability of a datastore, for RPO."""

    replication: Literal["none", "sync", "async"] = "async"
    lag: Duration = Field(default=1.0, description="Replication lag (async).")
    backup_interval: Duration = Field(
        default=86400.0, description="Time between restorable backups."
    )
    restore: Duration | None = Field(default=None, description="Time to restore from backup.")


class ComponentSpec(ReliabilityFields):
    """A service, datastore, queue or external dependency."""

    kind: Literal["service", "datastore", "queue", "external"] = "service"
    replicas: int = Field(default=1, ge=1, le=64)
    placement: list[str] = Field(
        default_factory=list, description="Domains (zones) replica i is placed in, round-robin."
    )
    shared: list[str] = Field(
        default_factory=list, description="Shared-fate domains the whole component depends on."
    )
    members: list[str] = Field(
        default_factory=list,
        description='Different components backing each other up ("any of [A, B]", or k-of-n '
        "with redundancy.required): this component is up while that many of them are, each with "
        "its own dependencies; it has no units of its own.",
    )
    redundancy: RedundancySpec = Field(default_factory=RedundancySpec)
    repair: RepairSpec = Field(default_factory=RepairSpec)
    depends_on: dict[str, DependencySpec] = Field(default_factory=dict)
    rollback: Duration | None = Field(default=None, description="Time to roll back a bad deploy.")
    data: DataSpec | None = None
    description: str = ""

    @field_validator("placement", "shared", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("depends_on", mode="before")
    @classmethod
    def _edges(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {name: {"type": "hard"} for name in v}
        if isinstance(v, dict):
            return {k: ({"type": e} if isinstance(e, str) else e) for k, e in v.items()}
        return v


class TargetsSpec(_Strict):
    """Recovery targets per disruption type."""

    instance: Duration | None = None
    zone: Duration | None = None
    region: Duration | None = None
    deploy: Duration | None = None


class BIASpec(_Strict):
    """The business impact analysis of one function (NIST SP 800-34 Rev. 1, section 3.2): how long
    its outage can be tolerated, and the work that follows the systems' recovery."""

    mtd: PositiveDuration = Field(
        description="Maximum tolerable downtime: the longest the business function may be out "
        "before the harm is unacceptable (systems' recovery and work recovery together)."
    )
    wrt: Duration = Field(
        default=0.0,
        description="Work recovery time: after the systems are back, the time to verify them and "
        "catch up on the work of the outage.  RTO + WRT must not exceed MTD.",
    )
    impact: Literal["low", "moderate", "high"] = Field(
        default="moderate",
        description="The function's impact level (FIPS 199: low, moderate, high).",
    )


class JourneySpec(_Strict):
    """A user journey: an entry component, an availability target and recovery targets."""

    entry: str
    target: float = Field(default=0.999, gt=0, lt=1, description="Availability target (SLO).")
    criticality: Literal["low", "medium", "high", "critical"] = "medium"
    users: PositiveShare = Field(default=1.0, description="Share of users this journey serves.")
    rto: TargetsSpec = Field(default_factory=TargetsSpec)
    rpo: TargetsSpec = Field(default_factory=TargetsSpec)
    mission: PositiveDuration | None = Field(
        default=None,
        description="Mission time T from an all-up start: the report adds A(T), the mean "
        "availability over [0, T] and (simulated) the chance of no outage in [0, T].",
    )
    bia: BIASpec | None = Field(
        default=None,
        description="Business impact analysis: maximum tolerable downtime, work recovery time "
        "and impact level; every RTO target plus the WRT must fit in the MTD, and the report "
        "checks the estimated recovery against it.",
    )
    description: str = ""


class ArchitectureSpec(_Strict):
    """Root of the ``architecture:`` section."""

    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    domains: dict[str, DomainSpec] = Field(default_factory=dict)
    components: dict[str, ComponentSpec] = Field(min_length=1)
    journeys: dict[str, JourneySpec] = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _cross_references(
        cls, data: Any, handler: ModelWrapValidatorHandler[ArchitectureSpec]
    ) -> ArchitectureSpec:
        """Run :func:`architecture_problems` once the fields are valid; report every problem as a
        pydantic error located at the offending node (so loaders can name its line)."""
        arch = handler(data)
        problems = architecture_problems(arch)
        if problems:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    {
                        "type": PydanticCustomError("architecture", "{message}", {"message": msg}),
                        "loc": _raw_loc(data, loc),
                        "input": data,
                    }
                    for loc, msg in problems
                ],
            )
        return arch


def _raw_loc(data: Any, loc: Loc) -> Loc:
    """``loc`` as it addresses the raw input: a dependency given in list form (``depends_on:
    [db, cache]``) is addressed by its index, so the error points at its own line."""
    out: list[str | int] = []
    cur = data
    for part in loc:
        if isinstance(cur, list) and isinstance(part, str) and part in cur:
            part = cur.index(part)
        out.append(part)
        present = (isinstance(cur, dict) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        )
        cur = cur[part] if present else None
    return tuple(out)


def check_architecture(arch: ArchitectureSpec, error: ErrorFactory) -> None:
    """Raise ``error(loc, message)`` for the first problem :func:`architecture_problems` finds
    (``loc`` relative to the section); return quietly when there is none."""
    problems = architecture_problems(arch)
    if problems:
        loc, message = problems[0]
        raise error(loc, message)


def load_architecture(path: str | Path) -> tuple[ArchitectureSpec, Document]:
    """Read the ``architecture:`` section of the YAML file at ``path``.

    Every problem raises :class:`~buttress.errors.SpecError` naming the file, line, column and
    field, including the cross-reference checks of :func:`architecture_problems` (all of them at
    once, the first in the message head).
    """
    doc = load_yaml(path)
    doc.refuse_empty("a mapping with an 'architecture:' section")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping with an 'architecture:' section")
    if "architecture" not in doc.data:
        raise SpecError("no 'architecture:' section to assess", file=doc.file, line=1)
    if not isinstance(doc.data["architecture"], dict):
        raise doc.error(("architecture",), "must be a mapping (components:, domains:, journeys:)")
    arch = validate(ArchitectureSpec, doc, ("architecture",))
    return arch, doc


register_section(
    "architecture",
    ArchitectureSpec,
    description="Components, failure domains and journeys (see docs/assess.md).",
)
