"""From declared pipelines to runtime :class:`~buttress.Pipeline` objects.

This module sits above what it builds: the policies, the pipeline and the state stores
(:mod:`buttress.state`, which reads the ``state:`` model without importing this package).
"""

from __future__ import annotations

from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, SpecError
from buttress.options import Options
from buttress.pipeline import Pipeline
from buttress.policies.base import Policy
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.budget import Budget, RetryBudgetOptions, TokenBucketOptions, build_budget
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.fallback import Fallback
from buttress.policies.hedge import Hedge, HedgeOptions
from buttress.policies.limits import AdaptiveLimit
from buttress.policies.ratelimit import RateLimiter
from buttress.policies.retry import Retry, RetryOptions
from buttress.policies.shed import LoadShedder, LoadShedderOptions
from buttress.policies.timeout import Timeout
from buttress.state.base import StateStore

from .document import ReliabilitySpecBase
from .options import OptionsModel
from .policies import LoadSheddingSpec, PipelineSpec
from .source import Document

__all__ = ["build_pipeline", "build_pipelines"]

# The policy each key of a pipeline builds, from its options.
_SIMPLE: dict[str, type[Policy]] = {
    "fallback": Fallback,
    "bulkhead": Bulkhead,
    "adaptive_limit": AdaptiveLimit,
}


def _budget(options: object, clock: Clock, state: StateStore | None, scope: str) -> Budget | None:
    if state is not None and isinstance(options, TokenBucketOptions):
        # shared state (buttress.state): same rules, fleet-wide
        return state.token_bucket_budget(scope, **options.as_kwargs(), clock=clock)
    if state is not None and isinstance(options, RetryBudgetOptions):
        kw = options.as_kwargs()
        kw.pop("slices")  # the shared budget keeps its own slicing
        return state.retry_budget(scope, **kw, clock=clock)
    return build_budget(None, options, clock)


def _policy(
    key: str,
    value: OptionsModel,
    clock: Clock,
    built: dict[str, Policy],
    *,
    state: StateStore | None = None,
    pipeline: str = "",
) -> Policy:
    options: Options = value.to_options()
    wiring: dict[str, Any] = {"clock": clock}
    if key in _SIMPLE:
        return _SIMPLE[key].from_options(options, **wiring)
    if key in ("timeout", "attempt_timeout"):
        scope = "total" if key == "timeout" else "attempt"
        return Timeout.from_options(options.replace(scope=scope), **wiring)
    if key == "retry":
        assert isinstance(options, RetryOptions)
        budget = _budget(options.budget, clock, state, f"{pipeline}/retry")
        return Retry.from_options(options, budget=budget, **wiring)
    if key == "circuit_breaker":
        if state is not None:
            wiring["store"] = state.breaker_store(f"{pipeline}/circuit_breaker")
        return CircuitBreaker.from_options(options, **wiring)
    if key == "hedge":
        assert isinstance(options, HedgeOptions)
        # Hedges draw on the same budget as the pipeline's retries, when there is one; a shared
        # budget already counts each call through the retry, and counting it again in the hedge
        # would double the retries the budget allows.
        retry = built.get("retry")
        shared = retry.budget if isinstance(retry, Retry) else None
        if shared is not None:
            wiring.update(budget=shared, count_requests=False)
        return Hedge.from_options(options, **wiring)
    if key == "rate_limit":
        if state is not None:
            wiring["store"] = state.bucket_store(
                f"{pipeline}/rate_limit", max_keys=options.as_kwargs()["max_keys"]
            )
        return RateLimiter.from_options(options, **wiring)
    if key == "load_shedding":
        assert isinstance(options, LoadShedderOptions) and isinstance(value, LoadSheddingSpec)
        if value.capacity == "adaptive_limit":  # type: ignore[attr-defined]
            adaptive = built.get("adaptive_limit")
            if not isinstance(adaptive, AdaptiveLimit):
                raise ConfigError(
                    "capacity", "adaptive_limit", "needs an adaptive_limit: in the same pipeline"
                )
            options = options.replace(capacity=adaptive)
        return LoadShedder.from_options(options, **wiring)
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
    spec: ReliabilitySpecBase, name: str, pspec: PipelineSpec, clock: Clock
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


def build_pipeline(
    spec: ReliabilitySpecBase, name: str, *, clock: Clock = SYSTEM_CLOCK
) -> Pipeline:
    """Build the pipeline declared as ``policies.<name>``; its policies read ``clock``."""
    try:
        pspec = spec.policies[name]
    except KeyError:
        known = ", ".join(sorted(spec.policies)) or "none declared"
        raise SpecError(f"no pipeline named {name!r} (known: {known})", field="policies") from None
    policies = _policies(name, pspec, clock, spec.document, _state(spec, name, pspec, clock))
    return Pipeline(policies, name=name, order=pspec.order, clock=clock)


def build_pipelines(
    spec: ReliabilitySpecBase, *, clock: Clock = SYSTEM_CLOCK
) -> dict[str, Pipeline]:
    """Every declared pipeline, by name."""
    return {name: build_pipeline(spec, name, clock=clock) for name in spec.policies}
