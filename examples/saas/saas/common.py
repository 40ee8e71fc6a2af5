"""What the gateway and the backends read from the lab's environment (see docs/examples/saas.md).

BUTTRESS_LAB_SPEC       the reliability.yaml the gateway reads its pipelines and SLOs from
BUTTRESS_LAB_POLICIES   "on" (Buttress's policies, the default) or "off" (plain calls); this
                        example has no "typical" run (its experiments.runs says so)
BUTTRESS_LAB_UPSTREAMS  JSON {service: [base URL of each instance, through the fault proxy]}
BUTTRESS_LAB_STORE      the SQLite store the gateway records its SLIs into (optional)
BUTTRESS_LAB_INSTANCE   this instance's name (backend-3, ...)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODES = ("on", "off")


@dataclass(frozen=True)
class Settings:
    """The service's view of the lab's environment variables."""

    spec_path: Path
    mode: str
    upstreams: dict[str, list[str]]
    store: str | None
    instance: str

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] = os.environ) -> Settings:
        here = Path(__file__).resolve().parent.parent
        mode = env.get("BUTTRESS_LAB_POLICIES", "on").lower()
        if mode not in MODES:
            raise SystemExit(
                f"BUTTRESS_LAB_POLICIES must be one of {', '.join(MODES)}, not {mode!r} "
                "(the saas example has no typical run)"
            )
        try:
            upstreams = json.loads(env.get("BUTTRESS_LAB_UPSTREAMS", "{}"))
        except json.JSONDecodeError as e:
            raise SystemExit(f"BUTTRESS_LAB_UPSTREAMS is not JSON: {e.msg}") from None
        return cls(
            spec_path=Path(env.get("BUTTRESS_LAB_SPEC", here / "reliability.yaml")),
            mode=mode,
            upstreams={str(k): [str(u) for u in v] for k, v in upstreams.items()},
            store=env.get("BUTTRESS_LAB_STORE") or None,
            instance=env.get("BUTTRESS_LAB_INSTANCE", service),
        )

    @property
    def policies(self) -> bool:
        """Buttress's policies are on."""
        return self.mode == "on"


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
