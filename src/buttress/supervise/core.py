"""The decisions of a supervisor, without I/O: who restarts, after how long, and when to give up.

:class:`SupervisorCore` is told what happened (a child started, a child exited, normally or not)
with the time it happened, and answers with a decision the driver carries out:

* :class:`Restart`: stop these running children (in this order, the reverse of the start order),
  wait ``delay`` seconds, then start these (in start order);
* :class:`Leave`: nothing to do (a temporary child, a transient child that finished);
* :class:`Escalate`: more than ``intensity`` restarts within ``period`` seconds: stop everything
  and report the crash loop to the parent.

The rules are Erlang/OTP's, with a backoff added:

========== ============================================================================
strategy   who restarts when a child fails
========== ============================================================================
one_for_one  the failed child
one_for_all  every running child (temporary ones are stopped and not started again)
rest_for_one the failed child and the running children started after it
========== ============================================================================

========== ============================================================================
restart    when the child is started again
========== ============================================================================
permanent  after any exit
transient  after a failure (an exit other than a normal one)
temporary  never, not even when a sibling's failure stops it
========== ============================================================================

Each restart (one per failure, however many children it restarts) is counted; the one that would
make ``intensity + 1`` restarts within ``period`` seconds escalates instead.  The delay before a
restart is the failed child's :meth:`ChildOptions.delay` of its consecutive failures; a child that
ran ``reset_after`` seconds before failing starts the count again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .options import ChildOptions, SupervisorOptions

__all__ = ["Decision", "Escalate", "Leave", "Restart", "SupervisorCore", "start_order"]


@dataclass(frozen=True, slots=True)
class Restart:
    """Stop ``stop`` (in that order), wait ``delay`` seconds, start ``start`` (in that order);
    ``removed`` are temporary children stopped for good; ``failures`` counts the failed child's
    consecutive failures."""

    stop: tuple[str, ...]
    start: tuple[str, ...]
    delay: float
    failures: int
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Leave:
    """The child stays down (``removed``: it is no longer part of the supervisor)."""

    removed: bool


@dataclass(frozen=True, slots=True)
class Escalate:
    """Give up: ``restarts`` restarts within ``period`` seconds exceed the intensity."""

    restarts: int
    period: float
    reason: str


Decision = Restart | Leave | Escalate


class CycleError(ValueError):
    """Start dependencies form a cycle; ``cycle`` lists it, first name repeated at the end."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("start dependencies form a cycle: " + " -> ".join(self.cycle))


def start_order(children: Sequence[str], depends_on: dict[str, Sequence[str]]) -> list[str]:
    """``children`` in an order where each comes after the ones it depends on, otherwise in the
    given order.  Raises :class:`CycleError` (naming the cycle) or :class:`KeyError` (an unknown
    name)."""
    known = set(children)
    for name, deps in depends_on.items():
        for dep in deps:
            if dep not in known:
                raise KeyError(f"{name!r} depends on unknown child {dep!r}")
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise CycleError([*path[path.index(name) :], name])
        state[name] = 1
        path.append(name)
        for dep in depends_on.get(name, ()):
            visit(dep, path)
        path.pop()
        state[name] = 2
        order.append(name)

    for name in children:
        visit(name, [])
    return order


class SupervisorCore:
    """The restart decisions of one supervisor over ``children`` (names in start order).

    Never sleeps, never reads a clock: every method takes the time ``now`` (seconds, monotonic).
    """

    def __init__(
        self, children: Sequence[tuple[str, ChildOptions]], options: SupervisorOptions | None = None
    ) -> None:
        self.options = options or SupervisorOptions()
        self.order: list[str] = [name for name, _ in children]
        if len(set(self.order)) != len(self.order):
            raise ValueError("child names must be unique")
        self.child_options = dict(children)
        self.running: set[str] = set()
        self.started_at: dict[str, float] = {}
        self.failures: dict[str, int] = dict.fromkeys(self.order, 0)
        self.restarts: dict[str, int] = dict.fromkeys(self.order, 0)
        self._history: deque[float] = deque()  # times of the restarts within the period

    def started(self, name: str, now: float) -> None:
        """``name`` is running since ``now``."""
        self._known(name)
        self.running.add(name)
        self.started_at[name] = now

    def exited(self, name: str, now: float, *, failed: bool) -> Decision:
        """``name`` exited at ``now``, normally or (``failed``) not: what to do."""
        self._known(name)
        self.running.discard(name)
        opts = self.child_options[name]
        if opts.restart == "temporary" or (opts.restart == "transient" and not failed):
            if opts.restart == "temporary":
                self._remove(name)
            return Leave(removed=opts.restart == "temporary")
        uptime = now - self.started_at.get(name, now)
        if uptime >= opts.reset_after:
            self.failures[name] = 0
        self.failures[name] += 1
        period = self.options.period
        while self._history and self._history[0] <= now - period:
            self._history.popleft()
        if len(self._history) >= self.options.intensity:
            return Escalate(
                restarts=len(self._history) + 1,
                period=period,
                reason=f"{name} failed: {len(self._history) + 1} restarts within {period:g}s"
                f" exceed the intensity {self.options.intensity}",
            )
        self._history.append(now)
        return self._restart(name, self.failures[name])

    def stopped(self, name: str) -> None:
        """``name`` was stopped on purpose (not an exit to decide about)."""
        self._known(name)
        self.running.discard(name)

    def _restart(self, name: str, failures: int) -> Restart:
        strategy = self.options.strategy
        if strategy == "one_for_one":
            group = [name]
        elif strategy == "one_for_all":
            group = [n for n in self.order if n in self.running or n == name]
        else:
            after = self.order[self.order.index(name) :]
            group = [n for n in after if n in self.running or n == name]
        stop = tuple(n for n in reversed(group) if n != name and n in self.running)
        removed = tuple(
            n for n in group if n != name and self.child_options[n].restart == "temporary"
        )
        for n in removed:
            self._remove(n)
        start = tuple(n for n in group if n not in removed)
        for n in start:
            self.restarts[n] += 1
        return Restart(
            stop=stop,
            start=start,
            delay=self.child_options[name].delay(failures),
            failures=failures,
            removed=removed,
        )

    def _remove(self, name: str) -> None:
        self.order.remove(name)
        self.running.discard(name)

    def _known(self, name: str) -> None:
        if name not in self.child_options:
            raise KeyError(f"unknown child {name!r}")
