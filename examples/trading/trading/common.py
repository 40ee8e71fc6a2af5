"""What every trading service reads from the lab's environment, and the skewed clock of a site.

`buttress lab examples/trading` starts each service with these variables (docs/shop-lab.md):

    BUTTRESS_LAB_SPEC        the reliability.yaml with the policies, SLOs and modes
    BUTTRESS_LAB_POLICIES    "on" (Buttress's policies, the default) or "off" (plain calls); this
                             example has no "typical" run (experiments.runs: off, on)
    BUTTRESS_LAB_UPSTREAMS   JSON {service: [base URL of each instance, through the fault proxy]}
    BUTTRESS_LAB_STORE       the SQLite store the desk records its SLIs into (optional)
    BUTTRESS_LAB_DATA        the instance's own data directory (the venue's book is beside it)
    BUTTRESS_LAB_INSTANCE    this instance's name (gateway-1, venue-2, ...)
    BUTTRESS_LAB_MODE_STATE  the degraded-mode file remediation switches (the kill switch)

and, set in reliability.yaml:

    TRADING_CLOCK_SKEW       seconds each instance's wall clock is off, in instance order
                             ("0,2.5": gateway-1 on time, gateway-2 2.5 s ahead)
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from buttress.lab.service import LabService

RUNS = ("on", "off")
HOME = Path(__file__).resolve().parent.parent  # examples/trading


def env_number(name: str, default: float, env: Mapping[str, str] = os.environ) -> float:
    """A number from the environment, or a message naming the variable."""
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value):
        raise SystemExit(f"{name} must be a finite number, not {raw!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings(LabService):
    """The service's view of the lab's environment variables (:mod:`buttress.lab.service`)."""

    skew: float = 0.0

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] = os.environ) -> Settings:  # type: ignore[override]
        settings = super().from_env(
            service,
            home=HOME,
            modes=RUNS,
            refused=(
                "the trading platform has no typical baseline: experiments.runs in reliability.yaml"
            ),
            env=env,
            data=HOME / ".data" / service,
        )
        return settings._skewed(env.get("TRADING_CLOCK_SKEW", ""))

    def _skewed(self, raw: str) -> Settings:
        """With this instance's entry of ``TRADING_CLOCK_SKEW`` (none: 0)."""
        skews = [x.strip() for x in raw.split(",")] if raw.strip() else []
        if self.index >= len(skews):
            return self
        skew = env_number("TRADING_CLOCK_SKEW", 0.0, {"TRADING_CLOCK_SKEW": skews[self.index]})
        return dataclasses.replace(self, skew=skew)

    @property
    def index(self) -> int:
        """This instance's number from 0 (``gateway-2`` -> 1; a single instance -> 0)."""
        _, _, n = self.instance.rpartition("-")
        return int(n) - 1 if n.isdigit() else 0


class SkewedClock:
    """A :class:`buttress.Clock` whose wall clock is ``skew`` seconds off, as a site's clock drifts
    or is stepped by a bad NTP server.  Its monotonic clock is the machine's: elapsed time, which is
    all a relative deadline (``X-Buttress-Deadline-Ms``) needs, is measured the same on every
    site, whatever their wall clocks say."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + self.skew

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return f"SkewedClock(skew={self.skew:+g}s)"
