"""The supervisor: drives :class:`~buttress.supervise.core.SupervisorCore` over real children.

It starts its children in dependency order, each once the ones it depends on are ready; watches
them (their exits, and the ``WATCHDOG=1`` pings of those with a watchdog); carries out the core's
decisions (stop in reverse order, wait the backoff, start again in order); and, when the core
escalates, stops everything and ends with a failed exit that its parent supervisor treats like any
child's failure.  A supervisor is itself a :class:`~buttress.supervise.child.Child`, so trees nest.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ButtressError, ConfigError
from buttress.events import Emitter, Event
from buttress.options import documented

from .child import Child, ChildFailed, Exit, race_ready
from .core import CycleError, Escalate, Leave, SupervisorCore, start_order
from .events import (
    ChildCrashLooping,
    ChildExited,
    ChildReady,
    ChildRestarting,
    ChildStarted,
    SupervisorGaveUp,
    WatchdogFired,
)
from .options import ChildOptions, SupervisorOptions

__all__ = ["CrashLoop", "Supervisor"]


class CrashLoop(ButtressError):
    """A top-level supervisor gave up: its children failed more often than its intensity allows."""

    def __init__(self, supervisor: str, reason: str) -> None:
        self.supervisor = supervisor
        self.reason = reason
        super().__init__(f"supervisor {supervisor!r} {reason}")


class _Stopped(Exception):
    """The supervising loop ends (after an escalation)."""


@documented(SupervisorOptions)
class Supervisor:
    """Supervises ``children`` (:class:`ProcessChild`, :class:`TaskChild`, other supervisors).

    :param name: the supervisor's name (in events, in status, in its parent).
    :param children: the children; their ``depends_on`` names must be siblings.
    :param child_options: how this supervisor restarts as the child of another (default:
        permanent).
    :param depends_on: siblings this supervisor waits for, as the child of another.
    :param on_change: called after every change of a child's state (to publish the status).
    """

    def __init__(
        self,
        name: str,
        children: Sequence[Child],
        *,
        child_options: ChildOptions | None = None,
        depends_on: Sequence[str] = (),
        clock: Clock = SYSTEM_CLOCK,
        on_change: Callable[[], None] | None = None,
        **options: Any,
    ) -> None:
        self.name = name
        self.supervisor_options = SupervisorOptions(**options)
        self.options = child_options or ChildOptions()
        self.depends_on = tuple(depends_on)
        self._children = {c.name: c for c in children}
        if len(self._children) != len(children):
            raise ConfigError("children", [c.name for c in children], "names must be unique")
        try:
            order = start_order(
                [c.name for c in children], {c.name: c.depends_on for c in children}
            )
        except CycleError as e:
            raise ConfigError("depends_on", list(e.cycle), str(e)) from None
        except KeyError as e:
            raise ConfigError("depends_on", None, str(e.args[0])) from None
        self.order = order
        self._clock = clock
        self._on_change = on_change
        self._emitter = Emitter(name)
        self._core = self._new_core()
        self._state: dict[str, str] = dict.fromkeys(order, "stopped")
        self._last_exit: dict[str, str] = {}
        self._generation: dict[str, int] = dict.fromkeys(order, 0)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._exits: asyncio.Queue[tuple[str, int, Exit]] | None = None
        self._main: asyncio.Task[None] | None = None
        self._dog: asyncio.Task[None] | None = None
        self._started_up: asyncio.Event | None = None
        self._done: asyncio.Future[Exit] | None = None
        self._watchdog_fired: dict[str, int] = {}  # child -> the run the watchdog killed
        self._shutdown: asyncio.Future[None] | None = None

    def _new_core(self) -> SupervisorCore:
        pairs = [(n, self._children[n].options) for n in self.order]
        return SupervisorCore(pairs, self.supervisor_options)

    def child(self, name: str) -> Child:
        """The child called ``name``."""
        return self._children[name]

    def find(self, name: str) -> tuple[Supervisor, Child] | None:
        """The child called ``name`` anywhere in the tree, with its supervisor."""
        if name in self._children:
            return self, self._children[name]
        for child in self._children.values():
            if isinstance(child, Supervisor):
                found = child.find(name)
                if found is not None:
                    return found
        return None

    def restart_child(self, name: str, reason: str) -> None:
        """Kill the child called ``name`` (anywhere in the tree) so that its supervisor restarts
        it by the usual rules; the exit counts as a failure with ``reason``."""
        found = self.find(name)
        if found is None:
            raise ConfigError("child", name, "is not a child of this tree")
        supervisor, child = found
        if supervisor._state.get(name) != "running":
            raise RuntimeError(f"child {name!r} is not running ({supervisor._state.get(name)})")
        child.kill(reason)

    # --- the Child protocol ------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._core = self._new_core()  # a restarted supervisor starts with a clean history
        self._exits = asyncio.Queue()
        self._started_up = asyncio.Event()
        self._done = loop.create_future()
        self._main = asyncio.create_task(self._supervise(), name=f"buttress-supervisor-{self.name}")
        watchdogs = [self._children[n].options.watchdog for n in self.order]
        if any(w > 0 for w in watchdogs):
            check = min(w for w in watchdogs if w > 0) / 4
            self._dog = asyncio.create_task(self._watchdog(check))

    async def ready(self) -> None:
        assert self._started_up is not None and self._done is not None
        outcome = await race_ready(self._started_up.wait(), self._done, self.options.ready_timeout)
        if outcome == "exited":
            raise ChildFailed(self._done.result())
        if outcome == "timeout":
            await self.stop()
            raise ChildFailed(Exit(True, f"not ready within {self.options.ready_timeout:g}s"))

    async def wait(self) -> Exit:
        assert self._done is not None
        return await asyncio.shield(self._done)

    async def stop(self) -> Exit:
        if self._done is None:
            return Exit(False, "never started")
        await self._cancel_loops()
        await self._stop_all()
        if not self._done.done():
            self._done.set_result(Exit(False, "stopped"))
        return self._done.result()

    def kill(self, reason: str) -> None:
        if self._done is None or self._done.done():
            return

        async def shutdown() -> None:
            await self._cancel_loops()
            await self._stop_all()
            if self._done is not None and not self._done.done():
                self._done.set_result(Exit(True, reason))

        self._shutdown = asyncio.ensure_future(shutdown())

    def last_ping(self) -> float | None:
        return None

    def snapshot(self) -> dict[str, Any]:
        """The tree below this supervisor: each child's state, restarts and last exit."""
        children = []
        for name in self._children:
            child = self._children[name]
            entry = {
                "name": name,
                "state": self._state.get(name, "removed"),
                "restarts": self._core.restarts.get(name, 0),
                "failures": self._core.failures.get(name, 0),
                "crash_loop": self._crash_looping(name),
                "last_exit": self._last_exit.get(name),
                "restart": child.options.restart,
                **child.snapshot(),
            }
            children.append(entry)
        opts = self.supervisor_options
        return {
            "kind": "supervisor",
            "strategy": opts.strategy,
            "intensity": opts.intensity,
            "period": opts.period,
            "children": children,
        }

    def _crash_looping(self, name: str) -> bool:
        """More failures in a row than the intensity allows restarts, and not running stably
        since: a crash loop the backoff spreads out."""
        if self._core.failures.get(name, 0) <= self.supervisor_options.intensity:
            return False
        started = self._core.started_at.get(name)
        stable = self._children[name].options.reset_after
        running = self._state.get(name) == "running"
        return not (running and started is not None and self._clock.monotonic() - started >= stable)

    # --- running on its own ------------------------------------------------------------------

    async def run(self) -> None:
        """Start, supervise until cancelled (then stop every child, in reverse order), and raise
        :class:`CrashLoop` if the supervisor gives up."""
        await self.start()
        try:
            with contextlib.suppress(ChildFailed):
                await self.ready()
            exit = await self.wait()
        except asyncio.CancelledError:
            await asyncio.shield(self.stop())
            raise
        if exit.failed:
            raise CrashLoop(self.name, exit.reason)

    # --- the loop ----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        assert self._exits is not None and self._started_up is not None
        pending = list(self._core.order)
        try:
            while True:
                if not pending:
                    self._started_up.set()  # every child started once (or none to start)
                if pending:
                    name = pending.pop(0)
                    failure = await self._launch(name)
                    if failure is None:
                        continue
                else:
                    name, generation, failure = await self._exits.get()
                    if generation != self._generation[name] or name not in self._core.running:
                        continue  # a run that was stopped on purpose, or already handled
                pending = await self._handle(name, failure, pending)
        except _Stopped:
            return

    async def _launch(self, name: str) -> Exit | None:
        """Start ``name`` and wait until it is ready: ``None``, or how it failed."""
        child = self._children[name]
        self._generation[name] += 1
        generation = self._generation[name]
        started_at = self._clock.monotonic()
        self._core.started(name, started_at)
        self._set_state(name, "starting")
        try:
            await child.start()
        except OSError as e:
            return Exit(True, f"could not start: {e}")
        if self._emitter.active:
            pid = getattr(child, "pid", None)
            self._emit(
                ChildStarted(self.name, name, started_at, pid if isinstance(pid, int) else None)
            )
        try:
            await child.ready()
        except ChildFailed as e:
            return e.exit
        now = self._clock.monotonic()
        self._set_state(name, "running")
        if self._emitter.active:
            self._emit(ChildReady(self.name, name, now, now - started_at))
        self._watchers[name] = asyncio.create_task(self._watch(name, generation))
        return None

    async def _watch(self, name: str, generation: int) -> None:
        assert self._exits is not None
        exit = await self._children[name].wait()
        await self._exits.put((name, generation, exit))

    async def _handle(self, name: str, failure: Exit, pending: list[str]) -> list[str]:
        """Carry out the core's decision about ``name``'s exit; the children left to start."""
        now = self._clock.monotonic()
        uptime = now - self._core.started_at.get(name, now)
        self._watchers.pop(name, None)
        self._last_exit[name] = failure.reason
        self._set_state(name, "failed" if failure.failed else "exited")
        if self._emitter.active:
            self._emit(ChildExited(self.name, name, now, failure.reason, failure.failed, uptime))
        decision = self._core.exited(name, now, failed=failure.failed)
        if isinstance(decision, Leave):
            if decision.removed:
                self._set_state(name, "removed")
            return pending
        if isinstance(decision, Escalate):
            if self._emitter.active:
                self._emit(
                    SupervisorGaveUp(
                        self.name,
                        self.name,
                        now,
                        decision.restarts,
                        decision.period,
                        decision.reason,
                    )
                )
            await self._stop_all()
            assert self._done is not None
            if not self._done.done():
                self._done.set_result(Exit(True, f"gave up: {decision.reason}"))
            raise _Stopped
        for other in decision.stop:
            await self._stop_child(other)
        for other in decision.removed:
            self._set_state(other, "removed")
        for other in decision.start:
            self._set_state(other, "backoff")
        if self._emitter.active:
            self._emit(
                ChildRestarting(self.name, name, now, decision.delay, decision.failures, name)
            )
            if decision.failures == self.supervisor_options.intensity + 1:
                self._emit(ChildCrashLooping(self.name, name, now, decision.failures))
        if decision.delay > 0:
            await self._clock.sleep_async(decision.delay)
        again = set(decision.start) | set(pending)
        return [n for n in self._core.order if n in again]

    async def _stop_child(self, name: str) -> None:
        watcher = self._watchers.pop(name, None)
        if watcher is not None:
            watcher.cancel()
        self._generation[name] += 1  # an exit already queued for the old run is ignored
        exit = await self._children[name].stop()
        self._core.stopped(name)
        self._last_exit[name] = exit.reason
        self._set_state(name, "stopped")

    async def _stop_all(self) -> None:
        """Stop every running child, the last started first; a failed child waiting for its
        restart will not get it: it is stopped too."""
        for name in reversed(self._core.order):
            if name in self._core.running:
                await self._stop_child(name)
        for name in self._core.order:
            if self._state.get(name) in ("starting", "failed", "backoff"):
                self._set_state(name, "stopped")

    async def _cancel_loops(self) -> None:
        current = asyncio.current_task()
        for task in (self._dog, self._main):
            if task is not None and task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _watchdog(self, check: float) -> None:
        """Every ``check`` seconds, kill the running children whose last ping is too old."""
        while True:
            await self._clock.sleep_async(check)
            now = self._clock.monotonic()
            for name in self._core.order:
                if self._state.get(name) != "running":
                    continue
                child = self._children[name]
                pinged = child.last_ping()
                run = self._generation[name]
                if pinged is None or self._watchdog_fired.get(name) == run:
                    continue
                silence = now - pinged
                if silence > child.options.watchdog:
                    self._watchdog_fired[name] = run
                    child.kill(f"watchdog: no WATCHDOG=1 for {silence:.2f}s")
                    if self._emitter.active:
                        self._emit(WatchdogFired(self.name, name, now, silence))

    def _set_state(self, name: str, state: str) -> None:
        self._state[name] = state
        if self._on_change is not None:
            self._on_change()

    def _emit(self, event: Event) -> None:
        self._emitter.emit(event)

    def __repr__(self) -> str:
        return f"Supervisor({self.name!r}, {self.order!r})"
