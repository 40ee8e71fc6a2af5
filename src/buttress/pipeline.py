"""Pipelines: policies composed once, run many times, from ``def`` and ``async def`` alike.

Default order, outermost first (each policy's ``order``)::

    fallback (10) > total timeout (20) > retry (30) > hedge (35) > circuit breaker (40)
    > rate limiter (50) > load shedding (55) > adaptive limit (58) > bulkhead (60)
    > attempt timeout (70) > injected faults (90)

Why this order: the fallback sees every failure, including a blown deadline; the total timeout
bounds the retries' sleeps; each retry attempt passes the breaker, so an open breaker stops retries
at once (:class:`~buttress.errors.Rejected` is never retried); limits and bulkheads count attempts,
not calls; an attempt timeout bounds one attempt only; injected faults sit innermost so the real
policies react to them.

``order="given"`` keeps the order you list instead.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar, overload

from .clock import SYSTEM_CLOCK, Clock
from .context import Context, use_context
from .errors import ConfigError
from .events import Emitter, Listener
from .policies.base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .policies.breaker import CircuitBreaker
from .policies.bulkhead import Bulkhead
from .policies.fallback import Fallback
from .policies.fused import fused_layer, fused_run_start
from .policies.hedge import Hedge
from .policies.limits import AdaptiveLimit
from .policies.ratelimit import RateLimiter
from .policies.retry import Retry
from .policies.shed import LoadShedder
from .policies.timeout import Timeout, TimeoutOptions
from .wrapping import Chains, decorate

__all__ = ["Pipeline", "PipelineBuilder"]

P = ParamSpec("P")
T = TypeVar("T")


def _order_of(policy: Policy) -> int:
    return int(policy.order)


def _async_chain(policies: tuple[Policy, ...], emitter: Emitter) -> AsyncNext:
    """The async layers, innermost first; two or more policies in a row that
    :mod:`~buttress.policies.fused` can run as one coroutine become one fused layer."""
    asyn: AsyncNext = invoke_async
    end = len(policies)
    while end > 0:
        start = fused_run_start(policies, end)
        if end - start >= 2:
            asyn = fused_layer(policies[start:end], asyn, emitter)
            end = start
        else:
            end -= 1
            asyn = policies[end].async_layer(asyn, emitter)
    return asyn


class Pipeline:
    """An ordered chain of policies.

    Call it as ``pipeline.call(fn, *args, **kwargs)`` or ``await pipeline.call_async(fn, ...)``, or
    use it as a decorator on ``def`` and ``async def`` functions (the same object serves both).
    """

    __slots__ = ("_async", "_chains", "_sync", "clock", "emitter", "name", "policies")

    def __init__(
        self,
        policies: Iterable[Policy],
        *,
        name: str = "pipeline",
        order: Literal["default", "given"] = "default",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        items = list(policies)
        for i, p in enumerate(items):
            if not isinstance(p, Policy):
                raise ConfigError(f"policies[{i}]", p, "is not a buttress policy")
        if order not in ("default", "given"):
            raise ConfigError("order", order, "must be 'default' or 'given'")
        if order == "default":
            items.sort(key=_order_of)  # stable: equal ranks keep the order given
        self.name = name
        self.policies: tuple[Policy, ...] = tuple(items)
        self.clock = clock
        self.emitter = Emitter(name)
        sync: SyncNext = invoke_sync
        for p in reversed(self.policies):
            sync = p.sync_layer(sync, self.emitter)
        asyn = _async_chain(self.policies, self.emitter)
        self._sync = sync
        self._async = asyn
        self._chains = Chains(name, sync, asyn, self.emitter, clock)

    @staticmethod
    def builder(name: str = "pipeline", *, clock: Clock = SYSTEM_CLOCK) -> PipelineBuilder:
        """A :class:`PipelineBuilder` whose policies all read ``clock``."""
        return PipelineBuilder(name, clock=clock)

    def __repr__(self) -> str:
        inner = " > ".join(f"{p.kind}:{p.name}" for p in self.policies) or "(empty)"
        return f"<Pipeline {self.name!r}: {inner}>"

    # -- listeners ---------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Listen to this pipeline's events only.  Returns a function that removes the listener."""
        self.emitter.add_listener(listener)
        return functools.partial(self.emitter.remove_listener, listener)

    # -- calling -----------------------------------------------------------------------------------

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the pipeline."""
        if self.emitter.active:
            return self._chains.observed(fn, args, kwargs)  # type: ignore[no-any-return]
        return self._sync(fn, args, kwargs)  # type: ignore[no-any-return]

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the pipeline."""
        if self.emitter.active:
            return await self._chains.observed_async(fn, args, kwargs)  # type: ignore[no-any-return]
        return await self._async(fn, args, kwargs)  # type: ignore[no-any-return]

    def call_with_context(
        self, context: Context, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like :meth:`call`, with ``context`` as the current call context (policies update it)."""
        if context.operation_key is None:
            context.operation_key = self.name
        with use_context(context):
            return self.call(fn, *args, **kwargs)

    async def call_async_with_context(
        self, context: Context, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        if context.operation_key is None:
            context.operation_key = self.name
        with use_context(context):
            return await self.call_async(fn, *args, **kwargs)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` (``def`` or ``async def``) so every call runs through the pipeline."""
        return decorate(self._chains, fn, self)


B = TypeVar("B", bound=Policy)
Prepare = Callable[["PipelineBuilder", tuple[Any, ...], dict[str, Any]], None]


def _adds(
    cls: Callable[P, B], prepare: Prepare | None = None
) -> Callable[Concatenate[PipelineBuilder, P], PipelineBuilder]:
    """A builder method with the signature of ``cls``'s constructor: it builds the policy (on the
    builder's clock unless ``clock=`` is given) and adds it."""

    def method(self: PipelineBuilder, /, *args: P.args, **kwargs: P.kwargs) -> PipelineBuilder:
        kwargs.setdefault("clock", self._clock)
        if prepare is not None:
            prepare(self, args, kwargs)
        return self.add(cls(*args, **kwargs))

    name = getattr(cls, "__name__", "policy")
    method.__doc__ = (
        f"Add a :class:`~buttress.{name}` built with these arguments (see its parameters); "
        "the builder's clock unless ``clock=`` is given."
    )
    return method


def _fallback_value(
    builder: PipelineBuilder, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # ``fallback()`` alone answers None, as it always has.
    if not args and "value" not in kwargs and kwargs.get("handler") is None:
        kwargs["value"] = None


def _share_budget(builder: PipelineBuilder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # Hedges draw on the budget of a retry already added (counting each call once: the retry
    # deposits, the hedge only withdraws), else on a fresh RetryBudget.
    if "budget" not in kwargs:
        shared = next(
            (p.budget for p in builder.policies if isinstance(p, Retry) and p.budget), None
        )
        if shared is not None:
            kwargs["budget"] = shared
            kwargs.setdefault("count_requests", False)


class PipelineBuilder:
    """Fluent construction:
    ``Pipeline.builder("payments").timeout(2).retry(attempts=3).build()``."""

    __slots__ = ("_clock", "_name", "_policies")

    def __init__(self, name: str = "pipeline", *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._name = name
        self._clock = clock
        self._policies: list[Policy] = []

    def add(self, policy: Policy) -> PipelineBuilder:
        if not isinstance(policy, Policy):
            raise ConfigError("policy", policy, "is not a buttress policy")
        self._policies.append(policy)
        return self

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies added so far, in the order given."""
        return tuple(self._policies)

    # One method per policy, named like its class, with its constructor's parameters.
    fallback = _adds(Fallback, _fallback_value)
    timeout = _adds(Timeout)
    retry = _adds(Retry)
    hedge = _adds(Hedge, _share_budget)
    circuit_breaker = _adds(CircuitBreaker)
    rate_limiter = _adds(RateLimiter)
    load_shedder = _adds(LoadShedder)
    adaptive_limit = _adds(AdaptiveLimit)
    bulkhead = _adds(Bulkhead)

    def attempt_timeout(
        self,
        seconds: float,
        *,
        hard: bool = TimeoutOptions.hard,
        max_workers: int = TimeoutOptions.max_workers,
        clock: Clock | None = None,
        name: str | None = None,
    ) -> PipelineBuilder:
        """Add a per-attempt :class:`~buttress.Timeout` (innermost by default; retryable)."""
        return self.add(
            Timeout(
                seconds,
                scope="attempt",
                hard=hard,
                max_workers=max_workers,
                clock=clock or self._clock,
                name=name,
            )
        )

    def rate_limit(self, rate: float, **options: Any) -> PipelineBuilder:
        """Deprecated name of :meth:`rate_limiter`."""
        warnings.warn("use PipelineBuilder.rate_limiter()", DeprecationWarning, stacklevel=2)
        return self.rate_limiter(rate, **options)

    def load_shedding(self, capacity: Any = 100, **options: Any) -> PipelineBuilder:
        """Deprecated name of :meth:`load_shedder`."""
        warnings.warn("use PipelineBuilder.load_shedder()", DeprecationWarning, stacklevel=2)
        return self.load_shedder(capacity, **options)

    def build(self, *, order: Literal["default", "given"] = "default") -> Pipeline:
        """The pipeline: policies in the default order (outermost first), or ``order="given"``."""
        return Pipeline(self._policies, name=self._name, order=order, clock=self._clock)
