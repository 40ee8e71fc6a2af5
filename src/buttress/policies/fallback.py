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
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import current_context
from buttress.errors import ConfigError, Rejected
from buttress.events import Emitter, FallbackUsed

from .base import AsyncNext, Policy, SyncNext, invoke_sync

__all__ = ["Fallback"]

_MISSING = object()
_NEVER = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class Fallback(Policy):
    """Replace a failure with a value.

    :param value: the value to return.
    :param handler: ``(context, error) -> value`` instead of a fixed value (sync or async).
    :param on: exception types that trigger the fallback (default :class:`Exception`, which includes
        every :class:`~buttress.errors.Rejected`).
    :param on_rejected: ``None`` (default): rejections trigger the fallback when they match ``on``;
        ``True``: every :class:`~buttress.errors.Rejected` does, whatever ``on`` says (an open
        breaker, a full bulkhead, a blown deadline...); ``False``: none does, they pass through
        untouched.
    :param on_result: ``result -> bool``: results that should be replaced too (the handler then gets
        ``None`` as the error).
    """

    kind: ClassVar[str] = "fallback"
    order: ClassVar[int] = 10
    __slots__ = (
        "_async_handler",
        "_catch",
        "clock",
        "handler",
        "name",
        "on",
        "on_rejected",
        "on_result",
        "value",
    )

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        handler: Callable[[Any, BaseException | None], Any] | None = None,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        on_rejected: bool | None = None,
        on_result: Callable[[Any], bool] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "fallback",
    ) -> None:
        if (value is _MISSING) == (handler is None):
            raise ConfigError(
                "handler" if value is _MISSING else "value",
                handler if value is _MISSING else value,
                "give exactly one of value= or handler=",
            )
        if handler is not None and not callable(handler):
            raise ConfigError("handler", handler, "must be callable: (context, error) -> value")
        on_t = on if isinstance(on, tuple) else (on,)
        if not on_t:
            raise ConfigError("on", on, "must name at least one exception type")
        for t in on_t:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError("on", on, "must be an exception type or a tuple of them")
        if on_rejected is not None and not isinstance(on_rejected, bool):
            raise ConfigError("on_rejected", on_rejected, "must be True, False or None")
        if on_result is not None and not callable(on_result):
            raise ConfigError("on_result", on_result, "must be callable: result -> bool")
        self.value = value
        self.handler = handler
        self.on = on_t
        self.on_rejected = on_rejected
        self.on_result = on_result
        self.clock = clock
        self.name = name
        self._catch: tuple[type[BaseException], ...] = (*on_t, Rejected) if on_rejected else on_t
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
