"""From declared pipelines to runtime :class:`~buttress.Pipeline` objects."""

from __future__ import annotations

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import SpecError
from ..pipeline import Pipeline
from ..policies.backoff import Backoff
from ..policies.base import Policy
from ..policies.budget import Budget, RetryBudget, TokenBucketBudget
from ..policies.fallback import Fallback
from ..policies.retry import Retry
from ..policies.timeout import Timeout
from .document import ReliabilitySpec
from .policies import PipelineSpec, resolve_exception

__all__ = ["build_pipeline", "build_pipelines"]


def _policies(name: str, spec: PipelineSpec, clock: Clock) -> list[Policy]:
    out: list[Policy] = []
    # Keys in declaration order, so `order: given` keeps the file's order.
    declared = [k for k in spec.declared_keys() if getattr(spec, k, None) is not None]
    for key in declared:
        value = getattr(spec, key)
        if key == "order":
            continue
        if key == "fallback":
            out.append(
                Fallback(
                    value.value,
                    on=tuple(resolve_exception(n) for n in value.on),
                    on_rejected=value.on_rejected,
                )
            )
        elif key in ("timeout", "attempt_timeout"):
            out.append(
                Timeout(
                    value.seconds,
                    scope="total" if key == "timeout" else "attempt",
                    hard=value.hard,
                    clock=clock,
                )
            )
        elif key == "retry":
            b = value.backoff
            budget: Budget | None
            if value.budget is None or value.budget is False:
                budget = None
            elif value.budget.mode == "token_bucket":
                budget = TokenBucketBudget(
                    max_tokens=value.budget.max_tokens, token_ratio=value.budget.token_ratio
                )
            else:
                budget = RetryBudget(
                    ratio=value.budget.ratio,
                    min_per_second=value.budget.min_per_second,
                    ttl=value.budget.ttl,
                    clock=clock,
                )
            out.append(
                Retry(
                    attempts=value.attempts,
                    max_elapsed=value.max_elapsed,
                    on=tuple(resolve_exception(n) for n in value.on),
                    backoff=Backoff(
                        b.kind,
                        base=b.base,
                        multiplier=b.multiplier,
                        step=b.step,
                        cap=b.cap,
                        jitter=b.jitter,
                    ),
                    budget=budget,
                    nested=value.nested,
                    retry_rejected=value.retry_rejected,
                    clock=clock,
                )
            )
    return out


def build_pipeline(spec: ReliabilitySpec, name: str, *, clock: Clock = SYSTEM_CLOCK) -> Pipeline:
    """Build the pipeline declared as ``policies.<name>``."""
    try:
        pspec = spec.policies[name]
    except KeyError:
        known = ", ".join(sorted(spec.policies)) or "none declared"
        raise SpecError(f"no pipeline named {name!r} (known: {known})", field="policies") from None
    return Pipeline(_policies(name, pspec, clock), name=name, order=pspec.order, clock=clock)


def build_pipelines(spec: ReliabilitySpec, *, clock: Clock = SYSTEM_CLOCK) -> dict[str, Pipeline]:
    """Every declared pipeline, by name."""
    return {name: build_pipeline(spec, name, clock=clock) for name in spec.policies}
