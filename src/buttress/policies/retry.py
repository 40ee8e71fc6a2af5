"""Retry: try again, a bounded number of times, with backoff, within budget and deadline.

The decision (:meth:`Retry.decide`) is sans-I/O: given the attempt number, the times and the outcome
it returns a delay or the reason to give up.  Thin sync and asyncio executors drive it.

Order of checks after a failed attempt:

1. is the outcome retryable?  (``on`` types, ``retry_if`` / ``retry_if_result`` predicates; never a
   :class:`~buttress.errors.Rejected` unless ``retry_rejected=True``; never cancellation, interrupts
   or exits);
2. is this retry nested inside another one?  By default (``nested="single"``) the inner retry makes
   one attempt and leaves the decision to the outer one, so nested retries never multiply;
3. attempts left?  (``attempts`` counts *all* attempts, the first included);
4. the delay: the predicate's own delay (e.g. from ``Retry-After``) or the backoff's;
5. would sleeping pass ``max_elapsed`` or the deadline in force?  Then give up *now* with the last
   error;
6. does the retry budget allow one more retry?  If not, give up with the last error and emit
   ``budget_exhausted``.

The success path reads the clock once, makes one budget deposit and calls the function: no context
variable is set, no lock is taken, no event is built unless somebody listens.  Nesting is detected
on the failure path only, by looking for an enclosing retry on the call stack (same thread, same
task) and, for work handed to child tasks or threads with a copied context, in a context variable
that the async executor and the hard :class:`~buttress.Timeout` set.  An enclosing retry that cannot
retry (``attempts=1``) does not count.  Not detected: a *sync* retry whose work runs in a thread you
start yourself (the new thread has its own stack and the sync success path sets no context
variable).

Outcome-counting budgets (:class:`~buttress.policies.budget.TokenBucketBudget`) hear every success
and every *retryable* failure (as gRPC counts only failures with a retryable status); a nested retry
that leaves the decision to the outer one does not count its failure, so one failure is counted
once.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.clock import SYSTEM_CLOCK, Clock, check_clock
from buttress.context import CURRENT_CONTEXT, DEADLINE
from buttress.errors import Rejected
from buttress.events import (
    AttemptFailed,
    AttemptSucceeded,
    Emitter,
    GaveUp,
    RetryBudgetExhaustedEvent,
    RetryScheduled,
)
from buttress.options import (
    Options,
    callable_or_none,
    choice,
    custom,
    documented,
    duration,
    exceptions,
    flag,
    integer,
)

from .backoff import Backoff, BackoffOptions, backoff_options
from .base import FUSE_RETRY, AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .budget import (
    Budget,
    BudgetOptions,
    RetryBudget,
    RetryBudgetOptions,
    budget_options,
    build_budget,
)
from .retry_nesting import RETRY_CODES, RETRY_MARK, in_outer_retry

__all__ = ["Retry", "RetryOptions"]

# A predicate may answer: retry with backoff (True), do not retry (False / None), or retry after
# this many seconds (a float, e.g. parsed from Retry-After).
Verdict = bool | float | None
ExceptionPredicate = Callable[[BaseException], Verdict]
ResultPredicate = Callable[[Any], Verdict]

_NEVER_RETRY = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True, kw_only=True)
class RetryOptions(Options):
    """Options of :class:`Retry` (``retry:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "Retry"

    attempts: int = integer(3, "Total attempts, the first included", ge=1)
    max_elapsed: float | None = duration(
        None,
        "Give up rather than start a retry later than this many seconds after the first attempt "
        "started; None: no limit",
        optional=True,
    )
    on: tuple[type[BaseException], ...] = exceptions((Exception,), "Exception types to retry")
    retry_if: ExceptionPredicate | None = custom(
        None,
        "exc -> True | False | None | delay; refines on.  A number is the delay before the next "
        "attempt (for Retry-After); negative or NaN: at once; math.inf: do not retry",
        check=callable_or_none,
    )
    retry_if_result: ResultPredicate | None = custom(
        None,
        "result -> True | False | None | delay: retry on results too; when the retries run out "
        "the last result is returned",
        check=callable_or_none,
    )
    backoff: BackoffOptions = custom(
        BackoffOptions(),
        "The delay curve: a Backoff (or its BackoffOptions); exponential from 0.1 s, x2, capped "
        "at 10 s, full jitter",
        check=backoff_options,
        spec=True,
        shown="exponential 0.1 s x2, cap 10 s, full jitter",
    )
    budget: BudgetOptions | None = custom(
        RetryBudgetOptions(),
        "The retry budget: a Budget object to share one between policies, options for a fresh "
        "one, or None for none; default a fresh RetryBudget (20% of calls, at least 10/s)",
        check=budget_options,
        optional=True,
        spec=True,
        shown="RetryBudget(ratio=0.2, min_per_second=10, ttl=10 s)",
    )
    nested: Literal["single", "multiply"] = choice(
        "single",
        "Inside another retry: make one attempt and let the outer one decide (single), or retry "
        "independently (multiply)",
        ("single", "multiply"),
    )
    retry_rejected: bool = flag(
        False, "Also retry Rejected errors (an open breaker, a full bulkhead)"
    )


@documented(RetryOptions)
class Retry(Policy):
    """Retry failed calls.

    ``clock`` is where time is read and waits happen (tests pass a
    :class:`~buttress.testing.FakeClock`); ``name`` the ``policy`` label of its events.

    Events (``buttress_retry_<kind>``): ``attempt_succeeded``, ``attempt_failed``,
    ``scheduled`` (with the delay), ``budget_exhausted``, ``gave_up`` (with the reason:
    ``attempts``, ``elapsed``, ``deadline``, ``budget``, ``not_retryable`` or ``nested``).
    """

    kind: ClassVar[str] = "retry"
    order: ClassVar[int] = 30

    def __init__(
        self,
        *,
        attempts: int = RetryOptions.attempts,
        max_elapsed: float | None = RetryOptions.max_elapsed,
        on: type[BaseException] | tuple[type[BaseException], ...] = RetryOptions.on,
        retry_if: ExceptionPredicate | None = RetryOptions.retry_if,
        retry_if_result: ResultPredicate | None = RetryOptions.retry_if_result,
        backoff: Backoff | BackoffOptions | None = RetryOptions.backoff,
        budget: Budget | BudgetOptions | None = RetryOptions.budget,
        nested: Literal["single", "multiply"] = RetryOptions.nested,
        retry_rejected: bool = RetryOptions.retry_rejected,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "retry",
    ) -> None:
        o = self.options = RetryOptions.from_arguments(locals())
        check_clock(clock)
        self.attempts = o.attempts
        self.max_elapsed = o.max_elapsed
        self.on: tuple[type[BaseException], ...] = o.on
        self.retry_if = o.retry_if
        self.retry_if_result = o.retry_if_result
        self.backoff = backoff if isinstance(backoff, Backoff) else Backoff.from_options(o.backoff)
        self.budget: Budget | None = build_budget(budget, o.budget, clock)
        self.nested = o.nested
        self.retry_rejected = o.retry_rejected
        self.clock = clock
        self.name = name

    def __repr__(self) -> str:
        return (
            f"Retry(name={self.name!r}, attempts={self.attempts}, max_elapsed={self.max_elapsed}, "
            f"backoff={self.backoff!r}, budget={self.budget!r}, nested={self.nested!r})"
        )

    # -- the decision (sans-I/O) -------------------------------------------------------------------

    def verdict(self, exc: BaseException | None, result: Any) -> Verdict:
        """Is this outcome worth retrying?  ``exc`` is the error, or ``None`` for a returned
        result."""
        if exc is not None:
            if isinstance(exc, _NEVER_RETRY) or not isinstance(exc, self.on):
                return False
            if isinstance(exc, Rejected) and not self.retry_rejected:
                return False
            if self.retry_if is not None:
                return self.retry_if(exc)
            return True
        if self.retry_if_result is None:
            return False
        return self.retry_if_result(result)

    def decide(
        self,
        *,
        attempt: int,
        started: float,
        now: float,
        verdict: Verdict,
        previous_delay: float | None = None,
        deadline: float | None = None,
        nested: bool = False,
    ) -> float | str:
        """After failed attempt number ``attempt``: the delay before the next one, or why to give
        up.

        Reasons: ``not_retryable``, ``nested``, ``attempts``, ``elapsed``, ``deadline``.  The budget
        is asked separately (:meth:`_withdraw`), last, so that giving up for another reason costs no
        token.
        """
        if verdict is None or verdict is False:
            return "not_retryable"
        if nested and self.nested == "single":
            return "nested"
        if attempt >= self.attempts:
            return "attempts"
        if verdict is True:
            delay = self.backoff.delay(attempt, previous_delay)
        else:
            delay = float(verdict)
            if delay == math.inf:
                return "not_retryable"
            if not delay >= 0:  # negative or NaN: at once
                delay = 0.0
        at = now + delay
        if self.max_elapsed is not None and at - started > self.max_elapsed:
            return "elapsed"
        if deadline is not None and at >= deadline:
            return "deadline"
        return delay

    # -- executors ---------------------------------------------------------------------------------

    def fused_slot(self) -> int | None:
        # The fused layer covers the plain success path: no result to judge, a local budget.
        plain = self.retry_if_result is None
        return FUSE_RETRY if plain and type(self.budget) in (RetryBudget, type(None)) else None

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        on = self.on
        rif = self.retry_if_result
        budget = self.budget
        deposit = budget.on_request if budget is not None and budget.counts_requests else None
        outcomes = budget is not None and budget.counts_outcomes
        slow = self._sync_slow(nxt, emitter)
        em = emitter
        # Hot-path specialisations, decided once here rather than on every call.
        direct = nxt is invoke_sync  # innermost: call the function itself, skip one layer
        plain = rif is None and not outcomes
        ring = budget if isinstance(budget, RetryBudget) else None
        if ring is not None:
            deposit = None

        def retry_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            if ring is not None:
                # RetryBudget.on_request, inlined: a lock-free increment of the current slice.
                cur = ring.current
                if now < cur.end:
                    cur.deposits += 1
                else:
                    ring.advance(now).deposits += 1
            elif deposit is not None:
                deposit(now)
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except on as exc:
                return slow(fn, args, kwargs, now, exc)
            if not plain:
                if rif is not None:
                    v = rif(result)
                    if v is not None and v is not False:
                        return slow(fn, args, kwargs, now, None, result=result, verdict=v)
                if outcomes:
                    budget.on_success()  # type: ignore[union-attr]
            if em.active:
                em.emit(AttemptSucceeded(em.pipeline, self.name, mono(), 1))
            return result

        return retry_call

    def _sync_slow(self, nxt: SyncNext, emitter: Emitter) -> Callable[..., Any]:
        sleep = self.clock.sleep
        on = self.on
        em = emitter

        def retry_slow(
            fn: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            started: float,
            exc: BaseException | None,
            *,
            result: Any = None,
            verdict: Verdict = None,
        ) -> Any:
            # The frame that called the executor: retry_slow <- retry_call <- caller.
            run = _Retrying(self, em, started, sys._getframe(2))
            while (delay := run.failed(exc, result, verdict)) is not None:
                sleep(delay)
                try:
                    result = nxt(fn, args, kwargs)
                except on as e:
                    exc, result = e, None
                    continue
                exc = None
                verdict = run.returned(result)
                if verdict is None:
                    return result
            return run.gave_up(exc, result)

        return retry_slow

    def _after_failure(
        self,
        em: Emitter,
        attempt: int,
        *,
        started: float,
        now: float,
        verdict: Verdict,
        previous_delay: float | None,
        exc: BaseException | None,
        result: Any,
        nested: bool,
        counts_failures: bool,
    ) -> float | None:
        """One failed attempt, for both executors: count it in an outcome budget, report it,
        decide.  The delay before the next attempt, or ``None`` to give up (the executor then
        raises ``exc`` or returns ``result``)."""
        if counts_failures and verdict is not None and verdict is not False:
            self.budget.on_failure()  # type: ignore[union-attr]
        name = self.name
        if em.active:
            em.emit(AttemptFailed(em.pipeline, name, now, attempt, exc, result))
        decision = self.decide(
            attempt=attempt,
            started=started,
            now=now,
            verdict=verdict,
            previous_delay=previous_delay,
            deadline=DEADLINE.get(),
            nested=nested,
        )
        if isinstance(decision, float) and not self._withdraw(now, attempt, em):
            decision = "budget"
        if isinstance(decision, str):
            if em.active:
                em.emit(GaveUp(em.pipeline, name, now, attempt, decision, exc))
            return None
        if em.active:
            em.emit(RetryScheduled(em.pipeline, name, now, attempt, decision, exc))
        return decision

    def _withdraw(self, now: float, attempt: int, em: Emitter) -> bool:
        budget = self.budget
        if budget is None or budget.try_withdraw(now):
            return True
        if em.active:
            em.emit(RetryBudgetExhaustedEvent(em.pipeline, self.name, now, attempt))
        return False

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        on = self.on
        rif = self.retry_if_result
        budget = self.budget
        deposit = budget.on_request if budget is not None and budget.counts_requests else None
        outcomes = budget is not None and budget.counts_outcomes
        em = emitter
        mark_var = RETRY_MARK
        # Only a retry that can retry marks its attempts as nested territory.
        marks = self.attempts > 1
        # The sync layer's hot-path specialisations, twins of retry_call's.
        direct = nxt is invoke_async
        plain = rif is None and not outcomes
        ring = budget if isinstance(budget, RetryBudget) else None
        if ring is not None:
            deposit = None
        slow = self.async_retries(nxt, emitter)

        async def retry_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            started = mono()
            if ring is not None:
                # RetryBudget.on_request, inlined (as in the sync layer).
                cur = ring.current
                if started < cur.end:
                    cur.deposits += 1
                else:
                    ring.advance(started).deposits += 1
            elif deposit is not None:
                deposit(started)
            if marks:
                mark = [True, mark_var.get()]
                token = mark_var.set(mark)
                # The mark is withdrawn on each way out by hand rather than in a ``finally``:
                # the success path then runs no cleanup block (measured: about 30 ns a call).
                try:
                    result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
                except BaseException as e:
                    mark[0] = False
                    mark_var.reset(token)
                    if isinstance(e, on):  # after the attempt has ended: not nested in itself
                        return await slow(fn, args, kwargs, started, e)
                    raise
                mark[0] = False
                mark_var.reset(token)
            else:
                try:
                    result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
                except on as e:
                    return await slow(fn, args, kwargs, started, e)
            if not plain:
                if rif is not None:
                    verdict = rif(result)
                    if verdict is not None and verdict is not False:
                        return await slow(
                            fn, args, kwargs, started, None, result=result, verdict=verdict
                        )
                if outcomes:
                    budget.on_success()  # type: ignore[union-attr]
            if em.active:
                # ``self``, not a copy of its name: in_outer_retry reads ``self`` from this frame.
                em.emit(AttemptSucceeded(em.pipeline, self.name, mono(), 1))
            return result

        return retry_call_async

    def async_retries(self, nxt: AsyncNext, emitter: Emitter) -> Callable[..., Awaitable[Any]]:
        """The async executor after a failed first attempt (the sync ``retry_slow``, with each
        attempt marked in :data:`RETRY_MARK`): ``await retries(fn, args, kwargs, started, exc)``
        runs the next attempts through ``nxt``.  The async layer calls it, and so does
        :mod:`buttress.policies.fused` (from a frame at the same depth: it finds the caller of
        the layer two frames up)."""
        asleep = self.clock.sleep_async
        on = self.on
        em = emitter
        mark_var = RETRY_MARK
        marks = self.attempts > 1

        async def retry_slow_async(
            fn: Callable[..., Awaitable[Any]],
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            started: float,
            exc: BaseException | None,
            *,
            result: Any = None,
            verdict: Verdict = None,
        ) -> Any:
            # The frame that called the executor: retry_slow_async <- retry_call_async <- caller.
            run = _Retrying(self, em, started, sys._getframe(2))
            while (delay := run.failed(exc, result, verdict)) is not None:
                await asleep(delay)
                exc = None
                if marks:
                    mark = [True, mark_var.get()]
                    token = mark_var.set(mark)
                try:
                    result = await nxt(fn, args, kwargs)
                except on as e:
                    exc, result = e, None
                finally:
                    if marks:
                        mark[0] = False
                        mark_var.reset(token)
                if exc is None:
                    verdict = run.returned(result)
                    if verdict is None:
                        return result
            return run.gave_up(exc, result)

        return retry_slow_async


class _Retrying:
    """One call's attempts after its first failed, for both executors: counts, reports and
    decides (through :meth:`Retry._after_failure` and :meth:`Retry.decide`), sans-I/O.  The
    executor sleeps, runs the next attempt and hands its outcome to :meth:`failed` or
    :meth:`returned`."""

    __slots__ = ("attempt", "counts_failures", "ctx", "em", "nested", "policy", "prev", "started")

    def __init__(self, policy: Retry, em: Emitter, started: float, caller: Any) -> None:
        self.policy = policy
        self.em = em
        self.started = started
        self.nested = in_outer_retry(caller)
        budget = policy.budget
        self.counts_failures = (
            budget is not None
            and budget.counts_outcomes
            and not (self.nested and policy.nested == "single")
        )
        self.attempt = 1
        self.prev: float | None = None
        self.ctx = CURRENT_CONTEXT.get()

    def failed(self, exc: BaseException | None, result: Any, verdict: Verdict) -> float | None:
        """The current attempt raised ``exc`` (or returned ``result``, judged ``verdict``): the
        delay before the next attempt (now counted), or ``None`` to give up.  Cancellations,
        interrupts and exits are raised at once."""
        p = self.policy
        if exc is not None:
            if isinstance(exc, _NEVER_RETRY):
                raise exc
            verdict = p.verdict(exc, None)
        delay = p._after_failure(
            self.em,
            self.attempt,
            started=self.started,
            now=p.clock.monotonic(),
            verdict=verdict,
            previous_delay=self.prev,
            exc=exc,
            result=result,
            nested=self.nested,
            counts_failures=self.counts_failures,
        )
        if delay is not None:
            self.prev = delay
            self.attempt += 1
            if self.ctx is not None:
                self.ctx.attempt = self.attempt
        return delay

    @staticmethod
    def gave_up(exc: BaseException | None, result: Any) -> Any:
        """The call's outcome once the retries stop: the last error raised, else the last
        result (one that ``retry_if_result`` wanted retried)."""
        if exc is not None:
            raise exc
        return result

    def returned(self, result: Any) -> Verdict:
        """The current attempt returned ``result``: its verdict if it is worth retrying, else
        ``None`` (a success, counted and reported)."""
        p, em = self.policy, self.em
        rif = p.retry_if_result
        if rif is not None:
            verdict = rif(result)
            if verdict is not None and verdict is not False:
                return verdict
        if p.budget is not None and p.budget.counts_outcomes:
            p.budget.on_success()
        if em.active:
            em.emit(AttemptSucceeded(em.pipeline, p.name, p.clock.monotonic(), self.attempt))
        return None


def _register_codes() -> None:
    probe = Retry(budget=None)
    em = Emitter("_probe")

    def nop(fn: Any, args: Any, kwargs: Any) -> None:
        return None

    async def anop(fn: Any, args: Any, kwargs: Any) -> None:
        return None

    for layer in (
        probe.sync_layer(nop, em),
        probe._sync_slow(nop, em),
        probe.async_layer(anop, em),
        probe.async_retries(anop, em),
    ):
        RETRY_CODES.add(layer.__code__)


_register_codes()
