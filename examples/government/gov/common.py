"""What the portal and the two sites read from the lab's environment (docs/examples/government.md).

BUTTRESS_LAB_SPEC       the reliability.yaml the portal reads its pipelines and SLOs from
BUTTRESS_LAB_POLICIES   "on" (Buttress's policies, the default) or "off" (plain calls); this
                        example has no "typical" run (its experiments.runs says so)
BUTTRESS_LAB_UPSTREAMS  JSON {service: [base URL of each instance, through the fault proxy]}
BUTTRESS_LAB_STORE      the SQLite store the portal records its SLIs into (optional)
BUTTRESS_LAB_DATA       the site's own data directory (site.db: its audit log and claims)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buttress.lab.service import LabService

MODES = ("on", "off")
HOME = Path(__file__).resolve().parent.parent  # examples/government


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        return super().from_env(
            "government",
            home=HOME,
            modes=MODES,
            refused="the government example has no typical run",
            env=env,
        )


def env_seconds(name: str, default: float, env: Mapping[str, str] = os.environ) -> float:
    """A positive number of seconds from the environment, or a message naming the variable."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise SystemExit(f"{name} must be > 0, not {raw!r}")
    return value
