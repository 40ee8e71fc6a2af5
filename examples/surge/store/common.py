"""What every storefront service shares: its settings from the lab's environment, health.

`buttress lab examples/surge` starts each service with these variables (docs/shop-lab.md):

    BUTTRESS_LAB_SPEC        the reliability.yaml with the policies, SLOs and modes
    BUTTRESS_LAB_POLICIES    "on" (Buttress's policies, the default) or "off" (plain calls);
                             this example has no "typical" baseline (experiments.runs: off, on)
    BUTTRESS_LAB_UPSTREAMS   JSON {service: [base URL of each instance, through the fault proxy]}
    BUTTRESS_LAB_STORE       the SQLite store the api records its SLIs into (optional)
    BUTTRESS_LAB_DATA        the service's own data directory (orders.db, the payments ledger)
    BUTTRESS_LAB_MODE_STATE  the degraded-mode file remediation switches (Buttress run)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buttress.lab.service import LabService

RUNS = ("on", "off")
HOME = Path(__file__).resolve().parent.parent  # examples/surge


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        return super().from_env(
            "surge",
            home=HOME,
            modes=RUNS,
            refused=(
                "the storefront has no typical baseline: experiments.runs in reliability.yaml"
            ),
            env=env,
        )
