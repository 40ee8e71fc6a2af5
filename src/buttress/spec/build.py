"""From declared pipelines to runtime :class:`~buttress.Pipeline` objects."""

from __future__ import annotations

from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, SpecError
from buttress.pipeline import Pipeline
from buttress.policies.backoff import Backoff
from buttress.policies.base import Policy
from buttress.policies.breaker import BreakerStore, CircuitBreaker
from buttress.policies.budget import Budget, RetryBudget, TokenBucketBudget
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.fallback import Fallback
from buttress.policies.hedge import Hedge
from buttress.policies.limits import (
    AIMD,
    AdaptiveLimit,
    Gradient2,
    LimitAlgorithm,
    Vegas,
    WindowSpec,
)
from buttress.policies.ratelimit import RateLimiter
from buttress.policies.retry import Retry
from buttress.policies.shed import Criticality, LoadShedder
from buttress.policies.timeout import Timeout
from buttress.state.base import StateStore

from .document import ReliabilitySpec
from .policies import (
    AdaptiveLimitSpec,
    BudgetSpec,
    CircuitBreakerSpec,
    FallbackSpec,
    LoadSheddingSpec,
    PipelineSpec,
    RetrySpec,
    TimeoutSpec,
)
from .policies import resolve_exception as _exc
from .source import Document

__all__ = ["build_pipeline", "build_pipelines"]


def _fallback(spec: FallbackSpec, clock: Clock) -> Fallback:
    return Fallback(
        spec.value,
        on=tuple(_exc(n) for n in spec.on),
        on_rejected=spec.on_rejected,
        clock=clock,
    )


def _timeout(spec: TimeoutSpec, scope: str, clock: Clock) -> Timeout:
    return Timeout(
        spec.seconds, scope="total" if scope == "total" else "attempt", hard=spec.hard, clock=clock
    )


def _budget(
    spec: BudgetSpec | None, clock: Clock, state: StateStore | None = None, scope: str = ""
) -> Budget | None:
    if spec is None:
        return None
    if state is not None:  # shared state (buttress.state): same rules, fleet-wide
        if spec.mode == "token_bucket":
            return state.token_bucket_budget(
                scope, max_tokens=spec.max_tokens, token_ratio=spec.token_ratio, clock=clock
            )
        return state.retry_budget(
            scope, ratio=spec.ratio, min_per_second=spec.min_per_second, ttl=spec.ttl, clock=clock
        )
    if spec.mode == "token_bucket":
        return TokenBucketBudget(max_tokens=spec.max_tokens, token_ratio=spec.token_ratio)
    return RetryBudget(
        ratio=spec.ratio, min_per_second=spec.min_per_second, ttl=spec.ttl, clock=clock
    )


def _retry(
    spec: RetrySpec, clock: Clock, state: StateStore | None = None, scope: str = ""
) -> Retry:
    b = spec.backoff
    return Retry(
        attempts=spec.attempts,
        max_elapsed=spec.max_elapsed,
        on=tuple(_exc(n) for n in spec.on),
        backoff=Backoff(
            b.kind,
            base=b.base,
            multiplier=b.multiplier,
            step=b.step,
            cap=b.cap,
            jitter=b.jitter,
        ),
        budget=_budget(spec.budget, clock, state, scope),
        nested=spec.nested,
        retry_rejected=spec.retry_rejected,
        clock=clock,
    )


def _breaker(
    spec: CircuitBreakerSpec, clock: Clock, store: BreakerStore | None = None
) -> CircuitBreaker:
    bd = spec.break_duration
    duration: Any
    if isinstance(bd, float | int):
        duration = float(bd)
    else:
        duration = Backoff(
            "exponential", base=bd.base, multiplier=bd.multiplier, cap=bd.cap, jitter="none"
        )
    return CircuitBreaker(
        failure_rate_threshold=spec.failure_rate_threshold,
        slow_call_rate_threshold=spec.slow_call_rate_threshold,
        slow_call_duration=spec.slow_call_duration,
        minimum_calls=spec.minimum_calls,
        window_type=spec.window_type,
        window_size=spec.window_size,
        window_buckets=spec.window_buckets,
        permitted_calls_in_half_open=spec.permitted_calls_in_half_open,
        half_open_timeout=spec.half_open_timeout,
        break_duration=duration,
        record_on=tuple(_exc(n) for n in spec.record_on),
        ignore_on=tuple(_exc(n) for n in spec.ignore_on),
        store=store,
        clock=clock,
    )


def _adaptive(spec: AdaptiveLimitSpec, clock: Clock) -> AdaptiveLimit:
    algorithm: LimitAlgorithm
    if spec.algorithm == "aimd":
        algorithm = AIMD(
            initial_limit=spec.initial_limit, min_limit=spec.min_limit, max_limit=spec.max_limit
        )
    elif spec.algorithm == "gradient2":
        algorithm = Gradient2(
            initial_limit=spec.initial_limit, min_limit=spec.min_limit, max_limit=spec.max_limit
        )
    else:
        algorithm = Vegas(initial_limit=spec.initial_limit, max_limit=spec.max_limit)
    window = None if spec.window is None else WindowSpec(**spec.window.model_dump())
    return AdaptiveLimit(algorithm, window=window, clock=clock)


