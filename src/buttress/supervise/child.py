"""What a supervisor needs from a child, whatever it runs (a process, a task, a supervisor)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from .options import ChildOptions

__all__ = ["Child", "ChildFailed", "Exit", "race_ready"]


@dataclass(frozen=True, slots=True)
class Exit:
    """How a child ended: ``failed`` is what the restart types read (a transient child restarts
    only when it is true); ``reason`` is for people (``exited 3``, ``killed by SIGSEGV``,
    ``watchdog: no WATCHDOG=1 for 1.2s``)."""

    failed: bool
    reason: str
    code: int | None = None


class ChildFailed(Exception):
    """A child did not become ready; ``exit`` says why."""

    def __init__(self, exit: Exit) -> None:
        self.exit = exit
        super().__init__(exit.reason)


async def race_ready(
    ready: Awaitable[object], exited: asyncio.Future[Any], timeout: float
) -> Literal["ready", "exited", "timeout"]:
    """Wait up to ``timeout`` seconds for whichever comes first: ``ready`` (the child said or showed
    it is ready) or ``exited`` (it ended).  An exit wins a tie: a child that became ready and is
    already gone is not ready.  ``ready`` is cancelled when it has not finished; ``exited``
    belongs to the caller and is left running."""
    probe = asyncio.ensure_future(ready)
    try:
        done, _ = await asyncio.wait(
            {probe, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        probe.cancel()
    if exited in done:
        return "exited"
    return "ready" if probe in done else "timeout"


@runtime_checkable
class Child(Protocol):
    """A supervised unit.  The supervisor calls :meth:`start`, then :meth:`ready`, then
    :meth:`wait` until it returns; :meth:`stop` and :meth:`kill` may come at any time after
    :meth:`start`."""

    name: str
    options: ChildOptions
    depends_on: tuple[str, ...]

    async def start(self) -> None:
        """Launch (a process spawned, a task created); return at once."""
        ...

    async def ready(self) -> None:
        """Return when the child is ready; raise :class:`ChildFailed` if it exits or takes longer
        than ``options.ready_timeout``."""
        ...

    async def wait(self) -> Exit:
        """Wait until the child ends by itself, or because of :meth:`kill`."""
        ...

    async def stop(self) -> Exit:
        """End the child gently (SIGTERM, cancel), forcefully after ``options.grace``."""
        ...

    def kill(self, reason: str) -> None:
        """End the child now; :meth:`wait` returns a failed exit with ``reason``."""
        ...

    def last_ping(self) -> float | None:
        """Monotonic time of the last ``WATCHDOG=1`` (of the start, before the first)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """What ``buttress supervise status`` shows about this child."""
        ...
