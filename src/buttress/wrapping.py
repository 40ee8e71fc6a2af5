"""Calling a chain of layers: the observed path and the decorator, shared by
:class:`~buttress.Pipeline` and a policy used alone (``@Retry()``).

A *chain* is the pipeline's layers composed once (``(fn, args, kwargs) -> result``).  When
somebody listens to the emitter, a call also reports :class:`~buttress.events.CallSucceeded` or
:class:`~buttress.events.CallFailed` with its duration; otherwise the chain is called directly.
This module depends on nothing but events and clock, so policies may use it without importing the
pipeline.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .events import CallFailed, CallSucceeded, Emitter

__all__ = ["Chains", "decorate"]

SyncChain = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
AsyncChain = Callable[
    [Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]], Awaitable[Any]
]


@dataclass(slots=True, eq=False)
class Chains:
    """A sync and an async chain with their emitter: :meth:`observed` and :meth:`observed_async`
    run them, reporting each call."""

    name: str
    sync: SyncChain
    asyn: AsyncChain
    emitter: Emitter
    clock: Clock

    def observed(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The sync chain, timed and reported."""
        t0 = self.clock.monotonic()
        try:
            result = self.sync(fn, args, kwargs)
        except BaseException as exc:
            self.report(t0, exc)
            raise
        self.report(t0, None)
        return result

    async def observed_async(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The async chain, timed and reported."""
        t0 = self.clock.monotonic()
        try:
            result = await self.asyn(fn, args, kwargs)
        except BaseException as exc:
            self.report(t0, exc)
            raise
        self.report(t0, None)
        return result

    def report(self, t0: float, exc: BaseException | None) -> None:
        """A call that started at ``t0`` has ended: emit :class:`CallFailed` with ``exc``, or
        :class:`CallSucceeded`, with its duration."""
        t1 = self.clock.monotonic()
        name = self.name
        if exc is None:
            self.emitter.emit(CallSucceeded(name, name, t1, t1 - t0))
        else:
            self.emitter.emit(CallFailed(name, name, t1, t1 - t0, exc))


def decorate(chains: Chains, fn: Callable[..., Any], owner: object) -> Callable[..., Any]:
    """``fn`` (``def`` or ``async def``) wrapped so every call runs through ``chains``;
    ``owner`` is recorded as the wrapper's ``__buttress_pipeline__``."""
    em = chains.emitter
    if inspect.iscoroutinefunction(fn):
        achain = chains.asyn
        aobserved = chains.observed_async

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if em.active:
                return await aobserved(fn, args, kwargs)
            return await achain(fn, args, kwargs)

        async_wrapper.__buttress_pipeline__ = owner  # type: ignore[attr-defined]
        return async_wrapper

    chain = chains.sync
    observed = chains.observed

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if em.active:
            return observed(fn, args, kwargs)
        return chain(fn, args, kwargs)

    wrapper.__buttress_pipeline__ = owner  # type: ignore[attr-defined]
    return wrapper
