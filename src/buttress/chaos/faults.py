"""In-process faults as pipeline policies (after Polly's Simmy).

Each fault is a :class:`~buttress.policies.base.Policy` with order rank 90, so by default it sits
innermost, right around your function, and the real policies (timeouts, retries, breakers,
fallbacks) react to it exactly as they would to the real failure::

    pipeline = Pipeline([Retry(attempts=3), FaultError(ConnectionError("chaos"), rate=0.3)])

Four kinds:

* :class:`FaultError`: raise an error instead of calling the function;
* :class:`FaultResult`: return a value instead of calling the function;
* :class:`FaultLatency`: wait, then call the function;
* :class:`FaultBehavior`: run a callable (sync or async), then call the function.

When a fault acts, on each call:

* ``enabled`` is False (settable at run time): never;
* else, if ``when`` was given: ``when()`` is true (a callable), or the next item of ``when`` is true
  (an iterable; once exhausted, never), so a per-call schedule such as ``[True, False, True]`` or
  ``itertools.cycle([False, False, True])`` is exact;
* else with probability ``rate``: ``rate == 0`` never draws and never acts, ``rate == 1`` never
  draws and always acts, otherwise ``random() < rate`` with ``random()`` uniform on [0, 1).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Emitter, Event
from buttress.policies.base import AsyncNext, Policy, SyncNext

__all__ = ["Fault", "FaultBehavior", "FaultError", "FaultInjected", "FaultLatency", "FaultResult"]


@dataclass(frozen=True, slots=True)
class FaultInjected(Event):
    """A fault acted on a call; ``fault`` is its kind (``error``, ``result``, ``latency``,
    ``behavior``)."""

    policy_type: ClassVar[str] = "chaos"
    kind: ClassVar[str] = "fault_injected"
    fault: str


class Fault(Policy):
    """Base of in-process faults: the decision of *whether* to act (see the module docstring).

    :param rate: probability in [0, 1] that a call is hit.  Default 1.0.
    :param when: a per-call schedule instead of ``rate``: a callable returning a bool, or an
        iterable of bools consumed one per call.
    :param enabled: the switch; may be flipped at run time (``fault.enabled = False``).
    :param seed: seed for the draws, for repeatable runs.
    """

    kind: ClassVar[str] = "fault"
    order: ClassVar[int] = 90
    fault: ClassVar[str] = "fault"

    def __init__(
        self,
        *,
        rate: float = 1.0,
        when: Callable[[], bool] | Iterable[bool] | None = None,
        enabled: bool = True,
        seed: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str | None = None,
    ) -> None:
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or math.isnan(rate)
            or not 0.0 <= rate <= 1.0
        ):
            raise ConfigError("rate", rate, "must be a probability in [0, 1]")
        self.rate = float(rate)
        self.enabled = bool(enabled)
        self.clock = clock
        self.name = name or f"fault_{self.fault}"
        self._random = random.Random(seed)
        self._when_fn: Callable[[], bool] | None = None
        self._when_it: Iterator[bool] | None = None
        self._when_lock = threading.Lock()
        if when is not None:
            if callable(when):
                self._when_fn = when
            elif isinstance(when, Iterable):
                self._when_it = iter(when)
            else:
                raise ConfigError("when", when, "must be a callable or an iterable of bools")
        self.injected = 0

    def should_inject(self) -> bool:
        """Decide for one call (and count it when the answer is yes)."""
        if not self.enabled:
            return False
        if self._when_fn is not None:
            hit = bool(self._when_fn())
        elif self._when_it is not None:
            with self._when_lock:
                hit = bool(next(self._when_it, False))
        elif self.rate >= 1.0:
            hit = True
        elif self.rate <= 0.0:
            hit = False
        else:
            hit = self._random.random() < self.rate
        if hit:
            self.injected += 1
        return hit

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, rate={self.rate:g}, enabled={self.enabled})"
        )

    def _emit(self, em: Emitter) -> None:
        if em.active:
            em.emit(FaultInjected(em.pipeline, self.name, self.clock.monotonic(), self.fault))

    # Subclasses implement these two: what to do when the fault acts.
    def _act_sync(self, nxt: SyncNext, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        raise AssertionError("subclass responsibility")  # pragma: no cover

    async def _act_async(
        self, nxt: AsyncNext, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        raise AssertionError("subclass responsibility")  # pragma: no cover

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        decide = self.should_inject
        act = self._act_sync
        emit = self._emit

        def fault_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if decide():
                emit(emitter)
                return act(nxt, fn, args, kwargs)
            return nxt(fn, args, kwargs)

        return fault_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        decide = self.should_inject
        act = self._act_async
        emit = self._emit

        async def fault_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if decide():
                emit(emitter)
                return await act(nxt, fn, args, kwargs)
            return await nxt(fn, args, kwargs)

        return fault_call_async


class _Instead(Fault):
    """A fault that answers without calling, the same way on both paths: :meth:`instead`."""

    def instead(self) -> Any:
        """The answer (or the exception raised) in place of the call."""
        raise AssertionError("subclass responsibility")  # pragma: no cover

    def _act_sync(self, nxt: SyncNext, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        return self.instead()

    async def _act_async(
        self, nxt: AsyncNext, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        return self.instead()


class FaultError(_Instead):
    """Raise instead of calling: ``error`` is an exception instance, an exception class
    (instantiated with no arguments) or a factory returning an exception (a fresh one per call, so
    tracebacks do not pile up)."""

    fault: ClassVar[str] = "error"

    def __init__(
        self,
        error: BaseException | type[BaseException] | Callable[[], BaseException],
        **options: Any,
    ) -> None:
        if not (isinstance(error, BaseException) or callable(error)):
            raise ConfigError(
                "error", error, "must be an exception, an exception class or a factory"
            )
        super().__init__(**options)
        self.error = error

    def make_error(self) -> BaseException:
        e = self.error
        if isinstance(e, BaseException):
            return e
        made = e()
        if not isinstance(made, BaseException):
            raise ConfigError("error", e, f"the factory returned {made!r}, not an exception")
        return made

    def instead(self) -> Any:
        raise self.make_error()


class FaultResult(_Instead):
    """Return ``value`` instead of calling (``factory()`` per call when a factory is given)."""

    fault: ClassVar[str] = "result"

    def __init__(
        self, value: Any = None, *, factory: Callable[[], Any] | None = None, **options: Any
    ) -> None:
        if factory is not None and not callable(factory):
            raise ConfigError("factory", factory, "must be callable")
        super().__init__(**options)
        self.value = value
        self.factory = factory

    def instead(self) -> Any:
        return self.factory() if self.factory is not None else self.value


class FaultLatency(Fault):
    """Wait, then call.  ``seconds`` is fixed, or a ``(low, high)`` pair drawn uniformly per call.

    The wait goes through the clock (``clock.sleep`` / ``clock.sleep_async``), so a fake clock makes
    it instant in tests and an enclosing asyncio timeout cancels it.
    """

    fault: ClassVar[str] = "latency"

    def __init__(self, seconds: float | tuple[float, float], **options: Any) -> None:
        if isinstance(seconds, tuple):
            if len(seconds) != 2 or not all(
                isinstance(x, int | float) and 0 <= x < math.inf for x in seconds
            ):
                raise ConfigError("seconds", seconds, "a range must be (low, high), finite, >= 0")
            if seconds[0] > seconds[1]:
                raise ConfigError("seconds", seconds, "low must not exceed high")
            low, high = float(seconds[0]), float(seconds[1])
        elif (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not (0 <= seconds < math.inf)
        ):
            raise ConfigError("seconds", seconds, "must be a finite number of seconds >= 0")
        else:
            low = high = float(seconds)
        super().__init__(**options)
        self.low = low
        self.high = high

    def delay(self) -> float:
        """The wait for one call: ``low`` when fixed, else uniform on [low, high]."""
        if self.low == self.high:
            return self.low
        return self._random.uniform(self.low, self.high)

    def _act_sync(self, nxt: SyncNext, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        self.clock.sleep(self.delay())
        return nxt(fn, args, kwargs)

    async def _act_async(
        self, nxt: AsyncNext, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        await self.clock.sleep_async(self.delay())
        return await nxt(fn, args, kwargs)


class FaultBehavior(Fault):
    """Run ``behavior()`` (sync, or async in async pipelines), then call the function.

    Use it for side effects: drop a cache, kill a connection pool, fill a disk.  A behavior that
    returns an awaitable is refused (ConfigError) when called through a sync pipeline.
    """

    fault: ClassVar[str] = "behavior"

    def __init__(self, behavior: Callable[[], Any], **options: Any) -> None:
        if not callable(behavior):
            raise ConfigError("behavior", behavior, "must be callable")
        super().__init__(**options)
        self.behavior = behavior

    def _act_sync(self, nxt: SyncNext, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        out = self.behavior()
        if inspect.isawaitable(out):
            if asyncio.iscoroutine(out):
                out.close()
            raise ConfigError(
                "behavior", self.behavior, "returned an awaitable; use it in async pipelines only"
            )
        return nxt(fn, args, kwargs)

    async def _act_async(
        self, nxt: AsyncNext, fn: Callable[..., Awaitable[Any]], args: Any, kwargs: Any
    ) -> Any:
        out = self.behavior()
        if asyncio.iscoroutine(out) or isinstance(out, asyncio.Future):
            await out
        return await nxt(fn, args, kwargs)
