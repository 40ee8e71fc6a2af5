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

import builtins
import importlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from .types import Duration, PositiveDuration

__all__ = [
    "BackoffSpec",
    "BudgetSpec",
    "FallbackSpec",
    "PipelineSpec",
    "RetrySpec",
    "StateSpec",
    "TimeoutSpec",
    "resolve_exception",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackoffSpec(_Strict):
    """``backoff:``: the delay curve and its jitter (see :class:`buttress.Backoff`)."""

    kind: Literal["constant", "linear", "exponential"] = "exponential"
    base: Duration = 0.1
    multiplier: float = Field(default=2.0, ge=1)
    step: Duration = 0.0
    cap: Duration = 10.0
    jitter: Literal["none", "full", "equal", "decorrelated"] = "full"

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> BackoffSpec:
        if self.cap < self.base:
            raise ValueError(f"cap ({self.cap:g}s) must be >= base ({self.base:g}s)")
        return self


_RATIO_KEYS = frozenset({"ratio", "min_per_second", "ttl"})
_BUCKET_KEYS = frozenset({"max_tokens", "token_ratio"})


class BudgetSpec(_Strict):
    """``budget:``: Finagle's ratio budget (default) or gRPC's token bucket (``mode:
    token_bucket``). ``budget: false`` (or ``null``) turns budgeting off."""

    mode: Literal["ratio", "token_bucket"] = "ratio"
    ratio: float = Field(default=0.2, ge=0, le=1)
    min_per_second: float = Field(default=10.0, ge=0)
    ttl: PositiveDuration = 10.0
    max_tokens: float = Field(default=10.0, gt=0, le=1000)
    token_ratio: float = Field(default=0.1, ge=0.001, allow_inf_nan=False)

    @model_validator(mode="after")
    def _keys_match_mode(self) -> BudgetSpec:
        foreign = _BUCKET_KEYS if self.mode == "ratio" else _RATIO_KEYS
        given = sorted(foreign & self.model_fields_set)
        if given:
            raise ValueError(
                f"{', '.join(given)} do(es) not apply to mode {self.mode!r}; "
                f"mode 'ratio' takes ratio, min_per_second, ttl; "
                f"mode 'token_bucket' takes max_tokens, token_ratio"
            )
        return self


def resolve_exception(name: str) -> type[BaseException]:
    """``ConnectionError`` or ``package.module.Error`` to the class; ``ValueError`` if it is
    none."""
    obj: Any
    if "." not in name:
        obj = getattr(builtins, name, None)
    else:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            obj = None
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise ValueError(f"{name!r} is not an exception class (built-in name or dotted path)")
    return obj


class RetrySpec(_Strict):
    attempts: int = Field(default=3, ge=1)
    max_elapsed: Duration | None = None
    on: list[str] = Field(default_factory=lambda: ["Exception"])
    backoff: BackoffSpec = BackoffSpec()
    budget: BudgetSpec | None = BudgetSpec()
    nested: Literal["single", "multiply"] = "single"
    retry_rejected: bool = False

    @field_validator(
        "budget", mode="before", json_schema_input_type=BudgetSpec | None | Literal[False]
    )
    @classmethod
    def _budget_off(cls, v: Any) -> Any:
        return None if v is False else v

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("on")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            resolve_exception(name)
        return v


class TimeoutSpec(_Strict):
    seconds: PositiveDuration
    hard: bool = False


class FallbackSpec(_Strict):
    """``fallback:``: the value to answer with, and which errors trigger it (see
    :class:`buttress.Fallback`; ``on_rejected`` unset: rejections count when they match ``on``)."""

    value: Any = None
    on: list[str] = Field(default_factory=lambda: ["Exception"])
    on_rejected: bool | None = None

    @field_validator("on", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("on")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            resolve_exception(name)
        return v


def _timeout(v: Any) -> Any:
    return {"seconds": v} if isinstance(v, int | float | str) and not isinstance(v, bool) else v


class BreakDurationSpec(_Strict):
    """A break duration that grows with consecutive opens: ``base * multiplier ** (n - 1)``,
    capped."""

    base: PositiveDuration = 30.0
    multiplier: float = Field(2.0, ge=1)
    cap: PositiveDuration = 300.0


class CircuitBreakerSpec(_Strict):
    """``circuit_breaker:``: opens on failure rate or slow-call rate over a sliding window."""

    failure_rate_threshold: float = Field(0.5, gt=0, le=1)
    slow_call_rate_threshold: float = Field(1.0, gt=0, le=1)
    slow_call_duration: PositiveDuration = 60.0
    minimum_calls: int = Field(100, ge=1)
    window_type: Literal["count", "time"] = "count"
    window_size: float = Field(100, gt=0)
    window_buckets: int | None = Field(None, ge=1)
    permitted_calls_in_half_open: int = Field(10, ge=1)
    half_open_timeout: PositiveDuration = 60.0
    break_duration: PositiveDuration | BreakDurationSpec = 60.0
    record_on: list[str] = Field(default_factory=lambda: ["Exception"])
    ignore_on: list[str] = Field(default_factory=list)

    @field_validator("record_on", "ignore_on", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("record_on", "ignore_on")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        for name in v:
            resolve_exception(name)
        return v


class HedgeSpec(_Strict):
    """``hedge:``: after ``delay`` (or a latency ``percentile``), start up to ``max_hedges`` more
    attempts; the first success wins.  Hedges draw on the pipeline's retry budget."""

    delay: Duration = 0.05
    max_hedges: int = Field(1, ge=1)
    percentile: float | None = Field(
        None, gt=0, le=1, description="Hedge at this quantile of recent latency, in (0, 1]."
    )
    threads: bool = False


class BulkheadSpec(_Strict):
    """``bulkhead:``: at most ``max_concurrent`` calls at once, ``max_queue`` waiting."""

    max_concurrent: int = Field(10, ge=1)
    max_queue: int = Field(0, ge=0)
    max_wait: Duration | None = None


class RateLimitSpec(_Strict):
    """``rate_limit:``: GCRA, ``rate`` calls per ``per`` seconds with a ``burst``."""

    rate: float = Field(gt=0)
    per: PositiveDuration = 1.0
    burst: int | None = Field(None, ge=1)
    mode: Literal["reject", "wait"] = "reject"
    max_wait: Duration = 1.0
    max_keys: int = Field(10_000, ge=1)


class AdaptiveWindowSpec(_Strict):
    """``adaptive_limit.window:``: samples aggregated per window before the algorithm sees them
    (Netflix's ``WindowedLimit``; see :class:`buttress.policies.limits.WindowSpec`)."""

    min_window_time: PositiveDuration = 1.0
    max_window_time: PositiveDuration = 1.0
    window_size: int = Field(10, ge=1)
    min_rtt_threshold: Duration = 0.0001
    percentile: float | None = Field(None, gt=0, lt=1)
    max_samples: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _max_not_below_min(self) -> AdaptiveWindowSpec:
        if self.max_window_time < self.min_window_time:
            raise ValueError(
                f"max_window_time ({self.max_window_time:g}s) must be >= min_window_time"
                f" ({self.min_window_time:g}s)"
            )
        return self


class AdaptiveLimitSpec(_Strict):
    """``adaptive_limit:``: a concurrency limit that follows latency (Netflix's algorithms).

    ``window: true`` aggregates samples in Netflix's default windows (1 s, at least 10 samples,
    the average rtt); a mapping sets the window's fields; ``false`` or absent (default) feeds
    every sample to the algorithm.
    """

    algorithm: Literal["vegas", "aimd", "gradient2"] = "vegas"
    initial_limit: int = Field(20, ge=1)
    min_limit: int = Field(1, ge=1)
    max_limit: int = Field(1000, ge=1)
    window: AdaptiveWindowSpec | None = None

    @field_validator(
        "window", mode="before", json_schema_input_type=bool | AdaptiveWindowSpec | None
    )
    @classmethod
    def _window_flag(cls, value: Any) -> Any:
        if value is True:
            return {}
        if value is False or value is None or isinstance(value, dict | AdaptiveWindowSpec):
            return None if value is False else value
        raise ValueError("expected true, false or a mapping of window fields")

    @model_validator(mode="after")
    def _min_limit_applies(self) -> AdaptiveLimitSpec:
        if self.algorithm == "vegas" and "min_limit" in self.model_fields_set:
            raise ValueError("min_limit applies to aimd and gradient2; vegas has no floor setting")
        return self


class LoadSheddingSpec(_Strict):
    """``load_shedding:``: shed the least critical classes first as utilisation rises.

    ``capacity`` is a number of concurrent calls, or ``adaptive_limit`` to follow the pipeline's
    adaptive limit.  ``thresholds`` maps a class to the utilisation above which it is shed.
    """

    capacity: int | Literal["adaptive_limit"] = 100
    thresholds: dict[str, float] | None = None
    default: str = "critical"
    retry_after: Duration = 1.0


_UNAVAILABLE = Literal["local", "fail_open", "fail_closed"]
_STATE_KINDS = Literal["circuit_breaker", "rate_limiter", "retry_budget"]
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StateSpec(_Strict):
    """``state:``: where the breaker, rate limiter and retry budget keep their state (see
    ``docs/shared-state.md``): ``store: memory`` (default) or ``store: redis`` with a ``url``.
    ``on_unavailable`` (``local``, ``fail_open``, ``fail_closed``, or a mapping by policy kind)
    says how each policy decides while Redis is unavailable."""

    store: Literal["memory", "redis"] = "memory"
    url: str | None = None
    service: str | None = None
    prefix: str = Field("buttress", min_length=1)
    timeout: PositiveDuration = 0.05
    retry_interval: Duration = 1.0
    ttl: PositiveDuration = 86_400.0
    on_unavailable: _UNAVAILABLE | dict[_STATE_KINDS, _UNAVAILABLE] = "local"
    local_share: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _url_fits_store(self) -> StateSpec:
        if self.store == "redis":
            if self.url is None:
                raise ValueError("store: redis needs a url (e.g. redis://127.0.0.1:6379/0)")
            if not self.url.startswith(_REDIS_SCHEMES):
                raise ValueError(  # the URL itself is not echoed: it may hold a password
                    f"url is not a Redis URL: it must start with {', '.join(_REDIS_SCHEMES)}"
                )
        elif self.url is not None:
            raise ValueError("url applies to store: redis only")
        for name in ("service", "prefix"):
            v = getattr(self, name)
            if v is not None and ("{" in v or "}" in v):
                raise ValueError(f"{name} must not contain '{{' or '}}'")
        return self


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
