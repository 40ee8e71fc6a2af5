"""Per-call context and deadlines that flow through nested code.

Two pieces of state travel with a call, in :mod:`contextvars` so they follow threads *and* asyncio
tasks:

* the **deadline**: an absolute time on a clock's monotonic scale; nested deadlines take the
  earliest;
* the optional **call context** (:class:`Context`): operation key, attempt number, free-form
  properties.

Neither is set on the hot path unless you ask for it, so a pipeline that nobody inspects pays
nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .errors import ConfigError, DeadlineExceeded

__all__ = ["Context", "current_context", "current_deadline", "deadline", "remaining", "use_context"]

DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "buttress_deadline", default=None
)
CURRENT_CONTEXT: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "buttress_context", default=None
)


@dataclass(slots=True)
class Context:
    """What a policy knows about the call it is guarding.

    ``attempt`` starts at 1 and is advanced by retries; ``deadline`` is absolute, on the monotonic
    scale of the clock in use (``None``: no deadline); ``properties`` is yours.
    """

    operation_key: str | None = None
    attempt: int = 1
    deadline: float | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    def remaining(self, clock: Clock = SYSTEM_CLOCK) -> float | None:
        """Seconds left before the earlier of this context's deadline and the deadline in force here
        (never negative), or ``None`` when there is neither."""
        d = self.deadline
        outer = DEADLINE.get()
        if d is None or (outer is not None and outer < d):
            d = outer
        if d is None:
            return None
        return max(0.0, d - clock.monotonic())


def current_deadline() -> float | None:
    """The absolute deadline in force here, or ``None``."""
    return DEADLINE.get()


def remaining(clock: Clock = SYSTEM_CLOCK) -> float | None:
    """Seconds left before the innermost deadline in force (never negative), or ``None`` without
    one.

    Integrations read this to pass the remaining time on (a header, a socket timeout, a query
    timeout).
    """
    d = DEADLINE.get()
    if d is None:
        return None
    return max(0.0, d - clock.monotonic())


def current_context() -> Context:
    """The call context set by :func:`use_context` (or a pipeline), or a fresh one reflecting the
    deadline."""
    ctx = CURRENT_CONTEXT.get()
    if ctx is None:
        return Context(deadline=DEADLINE.get())
    return ctx


class use_context:
    """Make ``ctx`` the current call context for the block (sync or async).

    When ``ctx.deadline`` is set and earlier than the deadline in force, it becomes the deadline in
    force for the block (nested deadlines take the earliest), so retries and integrations respect
    it.
    """

    __slots__ = ("_ctx", "_deadline_token", "_token")

    def __init__(self, ctx: Context) -> None:
        if not isinstance(ctx, Context):
            raise ConfigError("ctx", ctx, "must be a buttress.Context")
        self._ctx = ctx
        self._token: contextvars.Token[Context | None] | None = None
        self._deadline_token: contextvars.Token[float | None] | None = None

    def __enter__(self) -> Context:
        ctx = self._ctx
        self._token = CURRENT_CONTEXT.set(ctx)
        d = ctx.deadline
        if d is not None:
            outer = DEADLINE.get()
            if outer is None or d < outer:
                self._deadline_token = DEADLINE.set(d)
        return ctx

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        if self._deadline_token is not None:
            DEADLINE.reset(self._deadline_token)
            self._deadline_token = None
        CURRENT_CONTEXT.reset(self._token)

    async def __aenter__(self) -> Context:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


class deadline:
    """Bound everything inside the block by ``seconds`` from now.

    Nested deadlines take the earliest.  In ``async with`` the awaited work is cancelled when the
    deadline passes and :class:`~buttress.errors.DeadlineExceeded` is raised.  In ``with`` the
    deadline is *cooperative*: retries stop sleeping past it, integrations read :func:`remaining`,
    and leaving the block after the deadline raises nothing by itself (work already done is not
    thrown away). Use :meth:`expired` or :func:`remaining` to check.
    """

    __slots__ = ("_at", "_clock", "_seconds", "_timeout_cm", "_token")

    def __init__(self, seconds: float, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not seconds >= 0  # also rejects NaN
        ):
            raise ConfigError("seconds", seconds, "a deadline must be a number of seconds >= 0")
        self._seconds = float(seconds)
        self._clock = clock
        self._token: contextvars.Token[float | None] | None = None
        self._at = 0.0
        self._timeout_cm: asyncio.Timeout | None = None

    @property
    def at(self) -> float:
        """The absolute deadline in force inside the block (after nesting)."""
        return self._at

    def expired(self) -> bool:
        """Whether the deadline in force inside the block has passed."""
        return self._clock.monotonic() >= self._at

    def remaining(self) -> float:
        """Seconds left before the deadline in force inside the block (never negative)."""
        return max(0.0, self._at - self._clock.monotonic())

    def __enter__(self) -> deadline:
        at = self._clock.monotonic() + self._seconds
        outer = DEADLINE.get()
        if outer is not None and outer < at:
            at = outer
        self._at = at
        self._token = DEADLINE.set(at)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._token is not None
        DEADLINE.reset(self._token)
        self._token = None

    async def __aenter__(self) -> deadline:
        self.__enter__()
        # asyncio.timeout works on the loop's clock; translate our remaining time onto it.
        left = self._at - self._clock.monotonic()
        loop = asyncio.get_running_loop()
        self._timeout_cm = asyncio.timeout_at(loop.time() + max(0.0, left))
        await self._timeout_cm.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cm = self._timeout_cm
        self._timeout_cm = None
        self.__exit__(exc_type, exc, tb)
        assert cm is not None
        try:
            await cm.__aexit__(exc_type, exc, tb)
        except TimeoutError as e:
            raise DeadlineExceeded(
                f"deadline of {self._seconds:g}s exceeded", policy="deadline"
            ) from e
