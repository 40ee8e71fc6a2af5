"""Fallback: when the call fails (or is refused, or returns a bad result), answer something else.

``value=`` returns a fixed value; ``handler=`` is called with the :class:`~buttress.context.Context` and
the error (``None`` when a result was rejected) and its return value is used; an ``async def`` handler is
awaited on the async path.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from ..context import current_context
from ..errors import ConfigError, Rejected
from ..events import Emitter, FallbackUsed
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
    :param on_rejected: set ``False`` to let rejections through untouched.
    :param on_result: ``result -> bool``: results that should be replaced too.
    """

    kind: ClassVar[str] = "fallback"
    order: ClassVar[int] = 10
    __slots__ = ("handler", "name", "on", "on_rejected", "on_result", "value")

    def __init__(
        self,
        value: Any = _MISSING,
        *,
        handler: Callable[[Any, BaseException | None], Any] | None = None,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        on_rejected: bool = True,
        on_result: Callable[[Any], bool] | None = None,
        name: str = "fallback",
    ) -> None:
        if (value is _MISSING) == (handler is None):
            raise ConfigError("value", value, "give exactly one of value= or handler=")
        if handler is not None and not callable(handler):
            raise ConfigError("handler", handler, "must be callable")
        on_t = on if isinstance(on, tuple) else (on,)
        for t in on_t:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError("on", on, "must be an exception type or a tuple of them")
        self.value = value
        self.handler = handler
        self.on = on_t
        self.on_rejected = on_rejected
        self.on_result = on_result
        self.name = name

    def __repr__(self) -> str:
        what = f"handler={self.handler!r}" if self.handler is not None else f"value={self.value!r}"
        return f"Fallback({what}, on={self.on!r})"

    def applies(self, exc: BaseException) -> bool:
        if isinstance(exc, _NEVER) or not isinstance(exc, self.on):
            return False
        return self.on_rejected or not isinstance(exc, Rejected)

    def _answer(self, em: Emitter, exc: BaseException | None) -> Any:
        if em.active:
            em.emit(FallbackUsed(em.pipeline, self.name, 0.0, exc))
        if self.handler is None:
            return self.value
        return self.handler(current_context(), exc)

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        on = self.on
        on_result = self.on_result
        em = emitter
        direct = nxt is invoke_sync

        def fallback_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except on as exc:
                if not self.applies(exc):
                    raise
                return self._answer(em, exc)
            if on_result is not None and on_result(result):
                return self._answer(em, None)
            return result

        return fallback_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        on = self.on
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
