"""OpenSLO v1 objects as pydantic models (what the reader validates), and its duration shorthand."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from buttress.spec.types import parse_duration

__all__ = ["ANN", "API", "SPEC_MODELS", "Metadata", "Obj", "parse_shorthand"]

API = "openslo/v1"
ANN = "buttress.dev/"


class _O(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(_O):
    name: str = Field(min_length=1)
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class MetricSource(_O):
    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_O):
    metricSource: MetricSource


class RatioMetric(_O):
    counter: bool | None = None
    good: MetricSpec | None = None
    bad: MetricSpec | None = None
    total: MetricSpec | None = None
    rawType: Literal["success", "failure"] | None = None
    raw: MetricSpec | None = None


class SLISpecO(_O):
    description: str | None = None
    thresholdMetric: MetricSpec | None = None
    ratioMetric: RatioMetric | None = None


class InlineSLI(_O):
    metadata: Metadata
    spec: SLISpecO


class CalendarO(_O):
    # OpenSLO writes ``startTime: 2020-01-21 12:30:00`` unquoted, which YAML reads as a datetime.
    startTime: datetime | date | str | None = None
    timeZone: str = "UTC"


class TimeWindowO(_O):
    duration: str | int
    isRolling: bool | None = None
    calendar: CalendarO | None = None


class ObjectiveO(_O):
    displayName: str | None = None
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    value: float | None = None
    target: float | None = Field(default=None, ge=0, lt=1)
    targetPercent: float | None = Field(default=None, ge=0, lt=100)
    timeSliceTarget: float | None = Field(default=None, gt=0, le=1)
    timeSliceWindow: str | int | None = None


class ConditionO(_O):
    kind: Literal["burnrate"] = "burnrate"
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    threshold: float = Field(gt=0)
    lookbackWindow: str | int
    alertAfter: str | int | None = None


class AlertConditionSpecO(_O):
    description: str | None = None
    severity: str
    condition: ConditionO


class PolicyConditionO(_O):
    conditionRef: str | None = None
    kind: Literal["AlertCondition"] | None = None
    metadata: Metadata | None = None
    spec: AlertConditionSpecO | None = None


class AlertPolicySpecO(_O):
    description: str | None = None
    alertWhenNoData: bool = False
    alertWhenResolved: bool = False
    alertWhenBreaching: bool = True
    conditions: list[PolicyConditionO] = Field(min_length=1)
    notificationTargets: list[dict[str, Any]] = Field(default_factory=list)


class SLOPolicyO(_O):
    alertPolicyRef: str | None = None
    kind: Literal["AlertPolicy"] | None = None
    metadata: Metadata | None = None
    spec: AlertPolicySpecO | None = None


class SLOSpecO(_O):
    description: str | None = None
    service: str
    indicator: InlineSLI | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindowO] = Field(min_length=1, max_length=1)
    budgetingMethod: Literal["Occurrences", "Timeslices", "RatioTimeslices"]
    objectives: list[ObjectiveO] = Field(min_length=1)
    alertPolicies: list[SLOPolicyO] = Field(default_factory=list)


class DataSourceSpecO(_O):
    description: str | None = None
    type: str
    connectionDetails: dict[str, Any] = Field(default_factory=dict)


class ServiceSpecO(_O):
    description: str | None = None


class Obj(_O):
    apiVersion: Literal["openslo/v1"]
    kind: Literal[
        "SLO",
        "SLI",
        "AlertPolicy",
        "AlertCondition",
        "AlertNotificationTarget",
        "Service",
        "DataSource",
    ]
    metadata: Metadata
    spec: dict[str, Any]


SPEC_MODELS: dict[str, type[BaseModel]] = {
    "SLO": SLOSpecO,
    "SLI": SLISpecO,
    "AlertPolicy": AlertPolicySpecO,
    "AlertCondition": AlertConditionSpecO,
    "DataSource": DataSourceSpecO,
    "Service": ServiceSpecO,
}


def parse_shorthand(value: str | int, *, number_unit: float = 60.0) -> float:
    """OpenSLO's duration-shorthand in seconds: ``m h d w`` plus ``M`` (30d), ``Q`` (90d), ``Y``
    (365d).

    A bare number is in minutes (OpenSLO's default for ``timeSliceWindow``).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) * number_unit
    m = re.fullmatch(r"\s*(\d+)\s*([MQY])\s*", str(value))
    if m:
        n = int(m.group(1))
        return n * {"M": 30, "Q": 90, "Y": 365}[m.group(2)] * 86400.0
    return parse_duration(value)
