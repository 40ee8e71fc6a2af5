"""The ``slos:`` section of ``reliability.yaml``: service level objectives, declared.

.. code-block:: yaml

    service: checkout
    slos:
      - name: checkout-availability
        objective: 99.9                 # percent, 0 < objective < 100
        window: 30d                     # rolling; or {calendar: month, timezone: Europe/Paris}
        sli:
          kind: ratio
          bad: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
          total: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
        alerting:
          disable: [ticket-3d]          # the Workbook tiers, minus one
          min_events: 100               # low-traffic guard
        exclusions:
          - {start: 2024-03-01T02:00:00Z, end: 2024-03-01T04:00:00Z, reason: planned migration}

SLI kinds (``sli.kind``):

``ratio``
    Good (or bad) events over total events: Prometheus queries using the ``{{.window}}`` placeholder
    (sloth's convention), a precomputed ``error_ratio`` query, and/or a Buttress ``pipeline`` whose
    calls the recorder counts (success = good, failure = bad).
``latency``
    A threshold on a histogram: good events are those at or below ``threshold``
    (``<histogram>_bucket{le="<threshold>"}`` over ``<histogram>_count``).
``window``
    Window-based (timeslices): the time is cut into slices of ``slice``; a slice is good when the
    ratio of the inner SLI (``of:``, a ratio or latency SLI) over the slice meets ``target``.

Budgeting methods use OpenSLO's terms: ``Occurrences`` (good events / all events; ratio and latency
SLIs), ``Timeslices`` (good slices / slices; needs a window SLI with a ``target``) and
``RatioTimeslices`` (the mean of the slices' ratios; a window SLI).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from buttress.spec.sections import register_section
from buttress.spec.types import Duration, PositiveDuration, PositiveShare
from buttress.spec.validation import located

from . import math as slomath
from .fields import CALENDAR_NOMINAL, LABEL, NAME, StrictModel, check_kind, format_duration
from .sli import SLI, LatencySLI, RatioSLI, WindowSLI, rate_of_rate

__all__ = [
    "CALENDAR_NOMINAL",
    "DEFAULT_TIERS",
    "SLI",
    "AlertingSpec",
    "ExclusionSpec",
    "LatencySLI",
    "RatioSLI",
    "SLOSpec",
    "TierSpec",
    "WindowSLI",
    "WindowSpec",
    "format_duration",
]


# -- windows, tiers, exclusions -------------------------------------------------------------------


class WindowSpec(StrictModel):
    """The SLO period: rolling (``window: 30d``) or calendar-aligned (``{calendar: month}``)."""

    rolling: PositiveDuration | None = Field(
        default=None, description="A rolling window of this length (e.g. 30d, 28d, 7d)."
    )
    calendar: Literal["week", "month", "quarter"] | None = Field(
        default=None, description="A calendar-aligned window: week (from Monday), month or quarter."
    )
    timezone: str = Field(default="UTC", description="IANA time zone of calendar boundaries.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, str | int | float) and not isinstance(v, bool):
            if v in CALENDAR_NOMINAL:
                return {"calendar": v}
            return {"rolling": v}
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as 'Europe/Paris')"
            ) from None
        return v

    @model_validator(mode="after")
    def _one(self) -> WindowSpec:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError(
                "give exactly one of 'rolling' (e.g. 30d) or 'calendar' (week/month/quarter)"
            )
        return self

    @property
    def seconds(self) -> float:
        """Length in seconds (calendar windows: their nominal length, see ``CALENDAR_NOMINAL``)."""
        if self.rolling is not None:
            return self.rolling
        assert self.calendar is not None
        return CALENDAR_NOMINAL[self.calendar]

    def describe(self) -> str:
        if self.rolling is not None:
            return f"rolling {format_duration(self.rolling)}"
        return f"calendar {self.calendar} ({self.timezone})"


class TierSpec(StrictModel):
    """One multiwindow burn-rate alert: fire when both windows burn faster than the threshold.

    The threshold is ``burn_rate`` if given, else ``budget_fraction x period / long_window``
    (the Workbook's BR = f x P / W): the burn rate that spends ``budget_fraction`` of the period's
    budget within ``long_window``.
    """

    name: str = Field(description="Tier name (label burn_tier), e.g. page-1h.")
    severity: str = Field(default="page", description="Label severity, e.g. page or ticket.")
    long_window: PositiveDuration = Field(description="Long window (e.g. 1h).")
    short_window: PositiveDuration = Field(
        description="Short window (e.g. 5m, 1/12 of the long one): makes the alert reset quickly."
    )
    budget_fraction: PositiveShare | None = Field(
        default=None, description="Fraction of the period's budget spent in long_window."
    )
    burn_rate: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Explicit burn-rate threshold (instead of budget_fraction).",
    )
    min_events: int | None = Field(
        default=None,
        ge=0,
        description="Low-traffic guard for this tier (default: alerting.min_events).",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Extra alert labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Extra annotations.")
    alert_after: Duration | None = Field(
        default=None,
        description="How long both windows must burn before the alert fires (the Prometheus "
        "rule's for:, OpenSLO's alertAfter); none by default.",
    )
    op: Literal["gt", "gte", "lt", "lte"] | None = Field(
        default=None,
        description="The comparison an OpenSLO AlertCondition was written with, kept so that an "
        "export writes it back; the alert fires while the burn rate is above the threshold (>).",
    )

    @field_validator("alert_after")
    @classmethod
    def _alert_after(cls, v: float | None) -> float | None:
        if v is not None and (v < 0 or v % 60 != 0):
            raise ValueError(f"must be a whole number of minutes >= 0, got {format_duration(v)}")
        return v or None

    @field_validator("name")
    @classmethod
    def _tier_name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError(f"{v!r}: use letters, digits, '-', '_' or '.'")
        return v

    @field_validator("short_window")
    @classmethod
    def _short_le_long(cls, v: float, info: ValidationInfo) -> float:
        long = info.data.get("long_window")
        if long is not None and v > long:
            raise ValueError(
                f"the short window ({format_duration(v)}) is longer than the long window "
                f"({format_duration(long)}); it must be shorter (the Workbook uses 1/12)"
            )
        return v

    @model_validator(mode="after")
    def _threshold(self) -> TierSpec:
        if (self.budget_fraction is None) == (self.burn_rate is None):
            raise ValueError("give exactly one of 'budget_fraction' or 'burn_rate'")
        return self

    def threshold(self, period: float) -> float:
        """The burn-rate threshold for an SLO period of ``period`` seconds."""
        if self.burn_rate is not None:
            return self.burn_rate
        assert self.budget_fraction is not None
        return slomath.burn_rate_threshold(self.budget_fraction, period, self.long_window)


DEFAULT_TIERS: tuple[TierSpec, ...] = (
    TierSpec(
        name="page-1h", severity="page", long_window=3600, short_window=300, budget_fraction=0.02
    ),
    TierSpec(
        name="page-6h", severity="page", long_window=21600, short_window=1800, budget_fraction=0.05
    ),
    TierSpec(
        name="ticket-1d",
        severity="ticket",
        long_window=86400,
        short_window=7200,
        budget_fraction=0.10,
    ),
    TierSpec(
        name="ticket-3d",
        severity="ticket",
        long_window=259200,
        short_window=21600,
        budget_fraction=0.10,
    ),
)
"""The SRE Workbook's tiers: page on 2% of the budget in 1h (5m) or 5% in 6h (30m); ticket on 10% in
1d (2h) or 10% in 3d (6h).  For a 30-day window these are burn rates 14.4, 6, 3 and 1."""


class AlertingSpec(StrictModel):
    """Burn-rate alerts of one SLO."""

    name: str | None = Field(
        default=None,
        description="Alert name for every tier (default: the SLO name in CamelCase + BurnRate).",
    )
    tiers: list[TierSpec] = Field(
        default_factory=lambda: list(DEFAULT_TIERS),
        description="Alert tiers (default: the Workbook's page-1h, page-6h, ticket-1d, ticket-3d).",
    )
    disable: list[str] = Field(default_factory=list, description="Tier names to leave out.")
    min_events: int = Field(
        default=0,
        ge=0,
        description="Low-traffic guard: no alert until the long window holds this many events.",
    )
    absent_for: PositiveDuration | None = Field(
        default=600.0,
        description="Alert when the SLI has no data for this long (null: no absent alert).",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels on every alert.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations on every alert."
    )

    @field_validator("tiers")
    @classmethod
    def _unique(cls, v: list[TierSpec]) -> list[TierSpec]:
        seen: set[str] = set()
        for t in v:
            if t.name in seen:
                raise ValueError(f"tier name {t.name!r} appears twice")
            seen.add(t.name)
        return v

    @field_validator("disable")
    @classmethod
    def _known(cls, v: list[str], info: ValidationInfo) -> list[str]:
        tiers = info.data.get("tiers")
        if tiers is not None:
            names = [t.name for t in tiers]
            for name in v:
                if name not in names:
                    raise ValueError(f"no tier named {name!r} (tiers: {', '.join(names)})")
        return v

    @property
    def active_tiers(self) -> list[TierSpec]:
        """The tiers left after ``disable``."""
        return [t for t in self.tiers if t.name not in self.disable]


class ExclusionSpec(StrictModel):
    """A maintenance window: its minutes count neither as good nor as bad, and alerts stay
    silent."""

    start: datetime = Field(description="Start (ISO 8601; without an offset it is UTC).")
    end: datetime = Field(description="End (exclusive).")
    reason: str = Field(default="", description="Why (shown in status output).")

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _order(self) -> ExclusionSpec:
        if self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


Budgeting = Literal["Occurrences", "Timeslices", "RatioTimeslices"]


class SLOSpec(StrictModel):
    """One service level objective."""

    name: str = Field(description="SLO name, unique in the file (label slo).")
    service: str | None = Field(
        default=None,
        description="Service (label service); defaults to the file's top-level service.",
    )
    description: str = Field(default="", description="What the SLO promises, for people.")
    objective: float = Field(
        description="Target in percent of good events (or slices): 0 < objective < 100, e.g. 99.9."
    )
    sli: SLI = Field(description="The indicator: kind ratio, latency or window.")
    budgeting: Budgeting | None = Field(
        default=None,
        description="Occurrences (ratio/latency SLIs), Timeslices or RatioTimeslices "
        "(window SLIs); "
        "derived from the SLI when omitted.",
    )
    alerting: AlertingSpec = Field(
        default_factory=lambda: AlertingSpec(),  # noqa: PLW0108 (mypy needs a callable)
        description="Burn-rate alert tiers and the low-traffic guard.",
    )
    window: WindowSpec = Field(
        default=WindowSpec(rolling=30 * 86400.0),
        validate_default=True,
        description="The SLO period: a duration (rolling, default 30d) or "
        "{calendar: week|month|quarter, timezone: ...}.",
    )
    exclusions: list[ExclusionSpec] = Field(
        default_factory=list, description="Maintenance windows excluded from the budget."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels on every generated rule."
    )
    display_name: str | None = Field(
        default=None, description="A name for people (OpenSLO's metadata.displayName)."
    )
    openslo: dict[str, Any] = Field(
        default_factory=dict,
        description="OpenSLO details Buttress does not use, kept so that an export writes them "
        "back: data sources (connection details), the service, the objective's and alert "
        "policies' display names, notification targets.  Written by the OpenSLO reader.",
    )

    @field_validator("name")
    @classmethod
    def _slo_name(cls, v: str) -> str:
        if not NAME.fullmatch(v):
            raise ValueError(f"{v!r}: an SLO name uses letters, digits, '-', '_' or '.'")
        return v

    @classmethod
    def check_items(cls, slos: list[SLOSpec], root: Any) -> None:
        """Checks against the rest of the file (called by the root model once for the whole
        list), as ``buttress slo`` makes them: a name used once, and a service (the SLO's or the
        file's)."""
        first: dict[str, int] = {}
        file_service = getattr(root, "service", None)
        for i, slo in enumerate(slos):
            j = first.setdefault(slo.name, i)
            if j < i:
                raise located(
                    ("slos", i, "name"), f"SLO name {slo.name!r} is used twice (also slos[{j}])"
                )
            if slo.service is None and file_service is None:
                raise located(
                    ("slos", i), "no service: set 'service:' at the top level or on the SLO"
                )

    @field_validator("objective", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().endswith("%"):
            return v.strip()[:-1]
        return v

    @field_validator("objective")
    @classmethod
    def _objective(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"objective must be a finite percentage, e.g. 99.9 (got {v!r})")
        if v >= 100:
            raise ValueError(
                f"objective {v:g}% leaves no error budget; it must be below 100 (e.g. 99.9)"
            )
        if v <= 0:
            raise ValueError(f"objective {v:g}% must be above 0 (it is a percentage, e.g. 99.9)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not LABEL.fullmatch(k) or k.startswith("__"):
                raise ValueError(f"{k!r} is not a valid Prometheus label name")
        return v

    @field_validator("sli", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        return check_kind(v, ("ratio", "latency", "window"))

    @field_validator("budgeting")
    @classmethod
    def _budgeting(cls, v: Budgeting | None, info: ValidationInfo) -> Budgeting | None:
        sli = info.data.get("sli")
        if v is None or sli is None:
            return v
        if isinstance(sli, WindowSLI):
            if v == "Occurrences":
                raise ValueError("a window SLI is budgeted by Timeslices or RatioTimeslices")
            if v == "Timeslices" and sli.target is None:
                raise ValueError("Timeslices budgeting needs sli.target (when a slice is good)")
        elif v != "Occurrences":
            raise ValueError(f"{v} budgeting needs a window SLI (kind: window, slice, target)")
        return v

    @field_validator("window")
    @classmethod
    def _window_covers_tiers(cls, v: WindowSpec, info: ValidationInfo) -> WindowSpec:
        alerting = info.data.get("alerting")
        if alerting is None:
            return v
        for tier in alerting.active_tiers:
            if tier.long_window > v.seconds:
                raise ValueError(
                    f"the window ({format_duration(v.seconds)}) is shorter than the long window "
                    f"of alert tier {tier.name!r} ({format_duration(tier.long_window)}); "
                    "lengthen the window or disable/replace that tier"
                )
        return v

    # -- derived values ---------------------------------------------------------------------------

    @property
    def method(self) -> Budgeting:
        """The budgeting method (explicit or derived from the SLI)."""
        if self.budgeting is not None:
            return self.budgeting
        if isinstance(self.sli, WindowSLI):
            return "Timeslices" if self.sli.target is not None else "RatioTimeslices"
        return "Occurrences"

    @property
    def target(self) -> float:
        """The objective as a ratio (99.9 -> 0.999), computed in decimal so it prints cleanly."""
        return float(Decimal(repr(self.objective)) / 100)

    @property
    def budget_ratio(self) -> float:
        """The error budget as a ratio: ``1 - target`` (99.9 -> 0.001), computed in decimal."""
        return float((100 - Decimal(repr(self.objective))) / 100)

    @property
    def period(self) -> float:
        """Length of the SLO window in seconds (nominal for calendar windows)."""
        return self.window.seconds

    @property
    def alert_name(self) -> str:
        if self.alerting.name:
            return self.alerting.name
        words = re.split(r"[-_.]", self.name)
        return "".join(w[:1].upper() + w[1:] for w in words if w) + "BurnRate"

    def tiers(self) -> list[slomath.AlertTier]:
        """The active tiers as math-module tiers, with thresholds for this SLO's period."""
        out = []
        for t in self.alerting.active_tiers:
            out.append(
                slomath.AlertTier(
                    name=t.name,
                    severity=t.severity,
                    long_window=t.long_window,
                    short_window=t.short_window,
                    threshold=t.threshold(self.period),
                    min_events=t.min_events
                    if t.min_events is not None
                    else self.alerting.min_events,
                )
            )
        return out

    def warnings(self) -> list[str]:
        """Tiers that can never fire: threshold x (1 - target) >= 1 (an error ratio above 100%);
        queries declared as counters that already take a rate (a rate of a rate)."""
        out = []
        for tier in self.alerting.active_tiers:
            if tier.op in ("lt", "lte"):
                out.append(
                    f"slo {self.name!r}: tier {tier.name!r} was written with op: {tier.op}; "
                    "a burn-rate alert fires while the burn rate is above its threshold, so "
                    "Buttress's rules use > (op is kept as written for the OpenSLO export)"
                )
        inner = self.sli.of if isinstance(self.sli, WindowSLI) else self.sli
        if isinstance(inner, RatioSLI):
            for part in ("good", "bad", "total", "error_ratio"):
                query = getattr(inner, part)
                rated = rate_of_rate(query) if query is not None else None
                if rated is not None:
                    out.append(
                        f"slo {self.name!r}: the {part} query {rated!r} is declared a counter "
                        "(ratioMetric.counter: true) but already takes a rate, so it becomes a "
                        "rate of a rate; drop counter: true and write [{{.window}}] in its range "
                        "selectors"
                    )
        for t in self.tiers():
            if not slomath.can_fire(t.threshold, self.budget_ratio):
                out.append(
                    f"slo {self.name!r}: tier {t.name!r} can never fire: burn rate {t.threshold:g} "
                    f"needs an error ratio of {t.threshold * self.budget_ratio:.3g} (> 100%)"
                )
        return out

    def with_service(self, service: str) -> SLOSpec:
        return self.model_copy(update={"service": service})


register_section(
    "slos", SLOSpec, many=True, description="Service level objectives (see docs/slo.md)."
)
