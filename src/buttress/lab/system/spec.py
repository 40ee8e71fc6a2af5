"""The ``experiments:`` section of ``reliability.yaml``: a real system, its load and a fault plan.

.. code-block:: yaml

    experiments:
      system:                     # the processes `buttress lab PATH` starts, in dependency order
        datastore: {app: "shop.datastore:app"}
        payments:  {app: "shop.payments:app", instances: 2}
        api:       {app: "shop.api:app", depends_on: [payments, datastore]}
      load:
        entry: api                # the service the load driver calls
        duration: 60s             # one run (the same plan runs twice: policies on, then off)
        quick_duration: 24s       # --quick: every time in the plan is scaled by 24/60
        timeout: 1s               # the client gives up after this long (a bad event)
        requests:
          checkout: {method: POST, path: /checkout, rate: 20, order: true}
          browse:   {method: GET, path: /browse, rate: 10, criticality: sheddable}
      plan:
        - {name: payments-latency, kind: latency, target: payments-1, at: 6s, duration: 10s,
           latency: 1500ms}
        - {name: payments-outage, kind: outage, target: payments, at: 20s, duration: 8s}
        - {name: instance-killed, kind: kill, target: payments-2, at: 32s, duration: 8s}
        - {name: overload, kind: burst, target: browse, at: 44s, duration: 5s, rate: 120}
      hypotheses:
        slos:
          checkout: {policies_on: held, policies_off: burned}
        nothing_lost: true

Instances are named after their service (``api``) or, with ``instances: n > 1``, ``payments-1`` ...
``payments-n``.  Every instance a service depends on is reached through its own fault-proxy route
of the same name, so a fault's ``target`` is an instance name or a service name (all its instances).

Fault kinds: ``latency`` (a latency toxic on the route's responses), ``outage`` (the route is
disabled: connections are refused), ``kill`` (the instance gets SIGKILL and is restarted when the
fault ends), ``burst`` (the request kind named by ``target`` arrives at ``rate`` per second), and
the process faults of self-healing (an instance as target): ``crash_loop`` (its next ``crashes``
starts exit at once), ``hang`` (SIGSTOP), ``leak`` (``leak_rate`` megabytes more every second);
and ``slow`` (an instance as target: its heavy work takes ``slowdown`` times as long, played by
the service from its control file; the process stays up, only its capacity shrinks).
With ``healing:`` the Buttress run's services are supervised by :mod:`buttress.supervise` and the
file's ``remediation:`` rules switch its ``modes:`` (see :mod:`buttress.lab.system.healing`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from buttress.spec.options import spec_model
from buttress.spec.sections import register_section
from buttress.spec.types import Duration, FiniteFloat, PositiveDuration
from buttress.spec.validation import located
from buttress.supervise.options import ChildOptions, SupervisorOptions

from .auditspec import AuditLogSpec, RecoverySpec, check_audit, check_recovery
from .drillspec import DrillSpec
from .expectations import DegradedExpectation, ShedFirstExpectation, check_expectations
from .tenancy import RunName, TenantsSpec, all_runs, check_tenants

__all__ = [
    "MODES",
    "MODE_NAMES",
    "AttemptsReadSpec",
    "DrillSpec",
    "EffectReadSpec",
    "ExperimentsSpec",
    "FaultSpec",
    "FinalReadSpec",
    "HealingSpec",
    "CONTROL_FAULTS",
    "INSTANCE_FAULTS",
    "PROCESS_FAULTS",
    "SupervisedExpectation",
    "HypothesesSpec",
    "LoadSpec",
    "RequestSpec",
    "SLOExpectation",
    "ServiceSpec",
    "instance_names",
]

MODES = ("off", "typical", "on")
"""The runs, in the order they run and are shown: no protection, what a team writes with the
popular libraries (the example's own code), and Buttress's policies."""
MODE_NAMES = {"off": "off", "typical": "typical", "on": "Buttress"}
"""How each run is called in tables, reports and ``--runs`` (``buttress`` is ``on``)."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*$")
_APP = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _absolute(v: str) -> str:
    if not v.startswith("/"):
        raise ValueError(f"{v!r} must be a path starting with '/'")
    return v


