"""A supervised asyncio task: the same restarts, readiness and watchdog as a process.

The task's coroutine function receives a :class:`TaskContext`; ``ctx.ready()`` is its ``READY=1``
(awaited when the child is built with ``notify=True``) and ``ctx.ping()`` its ``WATCHDOG=1``.
Returning is a normal exit, raising a failure; stopping cancels the task and waits ``grace``
seconds for it to finish.  A task that blocks the event loop cannot be stopped from inside it:
run such work in a process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.options import documented

from .child import ChildFailed, Exit, race_ready
from .options import ChildOptions

__all__ = ["TaskChild", "TaskContext"]


class TaskContext:
    """What a supervised task tells its supervisor."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.ready_event = asyncio.Event()
        self.last_ping = clock.monotonic()

    def ready(self) -> None:
        """The task is ready (its dependents may start)."""
        self.ready_event.set()

    def ping(self) -> None:
        """The task is alive (resets the watchdog)."""
        self.last_ping = self._clock.monotonic()


@documented(ChildOptions)
class TaskChild:
    """``function(ctx)`` run as a supervised asyncio task.

    :param name: the child's name in its supervisor.
    :param function: a coroutine function taking a :class:`TaskContext`.
    :param notify: wait for ``ctx.ready()`` before the child counts as ready.
    :param depends_on: names of siblings that must be ready before this child starts.
    """

    def __init__(
        self,
        name: str,
        function: Callable[[TaskContext], Awaitable[object]],
        *,
        notify: bool = False,
        depends_on: Sequence[str] = (),
        clock: Clock = SYSTEM_CLOCK,
        **options: Any,
    ) -> None:
        if not callable(function):
            raise ConfigError("function", function, "must be a coroutine function")
        self.name = name
        self.function = function
        self.notify = notify
        self.depends_on = tuple(depends_on)
        self.options = ChildOptions(**options)
        self._clock = clock
        self._task: asyncio.Task[object] | None = None
        self._ctx: TaskContext | None = None
        self._kill_reason: str | None = None
        self._stopping = False

    async def start(self) -> None:
        self._kill_reason, self._stopping = None, False
        ctx = self._ctx = TaskContext(self._clock)

        async def body() -> object:
            return await self.function(ctx)

        self._task = asyncio.create_task(body(), name=f"buttress-supervise-{self.name}")

    async def ready(self) -> None:
        task, ctx = self._started()
        if not self.notify:
            return
        outcome = await race_ready(ctx.ready_event.wait(), task, self.options.ready_timeout)
        if outcome == "ready":
            return
        if outcome == "exited":
            why = self._exit_of(task)
            raise ChildFailed(Exit(True, f"{why.reason} before it was ready"))
        self.kill(f"not ready within {self.options.ready_timeout:g}s")
        raise ChildFailed(await self.wait())

    async def wait(self) -> Exit:
        task, _ = self._started()
        await asyncio.wait({task})
        return self._exit_of(task)

    async def stop(self) -> Exit:
        if self._task is None:
            return Exit(False, "never started")
        if not self._task.done():
            self._stopping = True
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=self.options.grace)
            if not done:
                return Exit(True, f"did not stop within the {self.options.grace:g}s grace")
        return self._exit_of(self._task)

    def kill(self, reason: str) -> None:
        if self._task is None or self._task.done():
            return
        if self._kill_reason is None:
            self._kill_reason = reason
        self._task.cancel()

    def last_ping(self) -> float | None:
        if self.options.watchdog <= 0 or self._ctx is None:
            return None
        return self._ctx.last_ping

    def snapshot(self) -> dict[str, Any]:
        return {"kind": "task", "function": getattr(self.function, "__qualname__", "?")}

    def _started(self) -> tuple[asyncio.Task[object], TaskContext]:
        if self._task is None or self._ctx is None:
            raise RuntimeError(f"child {self.name!r} was not started")
        return self._task, self._ctx

    def _exit_of(self, task: asyncio.Task[object]) -> Exit:
        if self._kill_reason is not None:
            return Exit(True, self._kill_reason)
        if task.cancelled():
            return Exit(not self._stopping, "stopped" if self._stopping else "cancelled")
        error = task.exception()
        if error is not None:
            return Exit(True, f"raised {type(error).__name__}: {error}")
        return Exit(False, "returned")

    def __repr__(self) -> str:
        return f"TaskChild({self.name!r})"
