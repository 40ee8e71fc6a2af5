"""What the gateway and the backends read from the lab's environment (see docs/examples/saas.md).

BUTTRESS_LAB_SPEC       the reliability.yaml the gateway reads its pipelines and SLOs from
BUTTRESS_LAB_POLICIES   "on" (Buttress's policies, the default) or "off" (plain calls); this
                        example has no "typical" run (its experiments.runs says so)
BUTTRESS_LAB_UPSTREAMS  JSON {service: [base URL of each instance, through the fault proxy]}
BUTTRESS_LAB_STORE      the SQLite store the gateway records its SLIs into (optional)
BUTTRESS_LAB_INSTANCE   this instance's name (backend-3, ...)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buttress.lab.service import LabService

MODES = ("on", "off")
HOME = Path(__file__).resolve().parent.parent  # examples/saas


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        return super().from_env(
            service, home=HOME, modes=MODES, refused="the saas example has no typical run", env=env
        )


def env_number(name: str, default: float, env: Mapping[str, str] = os.environ) -> float:
    """A positive number from the environment, or a message naming the variable."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    if not value > 0:
        raise SystemExit(f"{name} must be > 0, not {raw!r}")
    return value