UrlPath = Annotated[str, AfterValidator(_absolute)]
"""A URL path: it starts with ``/``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _name(v: str, what: str) -> str:
    if not _NAME.fullmatch(v):
        raise ValueError(f"{v!r}: a {what} name uses lower-case letters, digits, '_' and '-'")
    return v


class ServiceSpec(_Strict):
    """One service of the system: an ASGI app run by uvicorn, ``instances`` times."""

    app: str = Field(
        description="The ASGI app as module:attribute, importable from the example's "
        "directory (uvicorn --app-dir)."
    )
    instances: int = Field(default=1, ge=1, le=8, description="Processes to run (default 1).")
    depends_on: list[str] = Field(
        default_factory=list,
        description="Services this one calls; each instance is reached through a fault proxy.",
    )
    ready: UrlPath = Field(
        default="/health/ready", description="The readiness path polled after start (200 = up)."
    )
    start_timeout: PositiveDuration = Field(
        default=20.0, description="Seconds to wait for readiness before giving up (default 20)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")

    @field_validator("app")
    @classmethod
    def _app(cls, v: str) -> str:
        if not _APP.fullmatch(v):
            raise ValueError(f"{v!r} must be module:attribute, e.g. shop.api:app")
        return v


class RequestSpec(_Strict):
    """One kind of request the load driver sends (open loop: arrivals do not wait for answers)."""

    method: Literal["GET", "POST"] = "GET"
    path: UrlPath = Field(description="The path on the entry service.")
    rate: FiniteFloat = Field(gt=0, le=1000, description="Requests per second (Poisson arrivals).")
    order: bool = Field(
        default=False,
        description="Each request places a new order (a unique id, recorded in the history the "
        "nothing-lost checker reads).",
    )
    criticality: Literal["sheddable", "low", "high", "critical"] | None = Field(
        default=None, description="Sent as X-Buttress-Criticality."
    )


class FinalReadSpec(_Strict):
    """Where the nothing-lost checker reads every stored order once the run is over (directly,
    not through the fault proxy): ``GET <service><path>`` answering ``{<field>: [ids]}``."""

    service: str
    path: str = "/orders"
    field: str = "ids"
    pending_field: str | None = Field(
        default=None,
        description="Field of the same answer listing the orders stored but left unfinished "
        "(reserve_pending, say): counted per run, not folded into good.",
    )


class EffectReadSpec(_Strict):
    """An effect of each order, read back once the run is over for the exactly-once check:
    ``GET <service><path>`` answering ``{<field>: {order id: times applied}}`` (for a service of
    several instances, the first one's answer: they share what they applied)."""

    name: str = Field(description="What the effect is called in the report (charged, reserved).")
    service: str
    path: str = "/lab/effects"
    field: str = "counts"


class AttemptsReadSpec(_Strict):
    """Where the entry service reports every attempt it sent to each dependency, read once the
    run is over: ``GET <service><path>`` answering ``{dependency: {unix second: attempts}}``.
    Gives the load amplification on each dependency (retries included)."""

    service: str
    path: str = "/lab/attempts"


class LoadSpec(_Strict):
    """Steady load on the entry service."""

    entry: str = Field(description="The service the driver calls (its first instance).")
    duration: PositiveDuration = Field(default=60.0, description="Length of one run (default 60s).")
    quick_duration: PositiveDuration = Field(
        default=24.0, description="Length of one run with --quick (default 24s)."
    )
    timeout: PositiveDuration = Field(
        default=1.0, description="The client's patience: a slower answer is a failure (1s)."
    )
    requests: dict[str, RequestSpec] = Field(min_length=1, description="Request kinds by name.")
    final_read: FinalReadSpec | None = Field(
        default=None, description="Where stored orders are read back (needed with order: true)."
    )
    attempts_read: AttemptsReadSpec | None = Field(
        default=None, description="Where the attempts sent to each dependency are read back."
    )
    effects: list[EffectReadSpec] = Field(
        default_factory=list,
        description="Effects every acknowledged order must have had once (reserved, charged).",
    )

    @model_validator(mode="after")
    def _quick(self) -> LoadSpec:
        if self.quick_duration > self.duration:
            raise ValueError(
                f"quick_duration ({self.quick_duration:g}s) must not exceed duration "
                f"({self.duration:g}s)"
            )
        return self


FaultKind = Literal[
    "latency", "outage", "kill", "burst", "crash_loop", "hang", "leak", "slow", "data_loss"
]
PROCESS_FAULTS = ("kill", "crash_loop", "hang", "leak")
"""Fault kinds that act on an instance's process (their target is an instance name)."""
CONTROL_FAULTS = ("crash_loop", "leak", "slow")
"""Fault kinds the instance plays itself, asked through its control file."""
INSTANCE_FAULTS = tuple(dict.fromkeys((*PROCESS_FAULTS, *CONTROL_FAULTS)))
"""Fault kinds whose target is an instance name (``data_loss`` names the drill's target)."""


class FaultSpec(_Strict):
    """One fault of the plan, from ``at`` to ``at + duration`` (seconds from the run's start)."""

    name: str
    kind: FaultKind
    target: str = Field(
        description="Instance or service (latency, outage, kill); request kind (burst); the "
        "drill's target (data_loss: SIGKILL, its database file deleted; restored from the "
        "newest backup when the fault ends)."
    )
    at: Duration
    duration: PositiveDuration
    latency: Duration = Field(default=0.0, description="latency: added to every response.")
    jitter: Duration = Field(default=0.0, description="latency: random extra, up to this.")
    rate: FiniteFloat | None = Field(
        default=None, gt=0, le=2000, description="burst: arrivals per second during the burst."
    )
    crashes: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="crash_loop: how many starts in a row exit at once (default 3), the running "
        "instance's exit included.",
    )
    leak_rate: FiniteFloat | None = Field(
        default=None, gt=0, le=64, description="leak: megabytes the instance leaks per second."
    )
    slowdown: FiniteFloat | None = Field(
        default=None,
        gt=1,
        le=1000,
        description="slow: how many times as long the instance's heavy work takes (a lost "
        "index, a cold cache); the service plays it (the shop: its catalogue query).",
    )

    @field_validator("name")
    @classmethod
    def _n(cls, v: str) -> str:
        return _name(v, "fault")

    @model_validator(mode="after")
    def _fields_match_kind(self) -> FaultSpec:
        if self.kind == "latency" and self.latency <= 0:
            raise ValueError("a latency fault needs latency > 0 (e.g. latency: 1500ms)")
        if self.kind != "latency" and (self.latency or self.jitter):
            raise ValueError(f"latency/jitter apply to latency faults, not {self.kind!r}")
        if self.kind == "burst" and self.rate is None:
            raise ValueError("a burst needs rate: (arrivals per second during the burst)")
        if self.kind != "burst" and self.rate is not None:
            raise ValueError(f"rate applies to burst faults, not {self.kind!r}")
        if self.kind != "crash_loop" and self.crashes is not None:
            raise ValueError(f"crashes applies to crash_loop faults, not {self.kind!r}")
        if self.kind == "leak" and self.leak_rate is None:
            raise ValueError("a leak needs leak_rate: (megabytes leaked per second)")
        if self.kind != "leak" and self.leak_rate is not None:
            raise ValueError(f"leak_rate applies to leak faults, not {self.kind!r}")
        if self.kind == "slow" and self.slowdown is None:
            raise ValueError("a slow fault needs slowdown: (how many times as long, e.g. 10)")
        if self.kind != "slow" and self.slowdown is not None:
            raise ValueError(f"slowdown applies to slow faults, not {self.kind!r}")
        return self


