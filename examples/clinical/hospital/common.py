"""What every service of the hospital shares: the lab's settings, the seeded patient data and the
database's capacity model.

`buttress lab examples/clinical` starts each service with (docs/shop-lab.md):

    BUTTRESS_LAB_SPEC        the reliability.yaml (policies, SLOs, modes)
    BUTTRESS_LAB_POLICIES    "on" (Buttress's policies) or "off" (plain calls); no typical run
    BUTTRESS_LAB_UPSTREAMS   JSON {service: [base URL, through the fault proxy]}
    BUTTRESS_LAB_STORE       the SQLite store the api records its SLIs into (optional)
    BUTTRESS_LAB_DATA        the service's own data directory (ehr.db, the pager's ledger)
    BUTTRESS_LAB_MODE_STATE  the degraded-mode file remediation switches (Buttress run)

**Seeded data.**  Patients, their current medications and the interaction table are generated
from a fixed seed, the same in the primary and in the replica (a replica built from the same
nightly copy); what changes during a run (medications given, charted by the wards) reaches the
replica through the primary's change feed (``GET /changes``).

**Capacity.**  A database server saturates on its connection pool, not on a 200-row table: each
query holds one of ``CLINICAL_POOL`` connections (first come, first served) for its cost in
seconds (``CLINICAL_COST_*``, written in reliability.yaml), as in examples/surge.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buttress.lab.service import LabService

PATIENTS = 200
DRUGS = (
    "warfarin", "aspirin", "ibuprofen", "amoxicillin", "metformin", "lisinopril", "simvastatin",
    "clarithromycin", "ondansetron", "morphine", "paracetamol", "heparin",
)  # fmt: skip
# Pairs flagged as interacting (a small excerpt of what a drug-interaction knowledge base holds).
INTERACTIONS = {
    frozenset(("warfarin", "aspirin")): "major: bleeding risk",
    frozenset(("warfarin", "ibuprofen")): "major: bleeding risk",
    frozenset(("warfarin", "clarithromycin")): "major: raised INR",
    frozenset(("simvastatin", "clarithromycin")): "contraindicated: myopathy",
    frozenset(("heparin", "aspirin")): "major: bleeding risk",
    frozenset(("lisinopril", "ibuprofen")): "moderate: renal function",
    frozenset(("morphine", "ondansetron")): "minor: QT interval",
}


def mrn(n: int) -> str:
    """The medical record number of patient ``n`` (0 <= n < PATIENTS)."""
    return f"mrn-{n % PATIENTS:04d}"


def seeded_medications(number: str) -> list[str]:
    """Patient ``number``'s medications at the start of a run (two, fixed by the number)."""
    n = int(number.rsplit("-", 1)[-1])
    return [DRUGS[n % len(DRUGS)], DRUGS[(n * 7 + 3) % len(DRUGS)]]


def interactions(medications: list[str], drug: str) -> list[dict[str, str]]:
    """The interactions of ``drug`` with each of ``medications``."""
    out = []
    for current in sorted(set(medications)):
        found = INTERACTIONS.get(frozenset((current, drug)))
        if found is not None and current != drug:
            out.append({"with": current, "severity": found})
    return out


class Pool:
    """A database's connection pool as the lab models it: ``size`` queries at once, FIFO."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._sem: asyncio.Semaphore | None = None

    async def query(self, cost: float) -> None:
        if self._sem is None:  # created on the serving loop
            self._sem = asyncio.Semaphore(self.size)
        async with self._sem:
            await asyncio.sleep(cost)


def cost(name: str, default: float) -> float:
    """``CLINICAL_COST_<NAME>`` seconds (reliability.yaml), else ``default``."""
    return float(os.environ.get(f"CLINICAL_COST_{name.upper()}", str(default)))


HOME = Path(__file__).resolve().parent.parent  # examples/clinical


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        return super().from_env(
            "clinical",
            home=HOME,
            modes=("on", "off"),
            refused=(
                "the hospital has no typical baseline: "
                "experiments.runs in examples/clinical/reliability.yaml"
            ),
            env=env,
        )
