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

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from buttress.spec import load_spec
from buttress.spec.document import ReliabilitySpec

RUNS = ("on", "off")


@dataclass(frozen=True)
class Settings:
    """The service's view of the lab's environment variables."""

    spec_path: Path
    mode: str
    upstreams: dict[str, list[str]]
    store: str | None
    data: Path
    mode_file: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        here = Path(__file__).resolve().parent.parent
        mode = env.get("BUTTRESS_LAB_POLICIES", "on").lower()
        if mode not in RUNS:
            raise SystemExit(
                f"BUTTRESS_LAB_POLICIES={mode!r}: the storefront runs with policies on or off "
                "(it has no typical baseline: experiments.runs in reliability.yaml)"
            )
        try:
            upstreams = json.loads(env.get("BUTTRESS_LAB_UPSTREAMS", "{}"))
        except json.JSONDecodeError as e:
            raise SystemExit(f"BUTTRESS_LAB_UPSTREAMS is not JSON: {e.msg}") from None
        data = Path(env.get("BUTTRESS_LAB_DATA", here / ".data"))
        data.mkdir(parents=True, exist_ok=True)
        return cls(
            spec_path=Path(env.get("BUTTRESS_LAB_SPEC", here / "reliability.yaml")),
            mode=mode,
            upstreams={str(k): [str(u) for u in v] for k, v in upstreams.items()},
            store=env.get("BUTTRESS_LAB_STORE") or None,
            data=data,
            mode_file=env.get("BUTTRESS_LAB_MODE_STATE") or None,
        )

    @property
    def on(self) -> bool:
        """Buttress's policies are on."""
        return self.mode == "on"

    @cached_property
    def spec(self) -> ReliabilitySpec:
        return load_spec(self.spec_path)

    def upstream(self, service: str) -> str:
        """The base URL of ``service`` (its one instance); a missing one stops the service."""
        urls = self.upstreams.get(service)
        if not urls:
            raise SystemExit(f"no upstream for {service!r} in BUTTRESS_LAB_UPSTREAMS")
        return urls[0]