class SLOExpectation(_Strict):
    """What should happen to one SLO over a run: ``held`` (budget left), ``burned`` (none left)
    or ``any``."""

    policies_on: Literal["held", "burned", "any"] = "held"
    policies_off: Literal["held", "burned", "any"] = "any"
    typical: Literal["held", "burned", "any"] = "any"
    except_during: list[str] = Field(
        default_factory=list,
        description="Faults of the plan whose budget the verdict leaves out (say why in a comment: "
        "a crash of a single point of failure no client policy can hide).  The SLO table still "
        "shows the whole run; the hypothesis names what it left out.",
    )


class SupervisedExpectation(_Strict):
    """With supervision (the Buttress run), each fault named spends at most ``at_most`` of the
    budget it spends in the run without protection (``off``), for every SLO it hurt there."""

    faults: list[str] = Field(min_length=1, description="Faults of the plan to compare.")
    at_most: FiniteFloat = Field(
        default=0.25, gt=0, le=1, description="The largest share of the off run's budget."
    )


class HypothesesSpec(_Strict):
    """What the lab checks after both runs; any failure makes it exit with status 1."""

    slos: dict[str, SLOExpectation] = Field(
        default_factory=dict, description="SLO name -> expected verdict per run."
    )
    nothing_lost: bool = Field(
        default=True, description="No acknowledged order may be missing from the final read."
    )
    exactly_once: list[Literal["off", "typical", "on"]] = Field(
        default_factory=list,
        description="Runs in which every acknowledged order must have each of load.effects "
        "exactly once; in every run, none may have one twice.",
    )
    beats_typical: bool = Field(
        default=False,
        description="With the typical run: Buttress spends less of each SLO's budget than typical "
        "on every fault where the difference is more than noise, and puts less load on the "
        "failing dependency (attempts_read needed).",
    )
    supervised: SupervisedExpectation | None = Field(
        default=None,
        description="Faults on which supervision must spend at most a share of the budget the "
        "off run spends (healing: needed).",
    )
    # See buttress.lab.system.expectations.
    shed_first: ShedFirstExpectation | None = Field(
        default=None, description="With the policies, one request kind shed before another."
    )
    degraded: DegradedExpectation | None = Field(
        default=None, description="With the policies, remediation switched a mode on, off."
    )
    tenants: TenantsSpec | None = Field(
        default=None,
        description="A multi-tenant system's guarantees: noisy tenants isolated, a failed "
        "shard's errors limited to its tenants' share, fairness (see docs/lab.md).",
    )
    # See buttress.lab.system.auditspec.
    audit_log: AuditLogSpec | None = Field(
        default=None, description="Hash-chained audit logs read and verified after each run."
    )
    recovery: RecoverySpec | None = Field(
        default=None, description="Faults recovered from within the journey's RTO (lab time)."
    )


