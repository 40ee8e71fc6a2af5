"""RTO/RPO verdicts: estimated recovery time and data loss per journey and disruption type.

For each component on the journey's hard path (recovery) or anywhere it reaches (data), and each
disruption type, the model gives the time until the journey works again and the data lost:

``instance`` (one replica or host lost)
    RTO: active-active with a spare replica (``n - k >= 1``): the detection time, while the load
    balancer drains it; active-passive: the expected ``c * (detection + switchover) +
    (1 - c) * MTTR`` (a failover that does not take waits for the repair); a single instance: its
    MTTR.
    RPO: replication ``sync`` 0, ``async`` its lag; no replica to fail over to: the backup interval.
``zone`` / ``region`` (every replica in one zone, or one region, lost)
    RTO: the worst domain of that kind: if enough replicas remain elsewhere, as for an instance;
    otherwise the domain's own MTTR (waiting for it to come back).  RPO: 0 / lag if a replica
    survives elsewhere, else the backup interval.
``deploy`` (a bad release of one component reaches every replica)
    RTO: the component's detection time plus its ``rollback`` time (MTTR when not given).
    RPO: corrupt writes replicate, so the backup interval for every datastore with data.

The journey's figure is the worst (largest) over its components; met when it is at most the
target.  A journey with no target for a disruption gets the estimate and no verdict.  With a
business impact analysis (``bia:``), each disruption also gets the MTD verdict: the estimated RTO
plus the work recovery time within the maximum tolerable downtime (NIST SP 800-34).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import DISRUPTIONS
from .system import Component, System

__all__ = ["RecoveryVerdict", "recovery_verdicts"]


@dataclass(frozen=True, slots=True)
class RecoveryVerdict:
    """Estimated RTO and RPO (hours) of one journey for one disruption type, with verdicts."""

    journey: str
    disruption: str
    rto: float
    rto_target: float | None
    rto_driver: str
    rpo: float
    rpo_target: float | None
    rpo_driver: str

    mtd: float | None = None
    wrt: float = 0.0

    @property
    def mtd_met(self) -> bool | None:
        """The estimated RTO plus the work recovery time within the maximum tolerable downtime
        (``None`` without a business impact analysis)."""
        return None if self.mtd is None else self.rto + self.wrt <= self.mtd + 1e-12

    @property
    def rto_met(self) -> bool | None:
        return None if self.rto_target is None else self.rto <= self.rto_target + 1e-12

    @property
    def rpo_met(self) -> bool | None:
        return None if self.rpo_target is None else self.rpo <= self.rpo_target + 1e-12


def _failover(c: Component) -> float:
    if c.active_passive:
        tau = c.detection + c.switchover
        return c.coverage * tau + (1.0 - c.coverage) * c.unit.mttr
    return c.unit.detect


def _rto_instance(c: Component) -> float:
    if c.replicas - c.required >= 1:
        return _failover(c)
    return c.unit.mttr


def _rto_domain(system: System, c: Component, kind: str) -> tuple[float, str]:
    worst = 0.0
    why = ""
    for d in system.domains.values():
        if d.kind != kind:
            continue
        lost = sum(1 for i in range(c.replicas) if d.name in system.chain(c.zone_of(i)))
        hit_shared = any(d.name in system.chain(s) for s in c.shared)
        if lost == 0 and not hit_shared:
            continue
        left = c.replicas - lost
        if hit_shared or left < c.required or (c.active_passive and left < 1):
            t, reason = d.unit.mttr, f"{c.name} waits for {kind} {d.name} to recover"
        else:
            t, reason = _failover(c), f"{c.name} fails over away from {d.name}"
        if t > worst:
            worst, why = t, reason
    return worst, why


def _rpo(system: System, c: Component, disruption: str) -> tuple[float, str]:
    data = c.data
    if data is None:
        return 0.0, ""
    backup = data.backup_interval / 3600.0
    if disruption == "deploy":
        return backup, f"{c.name} restores from backup (a bad release corrupts every replica)"
    if disruption == "instance":
        survivors = c.replicas - 1
    else:
        worst = 0
        for d in system.domains.values():
            if d.kind != disruption:
                continue
            lost = sum(1 for i in range(c.replicas) if d.name in system.chain(c.zone_of(i)))
            worst = max(worst, lost)
        survivors = c.replicas - worst
    if survivors >= 1 and data.replication != "none" and c.replicas > 1:
        if data.replication == "sync":
            return 0.0, f"{c.name} replicates synchronously"
        return data.lag / 3600.0, f"{c.name} loses its replication lag"
    return backup, f"{c.name} has no surviving replica and restores from backup"


def recovery_verdicts(system: System, journey: str) -> list[RecoveryVerdict]:
    """One verdict per disruption type (instance, zone, region, deploy) for ``journey``."""
    j = system.journeys[journey]
    path = [system.components[n] for n in system.hard_closure(j.entry)]
    reach = [system.components[n] for n in system.closure(j.entry)]
    out = []
    for kind in DISRUPTIONS:
        rto, rto_why = 0.0, ""
        for c in path:
            if kind == "instance":
                t = _rto_instance(c)
                why = f"{c.name} " + (
                    "runs a single instance and waits for its repair"
                    if c.replicas - c.required < 1
                    else ("fails over" if c.active_passive else "drains the failed replica")
                )
            elif kind == "deploy":
                t = c.unit.detect + (c.rollback if c.rollback is not None else c.unit.mttr)
                why = f"{c.name} detects and rolls back a bad release"
            else:
                t, why = _rto_domain(system, c, kind)
            if t > rto:
                rto, rto_why = t, why
        rpo, rpo_why = 0.0, ""
        for c in reach:
            t, why = _rpo(system, c, kind)
            if t > rpo:
                rpo, rpo_why = t, why
        out.append(
            RecoveryVerdict(
                journey=journey,
                disruption=kind,
                rto=rto,
                rto_target=j.rto.get(kind),
                rto_driver=rto_why,
                rpo=rpo,
                rpo_target=j.rpo.get(kind),
                rpo_driver=rpo_why,
                mtd=j.mtd,
                wrt=j.wrt,
            )
        )
    return out
