"""SLI models: ``ratio``, ``latency`` and ``window`` (see :mod:`buttress.slo.spec` for the section
they belong to)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from buttress.spec.types import PositiveDuration, PositiveShare

from .fields import StrictModel, check_kind, format_duration

__all__ = ["SLI", "LatencySLI", "RatioSLI", "WindowSLI", "normalize_placeholder", "rate_of_rate"]

_WINDOW_PLACEHOLDER = "{{.window}}"
_SPACED_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")
# What a reader makes of a counter query without the placeholder: ``rate((q)[{{.window}}:])``.
_COUNTER_WRAP = re.compile(r"rate\(\((?P<inner>.*)\)\[\{\{\.window\}\}:\]\)", re.DOTALL)
_RATE_FUNCTION = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\s*\(")


def normalize_placeholder(query: str) -> str:
    """``query`` with every ``{{ .window }}`` (Go template spacing, as sloth accepts) written
    ``{{.window}}``."""
    return _SPACED_PLACEHOLDER.sub(_WINDOW_PLACEHOLDER, query)


def rate_of_rate(query: str) -> str | None:
    """The inner query when ``query`` rates (as a counter) a query that already takes a rate:
    ``rate((sum(rate(x[5m])))[{{.window}}:])`` -> ``sum(rate(x[5m]))``; else ``None``."""
    m = _COUNTER_WRAP.fullmatch(query.strip())
    if m and _RATE_FUNCTION.search(m.group("inner")):
        return m.group("inner")
    return None


def _check_query(v: str | None) -> str | None:
    if v is not None:
        v = normalize_placeholder(v)
        if not v.strip():
            raise ValueError("must be a non-empty PromQL query")
        if _WINDOW_PLACEHOLDER not in v:
            raise ValueError(
                "a Prometheus query must use the {{.window}} placeholder in its range selectors, "
                'e.g. sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'
            )
    return v


class RatioSLI(StrictModel):
    """Good (or bad) events over all events."""

    kind: Literal["ratio"] = Field(description="SLI kind: good/bad events over total events.")
    good: str | None = Field(
        default=None, description="PromQL: rate of good events, with [{{.window}}] range selectors."
    )
    bad: str | None = Field(
        default=None, description="PromQL: rate of bad events, with [{{.window}}] range selectors."
    )
    total: str | None = Field(
        default=None, description="PromQL: rate of all events, with [{{.window}}] range selectors."
    )
    error_ratio: str | None = Field(
        default=None,
        description="PromQL: a precomputed error ratio (0-1) over [{{.window}}]; instead of "
        "good/bad/total (no low-traffic guard is possible then).",
    )
    pipeline: str | None = Field(
        default=None,
        description="A Buttress pipeline whose calls are the events: the recorder counts successes "
        "as good and failures as bad; without queries, the rules use Buttress's own metric "
        "buttress_events_total{pipeline, event} (buttress.telemetry.prometheus).",
    )

    @field_validator("good", "bad", "total", "error_ratio")
    @classmethod
    def _query(cls, v: str | None) -> str | None:
        return _check_query(v)

    @model_validator(mode="after")
    def _forms(self) -> RatioSLI:
        if self.good is not None and self.bad is not None:
            raise ValueError("give either 'good' or 'bad' with 'total', not both")
        if self.error_ratio is not None and (self.good or self.bad or self.total):
            raise ValueError("'error_ratio' replaces good/bad/total; give one form")
        if (self.good or self.bad) and self.total is None:
            raise ValueError("'total' is required with 'good' or 'bad'")
        if self.total is not None and not (self.good or self.bad):
            raise ValueError("'total' needs 'good' or 'bad'")
        return self

    def queries(self) -> tuple[str | None, str | None, str | None]:
        """``(bad, good, total)`` Prometheus queries, derived from ``pipeline`` if none were
        given."""
        if self.good or self.bad or self.total:
            return (self.bad, self.good, self.total)
        if self.error_ratio is None and self.pipeline is not None:
            m = "buttress_events_total"
            p = f'pipeline="{self.pipeline}"'
            rng = "[{{.window}}]"
            bad = f'(sum(rate({m}{{{p},event="buttress_pipeline_call_failed"}}{rng})) or vector(0))'
            total = f'sum(rate({m}{{{p},event=~"buttress_pipeline_call_(succeeded|failed)"}}{rng}))'
            return (bad, None, total)
        return (None, None, None)

    @property
    def has_prometheus(self) -> bool:
        """Whether Prometheus rules can be generated for this SLI."""
        return any(self.queries()) or self.error_ratio is not None


class LatencySLI(StrictModel):
    """A threshold on a histogram: good events are those no slower than ``threshold``."""

    kind: Literal["latency"] = Field(description="SLI kind: requests at or below a latency.")
    threshold: PositiveDuration = Field(
        description="Latency (seconds or a duration such as '300ms'); must be a histogram bucket."
    )
    histogram: str | None = Field(
        default=None,
        description="Prometheus histogram base name (e.g. http_request_duration_seconds); "
        "the rules "
        "use <histogram>_bucket and <histogram>_count.",
    )
    selector: str = Field(
        default="", description='Label matchers for the histogram, e.g. job="api",route!="/health".'
    )
    le: str | None = Field(
        default=None,
        description="The 'le' label value of the threshold bucket as your client writes it "
        "(default: Python's repr of threshold, e.g. '0.3', '1.0').",
    )
    pipeline: str | None = Field(
        default=None,
        description="A Buttress pipeline whose calls are the events: good = succeeded within "
        "threshold.",
    )

    @field_validator("histogram")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", v):
            raise ValueError(f"{v!r} is not a Prometheus metric name")
        return v

    @model_validator(mode="after")
    def _source(self) -> LatencySLI:
        if self.histogram is None and self.pipeline is None:
            raise ValueError(
                "a latency SLI needs 'histogram' (Prometheus) or 'pipeline' (recorded)"
            )
        return self

    def queries(self) -> tuple[str | None, str | None, str | None]:
        """``(bad, good, total)`` Prometheus queries built from the histogram."""
        if self.histogram is None:
            return (None, None, None)
        le = self.le if self.le is not None else repr(float(self.threshold))
        sel = self.selector.strip().strip("{}").strip()
        bucket_sel = f'{sel},le="{le}"' if sel else f'le="{le}"'
        total_sel = f"{{{sel}}}" if sel else ""
        good = f"sum(rate({self.histogram}_bucket{{{bucket_sel}}}[{{{{.window}}}}]))"
        total = f"sum(rate({self.histogram}_count{total_sel}[{{{{.window}}}}]))"
        return (None, good, total)

    @property
    def has_prometheus(self) -> bool:
        return self.histogram is not None


InnerSLI = Annotated[RatioSLI | LatencySLI, Field(discriminator="kind")]


class WindowSLI(StrictModel):
    """Window-based (timeslices): a slice is good when the inner SLI's ratio meets ``target``."""

    kind: Literal["window"] = Field(description="SLI kind: good time slices.")
    slice: PositiveDuration = Field(
        default=60.0, description="Length of a time slice (a whole number of minutes; default 1m)."
    )
    target: PositiveShare | None = Field(
        default=None,
        description="A slice is good when its good/total ratio is >= target (0 < target <= 1). "
        "Required for Timeslices budgeting; omitted for RatioTimeslices.",
    )
    of: InnerSLI = Field(description="The SLI measured in each slice (ratio or latency).")

    @field_validator("of", mode="before")
    @classmethod
    def _inner_kind(cls, v: Any) -> Any:
        return check_kind(v, ("ratio", "latency"))

    @field_validator("slice")
    @classmethod
    def _whole_minutes(cls, v: float) -> float:
        if v % 60 != 0:
            raise ValueError(f"a slice must be a whole number of minutes, got {format_duration(v)}")
        return v

    def queries(self) -> tuple[str | None, str | None, str | None]:
        return self.of.queries()

    @property
    def pipeline(self) -> str | None:
        return self.of.pipeline

    @property
    def has_prometheus(self) -> bool:
        return self.of.has_prometheus and self.of.queries()[2] is not None


SLI = Annotated[RatioSLI | LatencySLI | WindowSLI, Field(discriminator="kind")]
