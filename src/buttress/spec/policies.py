"""The ``policies:`` section: named pipelines, declared.

.. code-block:: yaml

    policies:
      payments:
        order: default          # or "given": keep the order of the keys below
        fallback: {value: null}
        timeout: 2s
        retry:
          attempts: 3
          on: [ConnectionError, TimeoutError]
          backoff: {kind: exponential, base: 100ms, cap: 5s, jitter: full}
          budget: {ratio: 0.2, min_per_second: 10, ttl: 10s}
        attempt_timeout: 500ms

Exception names in ``on`` are built-in names or dotted import paths (``httpx.ConnectError``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    field_validator,
    model_validator,
)
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from buttress.options import Options
from buttress.policies.backoff import BackoffOptions
from buttress.policies.breaker import BreakerOptions
from buttress.policies.budget import RetryBudgetOptions, TokenBucketOptions
from buttress.policies.bulkhead import BulkheadOptions
from buttress.policies.fallback import FallbackOptions
from buttress.policies.hedge import HedgeOptions
from buttress.policies.limits import (
    AdaptiveLimitOptions,
    AIMDOptions,
    Gradient2Options,
    VegasOptions,
    WindowOptions,
)
from buttress.policies.ratelimit import RateLimiterOptions
from buttress.policies.retry import RetryOptions
from buttress.policies.shed import LoadShedderOptions
from buttress.policies.timeout import TimeoutOptions

from .options import (
    ExceptionNames,
    OptionsModel,
    VariantModel,
    resolve_exception,
    spec_model,
    variant_model,
)
from .types import Duration, PositiveDuration, PositiveShare

__all__ = [
    "AdaptiveLimitSpec",
    "BackoffSpec",
    "BudgetSpec",
    "BulkheadSpec",
    "CircuitBreakerSpec",
    "FallbackSpec",
    "HedgeSpec",
    "LoadSheddingSpec",
    "PipelineSpec",
    "RateLimitSpec",
    "RetrySpec",
    "StateSpec",
    "TimeoutSpec",
    "resolve_exception",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Every model below is generated from the policy's options type (buttress.options): the same
# defaults, bounds and docs as the constructor.  Only the shapes YAML writes differently are
# spelled out here: a budget or an algorithm chosen by a tag, a break duration as a mapping.


def _false_is_none(v: Any) -> Any:
    return None if v is False else v


class BreakDurationSpec(_Strict):
    """A break duration that grows with consecutive opens: ``base * multiplier ** (n - 1)``,
    capped."""

    base: PositiveDuration = 30.0
    multiplier: float = Field(2.0, ge=1, allow_inf_nan=False)
    cap: PositiveDuration = 300.0

    def to_options(self) -> BackoffOptions:
        return BackoffOptions(
            kind="exponential",
            base=self.base,
            multiplier=self.multiplier,
            cap=self.cap,
            jitter="none",
        )


def _window_flag(value: Any) -> Any:
    if value is True:
        return {}
    if value is False or value is None or isinstance(value, dict | AdaptiveWindowSpec):
        return None if value is False else value
    raise ValueError("expected true, false or a mapping of window fields")


class _AdaptiveBase(VariantModel):
    def to_options(self) -> Options:
        window = getattr(self, "window", None)
        return AdaptiveLimitOptions(
            algorithm=self.chosen()(**self.option_values()),  # type: ignore[arg-type]
            drop_on=tuple(resolve_exception(n) for n in getattr(self, "drop_on", ["TimeoutError"])),
            window=None if window is None else window.to_options(),
        )


class _SheddingBase(OptionsModel):
    def to_options(self) -> Options:
        values = self.option_values()
        if values.get("capacity") == "adaptive_limit":
            values["capacity"] = 1  # stands in for the pipeline's limit, resolved when built
        return self.options_type(**values)


# The generated models: plain OptionsModel to the type checker, which cannot follow
# create_model(); pydantic sees the real ones.
if TYPE_CHECKING:
    BackoffSpec: TypeAlias = OptionsModel
    RetrySpec: TypeAlias = OptionsModel
    TimeoutSpec: TypeAlias = OptionsModel
    FallbackSpec: TypeAlias = OptionsModel
    CircuitBreakerSpec: TypeAlias = OptionsModel
    HedgeSpec: TypeAlias = OptionsModel
    BulkheadSpec: TypeAlias = OptionsModel
    RateLimitSpec: TypeAlias = OptionsModel
    AdaptiveWindowSpec: TypeAlias = OptionsModel
    LoadSheddingSpec: TypeAlias = OptionsModel
    BudgetSpec: TypeAlias = VariantModel
    AdaptiveLimitSpec: TypeAlias = VariantModel
else:
    BackoffSpec = spec_model(BackoffOptions, "BackoffSpec", doc="``backoff:`` of a ``retry:``.")
    BudgetSpec = variant_model(
        "BudgetSpec",
        "mode",
        {"ratio": RetryBudgetOptions, "token_bucket": TokenBucketOptions},
        doc="``budget:``: Finagle's ratio budget (default) or gRPC's token bucket (``mode: "
        "token_bucket``).  ``budget: false`` (or ``null``) turns budgeting off.",
    )
    RetrySpec = spec_model(
        RetryOptions,
        "RetrySpec",
        doc="``retry:``.",
        fields={
            "backoff": (BackoffSpec, BackoffSpec()),
            "budget": (
                Annotated[
                    BudgetSpec | None,
                    BeforeValidator(
                        _false_is_none, json_schema_input_type=BudgetSpec | None | Literal[False]
                    ),
                ],
                BudgetSpec(),
            ),
        },
    )
    TimeoutSpec = spec_model(
        TimeoutOptions,
        "TimeoutSpec",
        doc="``timeout:`` or ``attempt_timeout:`` (``2s`` for short).",
    )
    FallbackSpec = spec_model(FallbackOptions, "FallbackSpec", doc="``fallback:``.")
    CircuitBreakerSpec = spec_model(
        BreakerOptions,
        "CircuitBreakerSpec",
        doc="``circuit_breaker:``: opens on failure rate or slow-call rate over a sliding window.",
        fields={"break_duration": (PositiveDuration | BreakDurationSpec, 60.0)},
    )
    HedgeSpec = spec_model(
        HedgeOptions,
        "HedgeSpec",
        doc="``hedge:``: after ``delay`` (or a latency ``percentile``), start up to ``max_hedges`` "
        "more attempts; the first success wins.  Hedges draw on the pipeline's retry budget.",
    )
    BulkheadSpec = spec_model(
        BulkheadOptions,
        "BulkheadSpec",
        doc="``bulkhead:``: at most ``max_concurrent`` calls at once, ``max_queue`` waiting.",
    )
    RateLimitSpec = spec_model(
        RateLimiterOptions,
        "RateLimitSpec",
        doc="``rate_limit:``: GCRA, ``rate`` calls per ``per`` seconds with a ``burst``.",
    )
    AdaptiveWindowSpec = spec_model(
        WindowOptions,
        "AdaptiveWindowSpec",
        doc="``adaptive_limit.window:``: samples aggregated per window before the algorithm sees "
        "them (Netflix's ``WindowedLimit``).",
    )
    AdaptiveLimitSpec = variant_model(
        "AdaptiveLimitSpec",
        "algorithm",
        {"vegas": VegasOptions, "aimd": AIMDOptions, "gradient2": Gradient2Options},
        doc="``adaptive_limit:``: a concurrency limit that follows latency (Netflix's "
        "algorithms).  ``window: true`` aggregates samples in Netflix's default windows (1 s, at "
        "least 10 samples, the average rtt); a mapping sets the window's fields; ``false`` or "
        "absent (default) feeds every sample to the algorithm.",
        fields={
            "drop_on": (
                ExceptionNames,
                Field(["TimeoutError"], description="Exception types that count as drops"),
            ),
            "window": (
                Annotated[
                    AdaptiveWindowSpec | None,
                    BeforeValidator(
                        _window_flag, json_schema_input_type=bool | AdaptiveWindowSpec | None
                    ),
                ],
                Field(None, json_schema_extra=None),
            ),
        },
        base=_AdaptiveBase,
    )
    LoadSheddingSpec = spec_model(
        LoadShedderOptions,
        "LoadSheddingSpec",
        doc="``load_shedding:``: shed the least critical classes first as utilisation rises.  "
        "``capacity`` is a number of concurrent calls, or ``adaptive_limit`` to follow the "
        "pipeline's adaptive limit.  ``thresholds`` maps a class to the utilisation above which it "
        "is shed.",
        fields={
            "capacity": (Annotated[int, Strict(), Field(ge=1)] | Literal["adaptive_limit"], 100),
            "thresholds": (dict[str, float] | None, None),
            "default": (str, "critical"),
        },
        base=_SheddingBase,
    )


_UNAVAILABLE = Literal["local", "fail_open", "fail_closed"]
_STATE_KINDS = Literal["circuit_breaker", "rate_limiter", "retry_budget"]
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StateSpec(_Strict):
    """``state:``: where the breaker, rate limiter and retry budget keep their state (see
    ``docs/shared-state.md``): ``store: memory`` (default) or ``store: redis`` with a ``url`` (one
    server, or any node of a Redis Cluster with ``cluster: true``) or with ``sentinels`` and
    ``master`` (Redis Sentinel).  ``on_unavailable`` (``local``, ``fail_open``, ``fail_closed``,
    or a mapping by policy kind) says how each policy decides while Redis is unavailable."""

    store: Literal["memory", "redis"] = "memory"
    url: str | None = None
    cluster: bool = False
    sentinels: list[str] | None = Field(None, min_length=1)
    master: str | None = Field(None, min_length=1)
    service: str | None = None
    prefix: str = Field("buttress", min_length=1)
    timeout: PositiveDuration = 0.05
    retry_interval: Duration = 1.0
    ttl: PositiveDuration = 86_400.0
    on_unavailable: _UNAVAILABLE | dict[_STATE_KINDS, _UNAVAILABLE] = "local"
    local_share: PositiveShare = 1.0

    @model_validator(mode="after")
    def _url_fits_store(self) -> StateSpec:
        if self.store == "redis":
            if self.sentinels is not None:
                if self.url is not None:
                    raise ValueError("give url or sentinels, not both")
                if self.master is None:
                    raise ValueError("sentinels need the master's name (master: mymaster)")
                if self.cluster:
                    raise ValueError("cluster: true needs a url, not sentinels")
                return self._no_braces()
            if self.master is not None:
                raise ValueError("master applies with sentinels only")
            if self.url is None:
                raise ValueError(
                    "store: redis needs a url (e.g. redis://127.0.0.1:6379/0) or sentinels"
                )
            if not self.url.startswith(_REDIS_SCHEMES):
                raise ValueError(  # the URL itself is not echoed: it may hold a password
                    f"url is not a Redis URL: it must start with {', '.join(_REDIS_SCHEMES)}"
                )
        else:
            for name in ("url", "sentinels", "master"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to store: redis only")
            if self.cluster:
                raise ValueError("cluster applies to store: redis only")
        return self._no_braces()

    def _no_braces(self) -> StateSpec:
        for name in ("service", "prefix"):
            v = getattr(self, name)
            if v is not None and ("{" in v or "}" in v):
                raise ValueError(f"{name} must not contain '{{' or '}}'")
        return self


def _timeout(v: Any) -> Any:
    return {"seconds": v} if isinstance(v, int | float | str) and not isinstance(v, bool) else v


class PipelineSpec(_Strict):
    """One named pipeline: each key is a policy; ``order`` says how they nest."""

    order: Literal["default", "given"] = "default"
    fallback: FallbackSpec | None = None
    timeout: TimeoutSpec | None = None
    retry: RetrySpec | None = None
    attempt_timeout: TimeoutSpec | None = None
    hedge: HedgeSpec | None = None
    circuit_breaker: CircuitBreakerSpec | None = None
    rate_limit: RateLimitSpec | None = None
    load_shedding: LoadSheddingSpec | None = None
    adaptive_limit: AdaptiveLimitSpec | None = None
    bulkhead: BulkheadSpec | None = None
    state: StateSpec | None = None

    _declared: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        model = handler(data)
        if isinstance(data, dict):
            model._declared = [str(k) for k in data]
        return model

    def declared_keys(self) -> list[str]:
        """Policy keys in the order the file declared them."""
        return self._declared or list(type(self).model_fields)

    @field_validator("timeout", "attempt_timeout", mode="before")
    @classmethod
    def _short_timeout(cls, v: Any) -> Any:
        return _timeout(v)
