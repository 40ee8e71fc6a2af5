"""The circuit breaker's state on Redis: :class:`RedisBreakerStore`."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from buttress.errors import ConfigError
from buttress.policies.breaker import (
    OPEN,
    BreakerAlarm,
    BreakerData,
    BreakerMachine,
    BreakerSnapshot,
    BreakerState,
    IllegalTransition,
    MemoryBreakerStore,
    Note,
    Permit,
    Reject,
    Transition,
    Trigger,
)
from buttress.policies.windows import SUCCESS, CountWindow

from .link import DOWN, SharedStore, Where

__all__ = ["BREAKS_PRECOMPUTED", "RedisBreakerStore"]

BREAKS_PRECOMPUTED = 32
"""Break durations sent to the breaker script: for 1..32 consecutive opens (then the last)."""
DEFERRED_MAX = 64
"""Most deferred outcomes a store holds; one more sends them at once (a record of their own)."""

_STATES = list(BreakerState)  # the script's state codes are indexes into this list
_FOREIGN = -(2**62)  # generation of a permit given by a fail_open rule: its result is not counted

# The machine's steps, by which ``atomically`` knows what it is asked to do.
_ACQ = BreakerMachine.acquire_step
_REC = BreakerMachine.record_step
_MOVE = BreakerMachine.move_step
_MANUAL = BreakerMachine.manual_step
_SNAP = BreakerMachine.snapshot_step


class RedisBreakerStore(SharedStore):
    """A :class:`~buttress.policies.breaker.BreakerStore` on Redis, for one breaker.

    ``atomically(fn, *args)`` runs the machine's step ``fn`` (acquire, record, move, snapshot) as
    one script call; the script applies the rules of
    :class:`~buttress.policies.breaker.BreakerMachine`, so every process sees one state, one window
    and one set of half-open probe slots: exactly ``permitted_calls_in_half_open`` probes are
    admitted fleet-wide.  Bound to its breaker by the breaker itself (``bind``); one store serves
    one breaker.

    While Redis is unavailable: ``local`` decides with this process's own copy of the machine's
    state (permits it gives carry a negative generation, so their results go back to it);
    ``fail_open`` permits every call; ``fail_closed`` rejects every call with ``retry_after`` =
    time until Redis is tried again.  When Redis answers again the local copy is reset.

    A jittered :class:`~buttress.policies.backoff.Backoff` as ``break_duration`` is drawn once, for
    1 to 32 consecutive opens, when the breaker is built.

    **One round trip per call on the success path.**  A fast success of a call that was not a
    probe is not sent on its own: it waits (:data:`DEFERRED_MAX` at most) and goes with this
    process's next script call, which applies it, atomically and in order, before its own step, so
    the window stays one shared window.  Failures, slow calls and probe results are sent at once
    (they can open or close the breaker).  What waits: a success is counted when this process next
    decides (in a time window, in the bucket of that moment), and a success that fills
    ``minimum_calls`` while the failure rate is over the threshold opens the breaker then, its
    transition reported with that decision.  An outcome marked ignored (not a probe) changes
    nothing and is not sent at all.
    """

    kind: ClassVar[str] = "circuit_breaker"

    __slots__ = ("_args", "_deferred", "_keys", "_ops", "local", "machine")

    def __init__(self, where: Where, *, ttl: float) -> None:
        super().__init__(where)
        self._keys = (f"{self.key}:b", f"{self.key}:r")
        self.machine: BreakerMachine | None = None
        self.local: MemoryBreakerStore | None = None
        self._args: tuple[Any, ...] = (math.ceil(ttl),)
        # (generation, code) of fast successes waiting for the next script call; a deque, whose
        # append and popleft are atomic, since threads share the store.
        self._deferred: deque[tuple[int, int]] = deque()
        self._ops: dict[Callable[..., Any], Callable[..., Any]] = {
            _ACQ: self._acquire,
            _REC: self._record,
            _MOVE: self._move,
            _MANUAL: self._manual,
            _SNAP: self._snapshot,
        }

    def __repr__(self) -> str:
        return f"RedisBreakerStore(scope={self.scope!r}, on_unavailable={self.mode!r})"

    def bind(self, machine: BreakerMachine, data: BreakerData) -> None:
        """Learn the breaker's configuration (called once, by the breaker's constructor)."""
        if self.machine is not None:
            raise ConfigError(
                "store", self, "already serves another breaker: use one scope per breaker"
            )
        w = data.window
        if isinstance(w, CountWindow):
            shape: tuple[Any, ...] = (b"c", w.size, 1)
        else:
            shape = (b"t", repr(w.seconds), w.buckets)
        breaks = []
        for n in range(1, BREAKS_PRECOMPUTED + 1):
            b = float(machine.break_length(n))
            breaks.append(repr(b if b >= 0 else 0.0))
        self._args = (
            repr(machine.failure_rate_threshold),
            repr(machine.slow_call_rate_threshold),
            machine.minimum_calls,
            *shape,
            machine.permitted_calls_in_half_open,
            repr(machine.half_open_timeout),
            ",".join(breaks),
            *self._args,
        )
        self.machine = machine
        self.local = MemoryBreakerStore(data)

    # -- the store protocol ------------------------------------------------------------------------

    def atomically(self, fn: Callable[..., Any], /, *args: Any) -> Any:
        f = getattr(fn, "__func__", None)
        op = self._ops.get(f)  # type: ignore[arg-type]
        if op is None or self.local is None:
            raise TypeError(f"{fn!r} is not a step of the breaker bound to {self!r}")
        if f is _REC:
            if args[1] < 0:
                return self._fallback(f, fn, args)  # a permit this process gave on its own
            if not args[2] and args[3] <= SUCCESS:  # not a probe; ignored (0) or a fast success
                if args[3] == SUCCESS:
                    self._deferred.append((args[1], SUCCESS))
                    if len(self._deferred) > DEFERRED_MAX:
                        return self.flush(args[0])
                return ()
        result = self.ask(op, *args)
        if result is DOWN:
            return self._fallback(f, fn, args)
        return result

    def _fallback(self, f: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        local = self.local
        assert local is not None
        mode = self.mode
        if f is _ACQ:
            if mode == "fail_open":
                return Permit(_FOREIGN, False)
            if mode == "fail_closed":
                return Reject(OPEN, self._retry_after())
            r = local.atomically(fn, *args)
            if type(r) is Permit:
                return Permit(-1 - r.generation, r.probe, r.notes)
            return r
        if f is _REC:
            gen = args[1]
            if gen >= 0 or gen == _FOREIGN:
                return ()  # a result of a shared (or fail_open) permit, while Redis is away
            return local.atomically(fn, args[0], -1 - gen, *args[2:])
        return local.atomically(fn, *args)

    def _resync(self, now: float) -> None:
        m, local = self.machine, self.local
        if m is not None and local is not None:
            local.atomically(m.move_step, now, Trigger.RESET)

    # -- the script calls -------------------------------------------------------------------------

    def _call(self, op: bytes, now: float, *extra: Any) -> Any:
        link = self.link
        return link.run(
            link.scripts["breaker"],
            2,
            *self._keys,
            op,
            b"" if self.server_time else repr(now),
            *self._args,
            self._take_deferred(),
            *extra,
        )

    def _take_deferred(self) -> str:
        """The deferred outcomes as the script reads them (``gen:code,...``), now taken."""
        q = self._deferred
        if not q:
            return ""
        out: list[str] = []
        take = q.popleft
        while True:
            try:
                gen, code = take()
            except IndexError:
                return ",".join(out)
            out.append(f"{gen}:{code}")

    def flush(self, now: float) -> tuple[Note, ...]:
        """Send the deferred successes now (a record that records nothing else) and return what
        they caused: a transition when one of them filled ``minimum_calls`` over the threshold.
        Nothing waits afterwards; a no-op (no round trip) when nothing waits."""
        if not self._deferred:
            return ()
        r = self.ask(self._call, b"record", now, b"", b"0", b"0")
        if r is DOWN or not r:
            return ()
        return _notes(now, r)

    def _acquire(self, now: float) -> Permit | Reject:
        r = self._call(b"acquire", now)
        notes = _notes(now, r[3:])
        if r[0] == 1:
            return Permit(int(r[1]), r[2] == 1, notes)
        ra = float(r[2]) if r[2] else None
        return Reject(_STATES[int(r[1])], ra, notes)

    def _record(self, now: float, generation: int, probe: bool, code: int) -> tuple[Note, ...]:
        r = self._call(b"record", now, generation, 1 if probe else 0, code)
        return _notes(now, r) if r else ()

    def _move(self, now: float, trigger: Trigger) -> Transition:
        r = self._call(b"move", now, trigger.value)
        if r[0] != b"ok":
            raise IllegalTransition(_STATES[int(r[1])], trigger)
        t = _note(now, r[1])
        assert isinstance(t, Transition)
        return t

    def _manual(self, now: float, trigger: Trigger) -> Transition | None:
        r = self._call(b"manual", now, trigger.value)
        if r[0] != b"ok":
            return None
        t = _note(now, r[1])
        assert isinstance(t, Transition)
        return t

    def _snapshot(self, now: float) -> BreakerSnapshot:
        r = self._call(b"snapshot", now)
        calls, failures, slow = int(r[1]), int(r[2]), int(r[3])
        return BreakerSnapshot(
            _STATES[int(r[0])],
            calls,
            failures,
            slow,
            failures / calls if calls else 0.0,
            slow / calls if calls else 0.0,
            float(r[4]) if r[4] else None,
            int(r[5]),
            int(r[6]),
            int(r[7]),
            int(r[8]),
            int(r[9]),
            int(r[10]),
        )


def _note(now: float, n: list[Any]) -> Note:
    if n[0] == b"a":
        return BreakerAlarm(now, int(n[1]), int(n[2]), int(n[3]))
    return Transition(
        now,
        _STATES[int(n[1])],
        _STATES[int(n[2])],
        Trigger(n[3].decode()),
        int(n[4]),
        int(n[5]),
        int(n[6]),
        float(n[7]) if n[7] else None,
    )


def _notes(now: float, raw: list[Any]) -> tuple[Note, ...]:
    return tuple(_note(now, n) for n in raw) if raw else ()
