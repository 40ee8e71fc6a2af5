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
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, ParamSpec, TypeVar, overload

from .clock import SYSTEM_CLOCK, Clock
from .context import Context, use_context
from .errors import ConfigError
from .events import CallFailed, CallSucceeded, Emitter, Listener
from .policies.backoff import Backoff
from .policies.base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .policies.budget import Budget
from .policies.fallback import Fallback
from .policies.retry import Retry
from .policies.timeout import Timeout

__all__ = ["Pipeline", "PipelineBuilder"]

P = ParamSpec("P")
T = TypeVar("T")

_DEFAULT_BUDGET = object()


def _order_of(policy: Policy) -> int:
    return int(policy.order)


class Pipeline:
    """An ordered chain of policies.

    Call it as ``pipeline.call(fn, *args, **kwargs)`` or ``await pipeline.call_async(fn, ...)``, or
    use it as a decorator on ``def`` and ``async def`` functions (the same object serves both).
    """

    __slots__ = ("_async", "_sync", "clock", "emitter", "name", "policies")

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
        asyn: AsyncNext = invoke_async
        for p in reversed(self.policies):
            sync = p.sync_layer(sync, self.emitter)
            asyn = p.async_layer(asyn, self.emitter)
        self._sync = sync
        self._async = asyn

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
            return self._observed(fn, args, kwargs)  # type: ignore[no-any-return]
        return self._sync(fn, args, kwargs)  # type: ignore[no-any-return]

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the pipeline."""
        if self.emitter.active:
            return await self._observed_async(fn, args, kwargs)  # type: ignore[no-any-return]
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

    def _observed(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        mono = self.clock.monotonic
        em = self.emitter
        t0 = mono()
        try:
            result = self._sync(fn, args, kwargs)
        except BaseException as exc:
            t1 = mono()
            em.emit(CallFailed(self.name, self.name, t1, t1 - t0, exc))
            raise
        t1 = mono()
        em.emit(CallSucceeded(self.name, self.name, t1, t1 - t0))
        return result

    async def _observed_async(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        mono = self.clock.monotonic
        em = self.emitter
        t0 = mono()
        try:
            result = await self._async(fn, args, kwargs)
        except BaseException as exc:
            t1 = mono()
            em.emit(CallFailed(self.name, self.name, t1, t1 - t0, exc))
            raise
        t1 = mono()
        em.emit(CallSucceeded(self.name, self.name, t1, t1 - t0))
        return result

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...
    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` (``def`` or ``async def``) so every call runs through the pipeline."""
        em = self.emitter
        if inspect.iscoroutinefunction(fn):
            achain = self._async
            aobserved = self._observed_async

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if em.active:
                    return await aobserved(fn, args, kwargs)
                return await achain(fn, args, kwargs)

            async_wrapper.__buttress_pipeline__ = self  # type: ignore[attr-defined]
            return async_wrapper

        chain = self._sync
        observed = self._observed

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if em.active:
                return observed(fn, args, kwargs)
            return chain(fn, args, kwargs)

        wrapper.__buttress_pipeline__ = self  # type: ignore[attr-defined]
        return wrapper


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

    def retry(
        self,
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: Budget | object | None = _DEFAULT_BUDGET,
        **options: Any,
    ) -> PipelineBuilder:
        """Add a :class:`~buttress.Retry`; ``budget`` defaults to a fresh
        :class:`~buttress.RetryBudget` on the builder's clock, ``None`` turns budgeting off."""
        kw: dict[str, Any] = {"attempts": attempts, "backoff": backoff, "clock": self._clock}
        if budget is not _DEFAULT_BUDGET:
            kw["budget"] = budget
        return self.add(Retry(**kw, **options))

    def timeout(self, seconds: float, **options: Any) -> PipelineBuilder:
        """Add a total :class:`~buttress.Timeout` (a deadline for the whole call, retries
        included)."""
        return self.add(Timeout(seconds, scope="total", clock=self._clock, **options))

    def attempt_timeout(self, seconds: float, **options: Any) -> PipelineBuilder:
        """Add a per-attempt :class:`~buttress.Timeout` (innermost by default; retryable)."""
        return self.add(Timeout(seconds, scope="attempt", clock=self._clock, **options))

    def fallback(self, value: Any = None, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.Fallback` answering ``value``, or ``handler=(context,
        error)``."""
        options.setdefault("clock", self._clock)
        if "handler" in options:
            return self.add(Fallback(**options))
        return self.add(Fallback(value, **options))

    def circuit_breaker(self, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.CircuitBreaker` (see its parameters)."""
        from .policies.breaker import CircuitBreaker

        options.setdefault("clock", self._clock)
        return self.add(CircuitBreaker(**options))

    def hedge(self, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.Hedge` (``delay=`` or ``percentile=``, ``max_hedges=``).

        Without ``budget=``, hedges draw on the budget of a retry already added to this builder
        (counting each call once: the retry deposits, the hedge only withdraws), else on a fresh
        :class:`~buttress.RetryBudget`.
        """
        from .policies.hedge import Hedge

        options.setdefault("clock", self._clock)
        if "budget" not in options:
            shared = next(
                (p.budget for p in self._policies if isinstance(p, Retry) and p.budget), None
            )
            if shared is not None:
                options["budget"] = shared
                options.setdefault("count_requests", False)
        return self.add(Hedge(**options))

    def bulkhead(self, max_concurrent: int = 10, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.Bulkhead` (``max_queue=``, ``max_wait=``)."""
        from .policies.bulkhead import Bulkhead

        options.setdefault("clock", self._clock)
        return self.add(Bulkhead(max_concurrent, **options))

    def rate_limit(self, rate: float, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.RateLimiter`: ``rate`` calls per ``per=`` seconds, ``burst=``."""
        from .policies.ratelimit import RateLimiter

        options.setdefault("clock", self._clock)
        return self.add(RateLimiter(rate, **options))

    def adaptive_limit(self, algorithm: Any = None, **options: Any) -> PipelineBuilder:
        """Add an :class:`~buttress.AdaptiveLimit` (Vegas unless ``algorithm`` says otherwise)."""
        from .policies.limits import AdaptiveLimit

        options.setdefault("clock", self._clock)
        return self.add(AdaptiveLimit(algorithm, **options))

    def load_shedding(self, capacity: Any = 100, **options: Any) -> PipelineBuilder:
        """Add a :class:`~buttress.LoadShedder` over ``capacity`` (a number or a limit)."""
        from .policies.shed import LoadShedder

        options.setdefault("clock", self._clock)
        return self.add(LoadShedder(capacity, **options))

    def build(self, *, order: Literal["default", "given"] = "default") -> Pipeline:
        """The pipeline: policies in the default order (outermost first), or ``order="given"``."""
        return Pipeline(self._policies, name=self._name, order=order, clock=self._clock)
