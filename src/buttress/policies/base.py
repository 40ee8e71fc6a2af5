"""What every policy provides to the pipeline.

A policy is an immutable, validated configuration object plus two *layer builders*.  A layer is a
function ``(fn, args, kwargs) -> result`` that does the policy's work around a call to the next
layer; the pipeline chains them once, at build time, so a call costs one plain function call per
policy and the arguments are never re-packed on the way in.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from buttress.clock import SYSTEM_CLOCK
from buttress.events import Emitter
from buttress.wrapping import Chains, decorate

if TYPE_CHECKING:
    from buttress.options import Options

__all__ = [
    "FUSE_BREAKER",
    "FUSE_BULKHEAD",
    "FUSE_LIMITER",
    "FUSE_RETRY",
    "FUSE_TIMEOUT",
    "AsyncNext",
    "Policy",
    "SyncNext",
    "invoke_async",
    "invoke_sync",
]

P = TypeVar("P", bound="Policy")

SyncNext = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
AsyncNext = Callable[
    [Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]], Awaitable[Any]
]


# The places in a fused async run (:mod:`buttress.policies.fused`), outermost first: a run holds
# at most one policy of each, in this order (the default pipeline order).
FUSE_TIMEOUT, FUSE_RETRY, FUSE_BREAKER, FUSE_LIMITER, FUSE_BULKHEAD = range(5)


def invoke_sync(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The innermost sync layer: call the user's function."""
    return fn(*args, **kwargs)


async def invoke_async(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The innermost async layer: await the user's coroutine function."""
    return await fn(*args, **kwargs)


class Policy(abc.ABC):
    """Base of all policies.

    ``kind`` names the policy type in events and metrics; ``order`` places it in the default
    pipeline order (smaller is outer).  ``name`` distinguishes instances (the ``policy`` label).
    """

    kind: ClassVar[str] = "policy"
    order: ClassVar[int] = 50
    name: str = "policy"
    #: The frozen options type that declares every parameter (set by ``@documented``).
    options_type: ClassVar[type[Options]]
    #: This instance's validated parameters.
    options: Options

    @classmethod
    def from_options(cls: type[P], options: Options, /, **wiring: Any) -> P:
        """Build from an options object; ``wiring`` passes what is not an option (``clock``,
        ``name``, ``store``, or a budget object to share, which wins over its options)."""
        kwargs = options.as_kwargs()
        kwargs.update(wiring)
        return cls(**kwargs)

    def fused_slot(self) -> int | None:
        """This policy's place in a fused async run (a ``FUSE_*`` constant), or ``None`` when it
        needs a layer of its own (the default; see :mod:`buttress.policies.fused`)."""
        return None

    @abc.abstractmethod
    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        """Build this policy's sync layer around ``nxt``."""

    @abc.abstractmethod
    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        """Build this policy's asyncio layer around ``nxt``."""

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Use the policy alone as a decorator (a one-policy pipeline named after ``fn``)."""
        name = getattr(fn, "__qualname__", self.name)
        em = Emitter(name)
        clock = getattr(self, "clock", SYSTEM_CLOCK)
        chains = Chains(
            name, self.sync_layer(invoke_sync, em), self.async_layer(invoke_async, em), em, clock
        )
        return decorate(chains, fn, self)
