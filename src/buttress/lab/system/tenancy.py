"""``experiments.hypotheses.tenants``: what a multi-tenant system must guarantee its tenants.

.. code-block:: yaml

    hypotheses:
      tenants:
        placement: {service: gateway, path: /lab/placement}  # {tenants: {kind: [instances]}}
        noisy: [piedpiper-floods]       # bursts of one tenant: the others must not notice
        shard_failures: [backend-killed]  # one instance lost: only its tenants, only its share
        fairness: 0.99                  # Jain's index over the well-behaved tenants, at least

Each tenant is a request kind of ``load.requests``; the placement (which instances serve it) is
read from the system once the run is over, so the hypotheses judge what the system really did.
The figures and the hypotheses are computed by :mod:`buttress.lab.system.tenants`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from buttress.spec.types import FiniteFloat
from buttress.spec.validation import located

if TYPE_CHECKING:
    from .spec import ExperimentsSpec

__all__ = ["PlacementReadSpec", "RunName", "TenantsSpec", "all_runs", "check_tenants"]

SHARD_FAULTS = ("kill", "outage", "hang", "crash_loop")
"""Fault kinds that make one instance fail outright (what a shard failure is)."""


RunName = Literal["off", "typical", "on"]


def _buttress_run() -> list[RunName]:
    return ["on"]


def all_runs() -> list[RunName]:
    """Every run, in order (the default of ``experiments.runs``)."""
    return ["off", "typical", "on"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_FAIRNESS = (
    "The least Jain's fairness index of the well-behaved tenants' served shares, over the run and "
    "during each fault, in the runs of `judged` (none: printed, not judged)."
)


class PlacementReadSpec(_Strict):
    """Where the entry service tells which instances serve each tenant, read once the run is
    over: ``GET <service><path>`` answering ``{<field>: {request kind: [instance names]}}``."""

    service: str
    path: str = "/lab/placement"
    field: str = "tenants"

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must be a path starting with '/'")
        return v


class TenantsSpec(_Strict):
    """The tenant hypotheses (see :mod:`buttress.lab.system.tenants` for the figures)."""

    placement: PlacementReadSpec
    noisy: list[str] = Field(
        default_factory=list,
        description="Burst faults of one tenant (the burst's target): during each, every other "
        "tenant has at most `tolerance` bad requests, in the runs of `judged`.",
    )
    shard_failures: list[str] = Field(
        default_factory=list,
        description="Faults that make one instance fail (kill, outage, hang, crash_loop): in every "
        "run, the tenants it does not serve have at most `tolerance` bad requests during it, and "
        "those it serves at most their shard's share (1 / instances serving them) of theirs, "
        "plus binomial noise.",
    )
    fairness: FiniteFloat | None = Field(default=None, gt=0, le=1, description=_FAIRNESS)
    tolerance: int = Field(
        default=0, ge=0, description="Bad requests an untouched tenant may have (default 0)."
    )
    judged: list[RunName] = Field(
        default_factory=_buttress_run,
        description="Runs in which noisy isolation and fairness are judged (default: Buttress).",
    )


def check_tenants(exp: ExperimentsSpec) -> None:
    """Cross-checks of ``hypotheses.tenants`` against the system and the plan (called by
    :class:`~buttress.lab.system.spec.ExperimentsSpec`'s validator)."""
    spec = exp.hypotheses.tenants
    if spec is None:
        return
    where = ("hypotheses", "tenants")
    if spec.placement.service not in exp.system:
        known = ", ".join(sorted(exp.system))
        raise located(
            (*where, "placement", "service"),
            f"unknown service {spec.placement.service!r} ({known})",
        )
    faults = {f.name: f for f in exp.plan}
    known_faults = ", ".join(sorted(faults)) or "the plan is empty"
    for i, name in enumerate(spec.noisy):
        f = faults.get(name)
        if f is None:
            raise located((*where, "noisy", i), f"no fault named {name!r} ({known_faults})")
        if f.kind != "burst":
            raise located((*where, "noisy", i), f"{name!r} is a {f.kind}, not a burst")
    for i, name in enumerate(spec.shard_failures):
        f = faults.get(name)
        if f is None:
            raise located(
                (*where, "shard_failures", i), f"no fault named {name!r} ({known_faults})"
            )
        if f.kind not in SHARD_FAULTS:
            raise located(
                (*where, "shard_failures", i),
                f"{name!r} is a {f.kind}; a shard failure is one of {', '.join(SHARD_FAULTS)}",
            )
        if f.target in exp.system and exp.system[f.target].instances > 1:
            raise located(
                (*where, "shard_failures", i),
                f"{name!r} targets the whole service {f.target!r}: name one instance",
            )