def _shedder(spec: LoadSheddingSpec, adaptive: AdaptiveLimit | None, clock: Clock) -> LoadShedder:
    thresholds: dict[str | Criticality, float] | None = None
    if spec.thresholds is not None:
        thresholds = {str(k): v for k, v in spec.thresholds.items()}
    if spec.capacity == "adaptive_limit":
        if adaptive is None:
            raise ConfigError(
                "capacity", spec.capacity, "needs an adaptive_limit: in the same pipeline"
            )
        return LoadShedder(
            adaptive,
            thresholds=thresholds,
            default=spec.default,
            retry_after=spec.retry_after,
            clock=clock,
        )
    return LoadShedder(
        spec.capacity,
        thresholds=thresholds,
        default=spec.default,
        retry_after=spec.retry_after,
        clock=clock,
    )


def _policy(
    key: str,
    value: Any,
    clock: Clock,
    built: dict[str, Policy],
    *,
    state: StateStore | None = None,
    pipeline: str = "",
) -> Policy:
    if key == "fallback":
        return _fallback(value, clock)
    if key == "timeout":
        return _timeout(value, "total", clock)
    if key == "attempt_timeout":
        return _timeout(value, "attempt", clock)
    if key == "retry":
        return _retry(value, clock, state, f"{pipeline}/retry")
    if key == "circuit_breaker":
        store = None if state is None else state.breaker_store(f"{pipeline}/circuit_breaker")
        return _breaker(value, clock, store)
    if key == "hedge":
        # Hedges draw on the same budget as the pipeline's retries, when there is one.
        retry = built.get("retry")
        budget: Any = retry.budget if isinstance(retry, Retry) else None
        return Hedge(
            delay=value.delay,
            max_hedges=value.max_hedges,
            percentile=value.percentile,
            threads=value.threads,
            budget=budget if budget is not None else RetryBudget(clock=clock),
            # A shared budget already counts each call through the retry; counting it again in
            # the hedge would double the retries the budget allows.
            count_requests=budget is None,
            clock=clock,
        )
    if key == "bulkhead":
        return Bulkhead(
            value.max_concurrent, max_queue=value.max_queue, max_wait=value.max_wait, clock=clock
        )
    if key == "rate_limit":
        return RateLimiter(
            value.rate,
            per=value.per,
            burst=value.burst,
            mode=value.mode,
            max_wait=value.max_wait,
            max_keys=value.max_keys,
            store=(
                None
                if state is None
                else state.bucket_store(f"{pipeline}/rate_limit", max_keys=value.max_keys)
            ),
            clock=clock,
        )
    if key == "adaptive_limit":
        return _adaptive(value, clock)
    if key == "load_shedding":
        adaptive = built.get("adaptive_limit")
        return _shedder(value, adaptive if isinstance(adaptive, AdaptiveLimit) else None, clock)
    raise SpecError(f"no builder for policy key {key!r}", field=key)


def _policies(
    name: str,
    spec: PipelineSpec,
    clock: Clock,
    doc: Document | None,
    state: StateStore | None = None,
) -> list[Policy]:
    built: dict[str, Policy] = {}
    # Keys in declaration order, so `order: given` keeps the file's order.  Some policies are built
    # first because others refer to them: load shedding may follow the adaptive limit, hedges share
    # the retry's budget.
    keys = [
        k
        for k in spec.declared_keys()
        if k not in ("order", "state") and getattr(spec, k, None) is not None
    ]
    first = ("adaptive_limit", "retry")
    for key in sorted(keys, key=lambda k: k not in first):
        try:
            built[key] = _policy(key, getattr(spec, key), clock, built, state=state, pipeline=name)
        except ConfigError as e:
            # The models check what they can; whatever a policy still refuses points at the file.
            loc: tuple[str, ...] = ("policies", name, key)
            param = str(e.parameter).split("[", 1)[0].split(".", 1)[0]
            if doc is not None and (*loc, param) in doc.keys:
                loc = (*loc, param)
            message = f"invalid {e.parameter}={e.value!r}: {e.reason}"
            if doc is not None:
                raise doc.error(loc, message) from None
            raise SpecError(message, field=".".join(loc)) from None
    return [built[k] for k in keys]


def _state(
    spec: ReliabilitySpec, name: str, pspec: PipelineSpec, clock: Clock
) -> StateStore | None:
    """The pipeline's shared state store (its own ``state:``, else the file's); ``None`` for the
    default in-memory state, so the policies keep their own stores."""
    from buttress.state.memory import MemoryState
    from buttress.state.spec import build_state

    sspec = pspec.state if pspec.state is not None else getattr(spec, "state", None)
    if sspec is None:
        return None
    try:
        state = build_state(sspec, service=spec.service, clock=clock)
    except ConfigError as e:
        loc: tuple[str, ...] = (
            ("policies", name, "state") if pspec.state is not None else ("state",)
        )
        message = f"invalid {e.parameter}={e.value!r}: {e.reason}"
        if spec.document is not None:
            raise spec.document.error((*loc, e.parameter), message) from None
        raise SpecError(message, field=".".join((*loc, e.parameter))) from None
    return None if isinstance(state, MemoryState) else state


def build_pipeline(spec: ReliabilitySpec, name: str, *, clock: Clock = SYSTEM_CLOCK) -> Pipeline:
    """Build the pipeline declared as ``policies.<name>``; its policies read ``clock``."""
    try:
        pspec = spec.policies[name]
    except KeyError:
        known = ", ".join(sorted(spec.policies)) or "none declared"
        raise SpecError(f"no pipeline named {name!r} (known: {known})", field="policies") from None
    policies = _policies(name, pspec, clock, spec.document, _state(spec, name, pspec, clock))
    return Pipeline(policies, name=name, order=pspec.order, clock=clock)


def build_pipelines(spec: ReliabilitySpec, *, clock: Clock = SYSTEM_CLOCK) -> dict[str, Pipeline]:
    """Every declared pipeline, by name."""
    return {name: build_pipeline(spec, name, clock=clock) for name in spec.policies}
