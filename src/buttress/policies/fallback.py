"""Fallback: when the call fails (or is refused, or returns a bad result), answer something else.

``value=`` returns a fixed value; ``handler=`` is called with the :class:`~buttress.context.Context`
and the error (``None`` when a result was rejected) and its return value is used; an ``async def``
handler is awaited on the async path (on the sync path it is refused with a clear error).

What triggers it, in this order: cancellation, ``KeyboardInterrupt``, ``SystemExit`` and
``GeneratorExit`` never; a :class:`~buttress.errors.Rejected` error as ``on_rejected`` says when it
is set (``True``: always, ``False``: never); otherwise an error that is an instance of ``on``; and a
result for which ``on_result`` returns true.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import current_context
from buttress.errors import ConfigError, Rejected
from buttress.events import Emitter, FallbackUsed
from buttress.options import Options, callable_or_none, custom, documented, exceptions, flag

from .base import AsyncNext, Policy, SyncNext, invoke_sync

__all__ = ["Fallback", "FallbackOptions"]

_MISSING = object()
_NEVER = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


def _nonempty(name: str, v: tuple[type[BaseException], ...]) -> tuple[type[BaseException], ...]:
    if not v:
        raise ConfigError(name, v, "must name at least one exception type")
    return v


@dataclass(frozen=True, kw_only=True)
class FallbackOptions(Options):
    """Options of :class:`Fallback` (``fallback:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "Fallback"

    value: Any = custom(None, "The value to answer with", spec=True)
    handler: Callable[[Any, BaseException | None], Any] | None = custom(
        None,
        "(context, error) -> value, sync or async, instead of a fixed value",
        check=callable_or_none,
    )
    on: tuple[type[BaseException], ...] = exceptions(
        (Exception,),
        "Exception types that trigger the fallback (Exception includes every Rejected)",
    )
    on_rejected: bool | None = flag(
        None,
        "None: rejections trigger the fallback when they match on; True: every Rejected does; "
        "False: none does, they pass through untouched",
        optional=True,
    )
    on_result: Callable[[Any], bool] | None = custom(
        None,
        "result -> bool: results to replace too (the handler then gets None as the error)",
        check=callable_or_none,
    )

    def check(self) -> None:
        _nonempty("on", self.on)


@documented(FallbackOptions)
class Fallback(Policy):
    """Replace a failure with a value: give ``value`` or ``handler``, not both."""

    kind: ClassVar[str] = "fallback"
    order: ClassVar[int] = 10

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        handler: Callable[[Any, BaseException | None], Any] | None = FallbackOptions.handler,
        on: type[BaseException] | tuple[type[BaseException], ...] = FallbackOptions.on,
        on_rejected: bool | None = FallbackOptions.on_rejected,
        on_result: Callable[[Any], bool] | None = FallbackOptions.on_result,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "fallback",
    ) -> None:
        if (value is _MISSING) == (handler is None):
            raise ConfigError(
                "handler" if value is _MISSING else "value",
                handler if value is _MISSING else value,
                "give exactly one of value= or handler=",
            )
        o = self.options = FallbackOptions(
            value=None if value is _MISSING else value,
            handler=handler,
            on=on,  # type: ignore[arg-type]
            on_rejected=on_rejected,
            on_result=on_result,
        )
        self.value = value
        self.handler = o.handler
        self.on = o.on
        self.on_rejected = o.on_rejected
        self.on_result = o.on_result
        self.clock = clock
        self.name = name
        self._catch: tuple[type[BaseException], ...] = (*o.on, Rejected) if o.on_rejected else o.on
        self._async_handler = handler is not None and inspect.iscoroutinefunction(handler)

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"Fallback({what}, on={self.on!r})"

    def applies(self, exc: BaseException) -> bool:
        """Does ``exc`` trigger the fallback?"""
        if isinstance(exc, _NEVER):
            return False
        if self.on_rejected is not None and isinstance(exc, Rejected):
            return self.on_rejected
        return isinstance(exc, self.on)

    def _sync_misuse(self) -> TypeError:
        return TypeError(
            f"fallback {self.name!r}: the handler {self.handler!r} is async (async def), so it can "
            "only serve async calls; give a sync handler for sync functions"
        )

    def _answer(self, em: Emitter, exc: BaseException | None) -> Any:
        if em.active:
            em.emit(FallbackUsed(em.pipeline, self.name, self.clock.monotonic(), exc))
        if self.handler is None:
            return self.value
        return self.handler(current_context(), exc)

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        on = self._catch
        on_result = self.on_result
        em = emitter
        direct = nxt is invoke_sync

        def fallback_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except on as exc:
                if not self.applies(exc):
                    raise
                if self._async_handler:
                    raise self._sync_misuse() from exc
                return self._answer(em, exc)
            if on_result is not None and on_result(result):
                if self._async_handler:
                    raise self._sync_misuse()
                return self._answer(em, None)
            return result

        return fallback_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        on = self._catch
        on_result = self.on_result
        em = emitter

        async def fallback_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            try:
                result = await nxt(fn, args, kwargs)
            except on as exc:
                if not self.applies(exc):
                    raise
                answer = self._answer(em, exc)
            else:
                if on_result is None or not on_result(result):
                    return result
                answer = self._answer(em, None)
            if inspect.isawaitable(answer):
                return await answer
            return answer

        return fallback_call_async