_ChildOptionsSpec = spec_model(ChildOptions, "LabChildOptionsSpec")
_SupervisorBase = spec_model(SupervisorOptions, "LabSupervisorOptionsSpec")


class BurnSignalSpec(_Strict):
    """The lab's checkout-burn signal for ``remediation:`` rules (``slo_burn``): the burn rate of
    each SLO over the last ``window`` seconds of the users' requests, active at ``rate`` or more.
    (The SLO evaluator's windows are minutes long; a lab run lasts one.)"""

    window: PositiveDuration = Field(default=3.0, description="Seconds of requests (3s).")
    rate: FiniteFloat = Field(
        default=14.4, gt=0, description="Burn rate at which the signal is active (14.4: a page)."
    )
    min_requests: int = Field(default=10, ge=1, description="Fewer requests: no signal.")


class HealingSpec(_SupervisorBase):  # type: ignore[misc,valid-type]
    """The Buttress run's self-healing: its services run under :mod:`buttress.supervise` (one
    supervisor with these options, a child per instance), and the file's ``remediation:`` rules
    act on the lab's ``slo_burn`` signal and switch its ``modes:``."""

    child: _ChildOptionsSpec = Field(  # type: ignore[valid-type]
        default_factory=_ChildOptionsSpec, description="Every instance's child options."
    )
    services: dict[str, _ChildOptionsSpec] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="Per service, the child options that differ from child: (only those given).",
    )
    liveness: UrlPath | None = Field(
        default="/health/live",
        description="The liveness path the supervisor checks (null: none, only exits count).",
    )
    burn: BurnSignalSpec = BurnSignalSpec()

    def child_options(self, service: str) -> dict[str, Any]:
        """The child options of ``service``'s instances: ``child:``, then what ``services:``
        gives for it."""
        values: dict[str, Any] = self.child.option_values()  # type: ignore[attr-defined]
        override: Any = self.services.get(service)
        if override is not None:
            given = override.option_values()
            values |= {k: given[k] for k in override.model_fields_set if k in given}
        return values


