"""The models of ``experiments.hypotheses.audit_log`` and ``.recovery`` and their cross-checks;
the reads, figures and hypotheses are :mod:`buttress.lab.system.audit`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from buttress.spec.types import FiniteFloat
from buttress.spec.validation import located

from .tenancy import RunName, all_runs

if TYPE_CHECKING:
    from .spec import ExperimentsSpec

__all__ = [
    "AuditLogSpec",
    "ChainReadSpec",
    "RecoverySpec",
    "check_audit",
    "check_recovery",
    "recovery_journey",
]

Disruption = Literal["instance", "zone", "region", "deploy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _buttress_run() -> list[RunName]:
    return ["on"]


class ChainReadSpec(_Strict):
    """One copy of a hash-chained log: ``GET <service><path>`` answering ``{<field>: [...]}``."""

    service: str
    path: str = Field(default="/audit", pattern=r"^/", description="A path starting with '/'.")
    field: str = "records"


class AuditLogSpec(_Strict):
    """Every copy of the log verifies, and all copies hold the same chain."""

    reads: list[ChainReadSpec] = Field(min_length=1, description="The copies of the log.")
    runs: list[RunName] = Field(
        default_factory=all_runs, description="Runs in which it is judged (default: every run)."
    )


class RecoverySpec(_Strict):
    """Faults recovered from within the journey's RTO for their disruption, in lab time."""

    faults: dict[str, Disruption] = Field(
        min_length=1, description="Fault of the plan -> its disruption type (region, instance...)."
    )
    journey: str | None = Field(
        default=None, description="Whose RTO (default: the only journey of architecture:)."
    )
    kinds: list[str] = Field(
        default_factory=list,
        description="Request kinds whose first good answer ends the outage (default: the "
        "order kinds).",
    )
    compression: FiniteFloat = Field(
        default=60.0, gt=0, description="Lab time runs this many times faster (default 60)."
    )
    runs: list[RunName] = Field(
        default_factory=_buttress_run, description="Runs in which it is judged (default: on)."
    )


def check_audit(exp: ExperimentsSpec) -> None:
    """Cross-checks against the system, the plan and the request kinds (called by
    :class:`~buttress.lab.system.spec.ExperimentsSpec`'s validator)."""
    hyp = exp.hypotheses
    if hyp.audit_log is not None:
        for i, read in enumerate(hyp.audit_log.reads):
            if read.service not in exp.system:
                known = ", ".join(sorted(exp.system))
                raise located(
                    ("hypotheses", "audit_log", "reads", i, "service"),
                    f"unknown service {read.service!r} ({known})",
                )
    rec = hyp.recovery
    if rec is None:
        return
    faults = {f.name for f in exp.plan}
    for name in rec.faults:
        if name not in faults:
            known = ", ".join(sorted(faults)) or "the plan is empty"
            raise located(
                ("hypotheses", "recovery", "faults", name), f"no fault named {name!r} ({known})"
            )
    for i, kind in enumerate(rec.kinds):
        if kind not in exp.load.requests:
            known = ", ".join(sorted(exp.load.requests))
            raise located(
                ("hypotheses", "recovery", "kinds", i), f"unknown request kind {kind!r} ({known})"
            )
    if not rec.kinds and not any(r.order for r in exp.load.requests.values()):
        raise located(("hypotheses", "recovery", "kinds"), "name the kinds: no kind places orders")


def recovery_journey(rec: RecoverySpec, root: Any) -> tuple[str, Any]:
    journeys = getattr(getattr(root, "architecture", None), "journeys", None) or {}
    where = ("experiments", "hypotheses", "recovery", "journey")
    if rec.journey is None:
        if len(journeys) != 1:
            names = ", ".join(sorted(journeys)) or "none: add an architecture: section"
            raise located(where, f"name the journey whose RTO applies ({names})")
        name = next(iter(journeys))
    else:
        name = rec.journey
    if name not in journeys:
        names = ", ".join(sorted(journeys)) or "none: add an architecture: section"
        raise located(where, f"no journey named {name!r} ({names})")
    return name, journeys[name]


def check_recovery(exp: ExperimentsSpec, root: Any) -> None:
    """The journey exists and declares an RTO for every disruption named (called by
    :meth:`~buttress.lab.system.spec.ExperimentsSpec.check_spec`)."""
    rec = exp.hypotheses.recovery
    if rec is None:
        return
    name, journey = recovery_journey(rec, root)
    for fault, disruption in rec.faults.items():
        if getattr(journey.rto, disruption) is None:
            raise located(
                ("experiments", "hypotheses", "recovery", "faults", fault),
                f"journey {name!r} declares no RTO for {disruption!r} (architecture.journeys."
                f"{name}.rto.{disruption})",
            )
