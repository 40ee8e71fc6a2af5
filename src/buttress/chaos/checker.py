"""The nothing-lost checker: did every acknowledged write survive?

Record a *history* of operations against a set-like store while faults are injected, then one final
read of everything the store holds, and compare.  This is Jepsen's set checker:

* every ``add`` is first *invoked*, then completes as ``ok`` (acknowledged), ``fail`` (definitely
  not applied) or ``unknown`` (timed out, connection reset: it may or may not have landed);
* the final read is the set of values the store returns once the faults are gone.

From those, with ``A`` = attempted (invoked) values, ``K`` = acknowledged, ``F`` = failed,
``U`` = unknown, ``R`` = final read::

    lost        = K - R          acknowledged but gone: the store broke its promise
    unexpected  = R - A          read back but never written: corruption or a stray writer
    revived     = (F & R) - K    reported failed, yet present: a "fail" that was not one
    recovered   = (U & R) - K    unknown outcome, landed (fine)
    vanished    = U - R - K      unknown outcome, did not land (fine)

    valid  <=>  a final read exists and lost, unexpected and revived are all empty

A history is thread-safe to record into, and can be saved to and loaded from JSON lines
(``buttress chaos check history.jsonl``), one operation per line::

    {"process": 1, "type": "invoke", "f": "add", "value": 3, "id": 7}
    {"process": 1, "type": "ok", "f": "add", "value": 3, "id": 7}
    {"process": 0, "type": "ok", "f": "read", "value": [1, 2, 3]}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from buttress.errors import ButtressError, ConfigError

__all__ = ["History", "Op", "PendingAdd", "SetCheckResult", "check_set"]

OpType = Literal["invoke", "ok", "fail", "unknown"]
_TYPES = ("invoke", "ok", "fail", "unknown")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Op:
    """One line of a history: an operation's invocation or completion.

    ``id`` pairs a completion with its invocation; ``time`` is seconds on :func:`time.monotonic`.
    """

    type: OpType
    f: str
    value: Any
    id: int
    process: int | str = 0
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": sorted(self.value, key=repr)
            if isinstance(self.value, set | frozenset)
            else self.value,
            "id": self.id,
            "time": self.time,
        }


class PendingAdd:
    """An invoked ``add``; complete it with :meth:`ok`, :meth:`fail` or :meth:`unknown` (once).

    As a context manager: a normal exit records ``ok``; an exception whose type is in the history's
    ``definite_failures`` records ``fail``; any other exception records ``unknown`` (the write may
    have landed).  An explicit completion inside the block wins.
    """

    __slots__ = ("_done", "history", "id", "process", "value")

    def __init__(self, history: History, value: Hashable, op_id: int, process: int | str) -> None:
        self.history = history
        self.value = value
        self.id = op_id
        self.process = process
        self._done = False

    def _complete(self, kind: OpType) -> None:
        if self._done:
            raise ButtressError(f"operation {self.id} (add {self.value!r}) was already completed")
        self._done = True
        self.history._append(kind, "add", self.value, self.id, self.process)

    def ok(self) -> None:
        """The store acknowledged the write."""
        self._complete("ok")

    def fail(self) -> None:
        """The store definitely did not apply the write."""
        self._complete("fail")

    def unknown(self) -> None:
        """The outcome is unknown (timeout, reset): the write may or may not have landed."""
        self._complete("unknown")

    def __enter__(self) -> PendingAdd:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._done:
            return
        if exc is None:
            self.ok()
        elif isinstance(exc, self.history.definite_failures):
            self.fail()
        else:
            self.unknown()


class History:
    """A thread-safe, append-only record of set operations and the final read.

    :param definite_failures: exception types that prove a write was *not* applied (a validation
        error, an HTTP 4xx); used by :meth:`add` as a context manager and by :meth:`record_add`.
        Default: none, so every error counts as ``unknown``, the safe assumption under faults.
    """

    def __init__(self, *, definite_failures: tuple[type[BaseException], ...] = ()) -> None:
        for t in definite_failures:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError("definite_failures", definite_failures, "must be exception types")
        self.definite_failures = definite_failures
        self._ops: list[Op] = []
        self._lock = threading.Lock()
        self._next = 0
        self._final: frozenset[Hashable] | None = None

    def _append(self, kind: OpType, f: str, value: Any, op_id: int, process: int | str) -> None:
        op = Op(kind, f, value, op_id, process, time.monotonic())
        with self._lock:
            self._ops.append(op)

    def add(self, value: Hashable, *, process: int | str = 0) -> PendingAdd:
        """Record the invocation of ``add(value)``; complete the returned :class:`PendingAdd`."""
        with self._lock:
            op_id = self._next
            self._next += 1
        self._append("invoke", "add", value, op_id, process)
        return PendingAdd(self, value, op_id, process)

    def record_add(self, value: Hashable, write: Callable[[], T], *, process: int | str = 0) -> T:
        """Invoke ``write()`` as ``add(value)``: ``ok`` when it returns, ``fail`` or ``unknown``
        when it raises (see ``definite_failures``); the error propagates."""
        with self.add(value, process=process):
            return write()

    def final_read(self, values: Iterable[Hashable], *, process: int | str = 0) -> None:
        """Record the final read: every value the store holds once the faults are gone."""
        got = frozenset(values)
        with self._lock:
            self._final = got
            op_id = self._next
            self._next += 1
        self._append("ok", "read", got, op_id, process)

    @property
    def ops(self) -> list[Op]:
        """A snapshot of the operations recorded so far."""
        with self._lock:
            return list(self._ops)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    # -- persistence ----------------------------------------------------------

    def dump(self, path: str | Path) -> None:
        """Write the history as JSON lines."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for op in self.ops:
                fh.write(json.dumps(op.to_json(), default=str) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> History:
        """Read a JSON-lines history; a malformed line raises a :class:`ButtressError` naming it."""
        h = cls()
        p = Path(path)
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ButtressError(f"{path}: file not found") from None
        pending: dict[Any, PendingAdd] = {}
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ButtressError(f"{path}:{n}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ButtressError(f"{path}:{n}: expected a JSON object")
            kind, f = rec.get("type"), rec.get("f")
            if kind not in _TYPES:
                raise ButtressError(f"{path}:{n}: type: must be one of {', '.join(_TYPES)}")
            if f not in ("add", "read"):
                raise ButtressError(f"{path}:{n}: f: must be 'add' or 'read'")
            process = rec.get("process", 0)
            if f == "read":
                if kind != "ok":
                    continue  # an invoked or failed read says nothing about the final state
                value = rec.get("value")
                if not isinstance(value, list):
                    raise ButtressError(f"{path}:{n}: value: a read must list the values")
                h.final_read(_hashable(v) for v in value)
                continue
            value = _hashable(rec.get("value"))
            key = rec.get("id", (process, value))
            if kind == "invoke":
                pa = h.add(value, process=process)
                pending[key] = pa
            else:
                pa_done = pending.pop(key, None)
                if pa_done is None:
                    raise ButtressError(f"{path}:{n}: {kind} of an add that was never invoked")
                pa_done._complete(kind)
        return h


def _hashable(v: Any) -> Hashable:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SetCheckResult:
    """What :func:`check_set` found.  ``valid`` is ``None`` when the history has no final read."""

    valid: bool | None
    attempted: frozenset[Hashable] = field(default_factory=frozenset)
    acknowledged: frozenset[Hashable] = field(default_factory=frozenset)
    lost: frozenset[Hashable] = field(default_factory=frozenset)
    unexpected: frozenset[Hashable] = field(default_factory=frozenset)
    revived: frozenset[Hashable] = field(default_factory=frozenset)
    recovered: frozenset[Hashable] = field(default_factory=frozenset)
    vanished: frozenset[Hashable] = field(default_factory=frozenset)
    never_completed: frozenset[Hashable] = field(default_factory=frozenset)

    def summary(self) -> dict[str, Any]:
        """Counts and (sorted) members, ready for JSON."""

        def s(x: frozenset[Hashable]) -> list[Any]:
            return sorted(x, key=repr)

        return {
            "valid": self.valid,
            "attempted_count": len(self.attempted),
            "acknowledged_count": len(self.acknowledged),
            "lost_count": len(self.lost),
            "lost": s(self.lost),
            "unexpected_count": len(self.unexpected),
            "unexpected": s(self.unexpected),
            "revived_count": len(self.revived),
            "revived": s(self.revived),
            "recovered_count": len(self.recovered),
            "recovered": s(self.recovered),
            "vanished_count": len(self.vanished),
            "never_completed_count": len(self.never_completed),
        }


def check_set(history: History | Iterable[Op]) -> SetCheckResult:
    """Check a history of ``add`` operations and one final ``read`` (see the module docstring).

    An add that was invoked but never completed counts as ``unknown``.  When several reads were
    recorded, the last one is the final read.
    """
    ops = history.ops if isinstance(history, History) else list(history)
    attempted: set[Hashable] = set()
    outcome: dict[int, str] = {}
    value_of: dict[int, Hashable] = {}
    final: frozenset[Hashable] | None = None
    for op in ops:
        if op.f == "read":
            if op.type == "ok":
                final = frozenset(op.value)
            continue
        if op.type == "invoke":
            attempted.add(op.value)
            value_of[op.id] = op.value
            outcome.setdefault(op.id, "pending")
        else:
            outcome[op.id] = op.type
            value_of.setdefault(op.id, op.value)
    ok: set[Hashable] = set()
    failed: set[Hashable] = set()
    unknown: set[Hashable] = set()
    pending: set[Hashable] = set()
    for op_id, kind in outcome.items():
        v = value_of[op_id]
        if kind == "ok":
            ok.add(v)
        elif kind == "fail":
            failed.add(v)
        else:
            unknown.add(v)
            if kind == "pending":
                pending.add(v)
    acknowledged = frozenset(ok)
    if final is None:
        return SetCheckResult(
            valid=None,
            attempted=frozenset(attempted),
            acknowledged=acknowledged,
            never_completed=frozenset(pending),
        )
    lost = acknowledged - final
    unexpected = final - attempted
    revived = (failed & final) - acknowledged
    recovered = (unknown & final) - acknowledged
    vanished = unknown - final - acknowledged
    return SetCheckResult(
        valid=not lost and not unexpected and not revived,
        attempted=frozenset(attempted),
        acknowledged=acknowledged,
        lost=frozenset(lost),
        unexpected=frozenset(unexpected),
        revived=frozenset(revived),
        recovered=frozenset(recovered),
        vanished=frozenset(vanished),
        never_completed=frozenset(pending),
    )