class ExperimentsSpec(_Strict):
    """Root of the ``experiments:`` section."""

    system: dict[str, ServiceSpec] = Field(min_length=1)
    runs: list[RunName] = Field(
        default_factory=all_runs,
        min_length=1,
        description="The runs `buttress lab PATH` makes when --runs is not given (default all "
        "three; an example without a typical baseline leaves it out).",
    )
    load: LoadSpec
    plan: list[FaultSpec] = Field(default_factory=list)
    hypotheses: HypothesesSpec = HypothesesSpec()
    drill: DrillSpec | None = Field(
        default=None, description="A disaster-recovery drill (buttress lab PATH --drill)."
    )
    healing: HealingSpec | None = Field(
        default=None,
        description="Supervision and remediation in the Buttress run (see docs/shop-lab.md).",
    )

    @field_validator("runs")
    @classmethod
    def _runs(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a run is named twice")
        return v

    @field_validator("system")
    @classmethod
    def _names(cls, v: dict[str, ServiceSpec]) -> dict[str, ServiceSpec]:
        for k in v:
            _name(k, "service")
        return v

    # Cross-references, checked when the file is validated (`buttress spec validate` too), so
    # that a file `spec validate` accepts is one `buttress lab` runs.

    @model_validator(mode="after")
    def _references(self) -> ExperimentsSpec:
        services = self.system
        for name, svc in services.items():
            for i, dep in enumerate(svc.depends_on):
                if dep not in services:
                    raise located(("system", name, "depends_on", i), f"unknown service {dep!r}")
                if dep == name:
                    raise located(
                        ("system", name, "depends_on", i), "a service cannot depend on itself"
                    )
        if self.healing is not None:
            for name in self.healing.services:
                if name not in services:
                    known = ", ".join(sorted(services))
                    raise located(
                        ("healing", "services", name), f"unknown service {name!r} ({known})"
                    )
        if self.load.entry not in services:
            raise located(("load", "entry"), f"unknown service {self.load.entry!r}")
        fr = self.load.final_read
        if fr is not None and fr.service not in services:
            raise located(("load", "final_read", "service"), f"unknown service {fr.service!r}")
        ar = self.load.attempts_read
        if ar is not None and ar.service not in services:
            raise located(("load", "attempts_read", "service"), f"unknown service {ar.service!r}")
        for i, effect in enumerate(self.load.effects):
            if effect.service not in services:
                raise located(
                    ("load", "effects", i, "service"), f"unknown service {effect.service!r}"
                )
        drill = self.drill
        if drill is not None:
            target = services.get(drill.target)
            if target is None:
                raise located(("drill", "target"), f"unknown service {drill.target!r}")
            if target.instances != 1:
                raise located(("drill", "target"), "a drill's target runs one instance")
        for i, f in enumerate(self.plan):
            if f.kind == "data_loss" and (drill is None or f.target != drill.target):
                raise located(
                    ("plan", i, "target"),
                    "data_loss needs a drill: section with this target (its file and backups)",
                )
        if self.hypotheses.exactly_once and not self.load.effects:
            raise located(
                ("hypotheses", "exactly_once"), "needs load.effects: the effects to count"
            )
        if (
            any(r.order for r in self.load.requests.values())
            and fr is None
            and self.hypotheses.nothing_lost
        ):
            raise located(
                ("load",), "requests place orders: add final_read: so they can be checked"
            )
        self._check_plan()
        check_tenants(self)
        check_audit(self)
        return self

    def _check_plan(self) -> None:
        services = self.system
        instances = {n for s, v in services.items() for n in instance_names(s, v)}
        reachable: set[str] = set()
        for name, svc in services.items():
            if any(name in s.depends_on for s in services.values()):
                reachable.update([name, *instance_names(name, svc)])
        seen: set[str] = set()
        for i, f in enumerate(self.plan):
            if f.name in seen:
                raise located(("plan", i, "name"), f"two faults named {f.name!r}")
            seen.add(f.name)
            if f.kind == "burst":
                if f.target not in self.load.requests:
                    known = ", ".join(sorted(self.load.requests))
                    raise located(
                        ("plan", i, "target"), f"unknown request kind {f.target!r} ({known})"
                    )
            elif f.kind in INSTANCE_FAULTS or f.kind == "data_loss":
                if f.target not in instances:
                    raise located(
                        ("plan", i, "target"),
                        f"unknown instance {f.target!r} (known: {', '.join(sorted(instances))})",
                    )
            elif f.target not in reachable:
                known = ", ".join(sorted(reachable)) or "none: no service has dependents"
                raise located(
                    ("plan", i, "target"),
                    f"{f.target!r} is not behind the fault proxy (known: {known})",
                )
            if f.at + f.duration > self.load.duration:
                raise located(
                    ("plan", i, "duration"), "the fault ends after the run (load.duration)"
                )

    def run_modes(self) -> tuple[str, ...]:
        """The runs of ``runs``, in the order the lab makes them (:data:`MODES`)."""
        return tuple(m for m in MODES if m in self.runs)

    def check_spec(self, root: Any) -> None:
        """Checks against the rest of the file (called by the root model): every SLO a
        hypothesis names is declared under ``slos:``."""
        slo_names = {getattr(s, "name", None) for s in getattr(root, "slos", None) or []}
        faults = {f.name for f in self.plan}
        for name, expect in self.hypotheses.slos.items():
            loc = ("experiments", "hypotheses", "slos", name)
            if name not in slo_names:
                raise located(loc, f"no SLO named {name!r} in slos:")
            for i, fault in enumerate(expect.except_during):
                if fault not in faults:
                    known = ", ".join(sorted(faults)) or "the plan is empty"
                    raise located((*loc, "except_during", i), f"no fault named {fault!r} ({known})")
        hyp = self.hypotheses
        check_recovery(self, root)
        check_expectations(
            hyp.shed_first, hyp.degraded, kinds=self.load.requests, healing=self.healing, root=root
        )
        supervised = hyp.supervised
        if supervised is not None:
            where = ("experiments", "hypotheses", "supervised")
            if self.healing is None:
                raise located(where, "needs experiments.healing: (the run under supervision)")
            for i, fault in enumerate(supervised.faults):
                if fault not in faults:
                    known = ", ".join(sorted(faults)) or "the plan is empty"
                    raise located((*where, "faults", i), f"no fault named {fault!r} ({known})")


def instance_names(name: str, service: ServiceSpec) -> list[str]:
    """``[name]`` for one instance, else ``[name-1, ..., name-n]``."""
    if service.instances == 1:
        return [name]
    return [f"{name}-{i}" for i in range(1, service.instances + 1)]


register_section(
    "experiments",
    ExperimentsSpec,
    description="A real system, its load and a fault plan (see docs/shop-lab.md).",
)
