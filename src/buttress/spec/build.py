"""From declared pipelines to runtime :class:`~buttress.Pipeline` objects."""

from __future__ import annotations

from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, SpecError
from buttress.pipeline import Pipeline
from buttress.policies.backoff import Backoff
from buttress.policies.base import Policy
from buttress.policies.budget import Budget, RetryBudget, TokenBucketBudget
from buttress.policies.fallback import Fallback
from buttress.policies.retry import Retry
from buttress.policies.timeout import Timeout

from .document import ReliabilitySpec
from .policies import BudgetSpec, FallbackSpec, PipelineSpec, RetrySpec, TimeoutSpec
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


def _budget(spec: BudgetSpec | None, clock: Clock) -> Budget | None:
    if spec is None:
        return None
    if spec.mode == "token_bucket":
        return TokenBucketBudget(max_tokens=spec.max_tokens, token_ratio=spec.token_ratio)
    return RetryBudget(
        ratio=spec.ratio, min_per_second=spec.min_per_second, ttl=spec.ttl, clock=clock
    )


def _retry(spec: RetrySpec, clock: Clock) -> Retry:
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
        budget=_budget(spec.budget, clock),
        nested=spec.nested,
        retry_rejected=spec.retry_rejected,
        clock=clock,
    )


def _policy(key: str, value: Any, clock: Clock) -> Policy:
    if key == "fallback":
        return _fallback(value, clock)
    if key == "timeout":
        return _timeout(value, "total", clock)
    if key == "attempt_timeout":
        return _timeout(value, "attempt", clock)
    if key == "retry":
        return _retry(value, clock)
    raise SpecError(f"no builder for policy key {key!r}", field=key)


def _policies(name: str, spec: PipelineSpec, clock: Clock, doc: Document | None) -> list[Policy]:
    out: list[Policy] = []
    # Keys in declaration order, so `order: given` keeps the file's order.
    for key in spec.declared_keys():
        if key == "order" or getattr(spec, key, None) is None:
            continue
        try:
            out.append(_policy(key, getattr(spec, key), clock))
        except ConfigError as e:
            # The models check what they can; whatever a policy still refuses points at the file.
            loc = ("policies", name, key)
            message = f"invalid {e.parameter}={e.value!r}: {e.reason}"
            if doc is not None:
                raise doc.error(loc, message) from None
            raise SpecError(message, field=".".join(loc)) from None
    return out


def build_pipeline(spec: ReliabilitySpec, name: str, *, clock: Clock = SYSTEM_CLOCK) -> Pipeline:
    """Build the pipeline declared as ``policies.<name>``; its policies read ``clock``."""
    try:
        pspec = spec.policies[name]
    except KeyError:
        known = ", ".join(sorted(spec.policies)) or "none declared"
        raise SpecError(f"no pipeline named {name!r} (known: {known})", field="policies") from None
    policies = _policies(name, pspec, clock, spec.document)
    return Pipeline(policies, name=name, order=pspec.order, clock=clock)


def build_pipelines(spec: ReliabilitySpec, *, clock: Clock = SYSTEM_CLOCK) -> dict[str, Pipeline]:
    """Every declared pipeline, by name."""
    return {name: build_pipeline(spec, name, clock=clock) for name in spec.policies}
