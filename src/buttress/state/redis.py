"""Shared state on Redis: breakers, rate limits and retry budgets that hold fleet-wide.

Every decision is **one round trip**: an ``EVALSHA`` of a Lua script (``scripts/*.lua``) that reads,
decides and writes atomically.  Scripts are loaded on first use and reloaded after ``NOSCRIPT``
(a Redis restart or ``SCRIPT FLUSH``).  Scripts read the server's ``TIME``, so replicas with
skewed clocks agree on break ends, bucket refills and budget windows.

Keys (``S`` = ``<service>/<scope>``; the braces are a Redis Cluster hash tag, so the keys of one
breaker or one budget live on one node)::

    <prefix>:{S}:b       hash     breaker state, counters and time-window buckets
    <prefix>:{S}:r       string   breaker count window: one byte per call
    <prefix>:S:rl[:key]  string   rate-limit bucket (its TAT); per key, spread over the cluster
    <prefix>:{S}:rb      hash     ratio retry budget: a ring of slices + 2 time slices
    <prefix>:{S}:tb      hash     token-bucket retry budget

Every write sets a TTL: breakers and budgets ``ttl`` (default one day, renewed by each decision),
rate-limit buckets the time until they are full again (after which forgetting them changes nothing).

**Local decisions, shared advice.**  Calls use a short ``timeout`` (default 50 ms).  An error (a
refused or timed-out connection, ``READONLY``, ``OOM``, ``WRONGTYPE``, any Redis error) marks the
connection *down* for ``retry_interval`` (default 1 s): meanwhile each policy decides by its
``on_unavailable`` rule without touching the network; then the next decision tries Redis again.
See :mod:`buttress.state.base` for the rules and the events.  Nothing raises into the caller.

**How long a decision can wait.**  A decision is one ``EVALSHA`` on a pooled connection: it waits
at most ``timeout`` for the answer, plus at most ``timeout`` to connect when it must open a
connection first.  A *stalled* Redis (a stopped process, a full ``SLOWLOG`` of work, a dropped
link) accepts or keeps the connection and never answers, so the decision that finds it costs one
``timeout`` (50 ms by default) and the decisions after it, for ``retry_interval``, none.  A timeout
is never retried (that would double the wait); a *connection* error is retried once at once, since a
pooled connection is stale after a Redis restart and the retry reconnects.

**Blocking.**  Calls use redis-py's synchronous client, also from the policies' asyncio layers
(the store interface is synchronous: a breaker decides under its lock).  In an ``async def``
pipeline a decision therefore blocks the event loop for one round trip: well under a millisecond on
a healthy LAN, and at most the bound above (``timeout``, 50 ms) when Redis stalls, once per
``retry_interval``.  Keep ``timeout`` short for that reason.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, MissingExtra
from buttress.events import Emitter
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
from buttress.policies.budget import RetryBudget, TokenBucketBudget
from buttress.policies.ratelimit import MemoryBucketStore
from buttress.policies.windows import CountWindow

from .base import (
    OnUnavailable,
    StateRestored,
    StateStore,
    StateUnavailable,
    check_on_unavailable,
    check_scope,
    resolve_modes,
)
from .urls import check_redis_url, redact_url

__all__ = [
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "RedisBreakerStore",
    "RedisBucketStore",
    "RedisState",
    "SharedRetryBudget",
    "SharedTokenBucketBudget",
]

DEFAULT_TIMEOUT = 0.05
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_TTL = 86_400.0
DEFAULT_FLUSH_INTERVAL = 0.1
EPOCH = 1_700_000_000
"""Scripts count time in seconds since this Unix time, so a double keeps microseconds."""

BREAKS_PRECOMPUTED = 32
"""Break durations sent to the breaker script: for 1..32 consecutive opens (then the last)."""

_STATES = list(BreakerState)  # the script's state codes are indexes into this list
_STATE_CODE = {s: i for i, s in enumerate(_STATES)}
_FOREIGN = -(2**62)  # generation of a permit given by a fail_open rule: its result is not counted


def _redis() -> Any:
    try:
        import redis
    except ImportError:
        raise MissingExtra("the Redis state store", "redis", "redis") from None
    return redis


def _source(name: str) -> str:
    return (importlib.resources.files("buttress.state") / "scripts" / name).read_text("utf-8")


class _Script:
    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _source(name)
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


class _Down(Exception):
    """Internal: the shared store could not decide (its message says why)."""


class _Link:
    """One client shared by the stores of one :class:`RedisState`, and whether it is down."""

    __slots__ = (
        "client",
        "down_until",
        "error",
        "errors",
        "mono",
        "noscript",
        "retry_interval",
        "scripts",
    )

    def __init__(self, client: Any, retry_interval: float, clock: Clock) -> None:
        self.client = client
        self.retry_interval = retry_interval
        self.mono = clock.monotonic
        self.down_until = -math.inf
        self.error = ""
        redis = _redis()
        self.errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        self.noscript: type[BaseException] = redis.exceptions.NoScriptError
        self.scripts = {n: _Script(f"{n}.lua") for n in ("breaker", "ratelimit", "budget")}

    def run(self, script: _Script, *args: Any) -> Any:
        """``EVALSHA`` (loading the script on ``NOSCRIPT``); any failure raises :class:`_Down`."""
        execute = self.client.execute_command
        try:
            try:
                return execute("EVALSHA", script.sha, *args)
            except self.noscript:
                script.sha = self.client.script_load(script.source)
                return execute("EVALSHA", script.sha, *args)
        except self.errors as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.down_until = self.mono() + self.retry_interval
            raise _Down(self.error) from None


class _Shared:
    """What every shared store does around its decisions: fallback, events, restore."""

    kind: ClassVar[str] = "state"

    __slots__ = ("_down_since", "degraded", "emitter", "link", "mode", "scope")

    def __init__(self, link: _Link, scope: str, mode: OnUnavailable) -> None:
        self.link = link
        self.scope = scope
        self.mode = mode
        self.emitter = Emitter(scope)
        self.degraded = False
        self._down_since = 0.0

    def _down(self) -> None:
        """Called on every fallback decision; reports the first of an outage."""
        if self.degraded:
            return
        self.degraded = True
        now = self.link.mono()
        self._down_since = now
        em = self.emitter
        if em.active:
            em.emit(
                StateUnavailable(em.pipeline, self.kind, now, "redis", self.link.error, self.mode)
            )

    def _restore(self) -> None:
        """Called when the shared store decided again after an outage."""
        self.degraded = False
        now = self.link.mono()
        self._resync(now)
        em = self.emitter
        if em.active:
            em.emit(StateRestored(em.pipeline, self.kind, now, "redis", now - self._down_since))

    def _resync(self, now: float) -> None:
        """Forget what was decided locally during the outage (the shared state rules again)."""

    def _retry_after(self) -> float:
        """For ``fail_closed`` refusals: until the store is tried again (at least 1 ms)."""
        return max(0.001, self.link.down_until - self.link.mono())


# --- circuit breaker -----------------------------------------------------------------------------

_ACQ = BreakerMachine._acquire_locked
_REC = BreakerMachine._record_locked
_MOVE = BreakerMachine._move_locked
_MANUAL = BreakerMachine._manual_locked
_SNAP = BreakerMachine._snapshot_locked


class RedisBreakerStore(_Shared):
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
    """

    kind: ClassVar[str] = "circuit_breaker"

    __slots__ = ("_args", "_keys", "_ops", "local", "machine", "server_time")

    def __init__(
        self,
        link: _Link,
        key: str,
        scope: str,
        mode: OnUnavailable,
        *,
        ttl: float,
        server_time: bool,
    ) -> None:
        super().__init__(link, scope, mode)
        self._keys = (f"{key}:b", f"{key}:r")
        self.server_time = server_time
        self.machine: BreakerMachine | None = None
        self.local: MemoryBreakerStore | None = None
        self._args: tuple[Any, ...] = (math.ceil(ttl),)
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
            b = float(machine._break(n))
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
        if f is _REC and args[1] < 0:
            return self._fallback(f, fn, args)  # a permit this process gave on its own
        link = self.link
        if link.down_until <= link.mono():
            try:
                result = op(*args)
            except _Down:
                pass
            else:
                if self.degraded:
                    self._restore()
                return result
        self._down()
        return self._fallback(f, fn, args)

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
            local.atomically(m._move_locked, now, Trigger.RESET)

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
            *extra,
        )

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


# --- rate limiter --------------------------------------------------------------------------------


class RedisBucketStore(_Shared):
    """A :class:`~buttress.policies.ratelimit.BucketStore` on Redis: every key's GCRA bucket, one
    script call per decision, on the server's clock (the ``now`` passed in is used only by the
    local fallback).

    While Redis is unavailable: ``local`` decides with an in-process bucket at ``local_share`` of
    the rate (the same burst); ``fail_open`` admits; ``fail_closed`` refuses with ``retry_after`` =
    time until Redis is tried again.
    """

    kind: ClassVar[str] = "rate_limiter"

    __slots__ = ("_key", "_script", "local", "local_share", "max_keys", "server_time")

    def __init__(
        self,
        link: _Link,
        key: str,
        scope: str,
        mode: OnUnavailable,
        *,
        max_keys: int,
        local_share: float,
        server_time: bool,
    ) -> None:
        super().__init__(link, scope, mode)
        self.local_share = _share(local_share)
        self.max_keys = max_keys
        self.local = MemoryBucketStore(max_keys)
        self.server_time = server_time
        self._key = key
        self._script = link.scripts["ratelimit"]

    def __repr__(self) -> str:
        return f"RedisBucketStore(scope={self.scope!r}, on_unavailable={self.mode!r})"

    def redis_key(self, key: Hashable) -> str:
        """The Redis key of ``key``'s bucket."""
        if key is None:
            return self._key
        return f"{self._key}:{key if isinstance(key, str | int) else repr(key)}"

    def acquire(
        self,
        key: Hashable,
        now: float,
        increment: float,
        tolerance: float,
        max_wait: float,
    ) -> float:
        link = self.link
        if link.down_until <= link.mono():
            try:
                r = link.run(
                    self._script,
                    1,
                    self._key if key is None else self.redis_key(key),
                    b"" if self.server_time else repr(now),
                    increment,
                    tolerance,
                    max_wait,
                )
            except _Down:
                pass
            else:
                if self.degraded:
                    self._restore()
                return float(r)
        self._down()
        mode = self.mode
        if mode == "fail_open":
            return 0.0
        if mode == "fail_closed":
            return -self._retry_after()
        share = self.local_share
        return self.local.acquire(key, now, increment / share, tolerance / share, max_wait)

    def _resync(self, now: float) -> None:
        self.local = MemoryBucketStore(self.max_keys)


# --- retry budgets -------------------------------------------------------------------------------


class SharedRetryBudget(_Shared):
    """Finagle's ratio budget (:class:`~buttress.policies.budget.RetryBudget` rules), fleet-wide.

    Deposits (one per original call) are counted locally and sent in batches: at most every
    ``flush_interval`` seconds (default 0.1) and with every :meth:`try_withdraw`, which is one
    round trip.  A batch is filed at the time of its *oldest* deposit, so no deposit is counted
    for longer than it stays in the window: over any ``ttl`` window ending at a grant, fleet-wide::

        retries granted <= ratio * requests + min_per_second * ttl

    (the reserve ``min_per_second * ttl`` is the fleet's, not each process's).  Deposits not yet
    sent are not counted, which only lowers what is granted.  A local
    :class:`~buttress.policies.budget.RetryBudget` sees every deposit made here, and decides for
    ``local`` while Redis is unavailable.
    """

    kind: ClassVar[str] = "retry_budget"
    counts_requests = True
    counts_outcomes = False

    __slots__ = (
        "_args",
        "_flush_at",
        "_key",
        "_lock",
        "_oldest",
        "_pending",
        "flush_interval",
        "local",
        "server_time",
    )

    def __init__(
        self,
        link: _Link,
        key: str,
        scope: str,
        mode: OnUnavailable,
        *,
        ratio: float,
        min_per_second: float,
        ttl: float,
        slices: int,
        clock: Clock,
        flush_interval: float,
        server_time: bool,
    ) -> None:
        super().__init__(link, scope, mode)
        self.local = RetryBudget(
            ratio=ratio, min_per_second=min_per_second, ttl=ttl, slices=slices, clock=clock
        )
        self.flush_interval = flush_interval
        self.server_time = server_time
        self._key = key
        self._lock = threading.Lock()
        self._pending = 0
        self._oldest = 0.0
        self._flush_at = -math.inf
        lb = self.local
        self._args = (
            repr(lb.ttl / slices),
            slices,
            repr(lb.ratio),
            repr(lb.reserve),
            math.ceil(lb.ttl * 2) + 1,
        )

    def __repr__(self) -> str:
        lb = self.local
        return (
            f"SharedRetryBudget(scope={self.scope!r}, ratio={lb.ratio:g}, "
            f"min_per_second={lb.min_per_second:g}, ttl={lb.ttl:g})"
        )

    def on_request(self, now: float) -> None:
        self.local.on_request(now)
        # A lost increment under a race only lowers the deposits counted (never over-grants).
        if not self._pending:
            self._oldest = now
        self._pending += 1
        if now >= self._flush_at:
            self._sync(now, False)

    def on_success(self) -> None:  # pragma: no cover - counts_outcomes is False
        pass

    def on_failure(self) -> None:  # pragma: no cover - counts_outcomes is False
        pass

    def try_withdraw(self, now: float) -> bool:
        """One retry if the fleet's window allows it (one round trip)."""
        r = self._sync(now, True)
        if r is not None:
            return bool(r[0] == 1)
        if self.mode == "fail_open":
            return True
        if self.mode == "fail_closed":
            return False
        return self.local.try_withdraw(now)

    def balance(self, now: float | None = None) -> float:
        """Retries the fleet's budget could grant now (sends pending deposits; one round trip).
        The local budget's balance while Redis is unavailable."""
        if now is None:
            now = self.link.mono()
        r = self._sync(now, False)
        return float(r[1]) if r is not None else self.local.balance(now)

    def _sync(self, now: float, withdraw: bool) -> list[Any] | None:
        with self._lock:
            n = self._pending
            age = max(0.0, now - self._oldest) if n else 0.0
            self._pending = 0
            self._flush_at = now + self.flush_interval
        link = self.link
        if link.down_until <= link.mono():
            try:
                r: list[Any] = link.run(
                    link.scripts["budget"],
                    1,
                    self._key,
                    b"ratio",
                    b"" if self.server_time else repr(now),
                    *self._args,
                    n,
                    repr(age),
                    1 if withdraw else 0,
                )
            except _Down:
                pass
            else:
                if self.degraded:
                    self._restore()
                return r
        # Keep the batch for when Redis returns (the window drops whatever is too old by then).
        with self._lock:
            if n:
                if not self._pending or now - age < self._oldest:
                    self._oldest = now - age
                self._pending += n
        self._down()
        return None


class SharedTokenBucketBudget(_Shared):
    """gRPC's ``retryThrottling`` (:class:`~buttress.policies.budget.TokenBucketBudget` rules),
    fleet-wide: one token count, in thousandths, for every process.

    Outcomes are counted locally and sent in batches (every ``flush_interval`` seconds and with each
    :meth:`try_withdraw`, one round trip); a batch applies its successes, then its failures (the
    order that leaves the fewest tokens).  A local
    :class:`~buttress.policies.budget.TokenBucketBudget` hears every outcome and decides for
    ``local`` while Redis is unavailable.
    """

    kind: ClassVar[str] = "retry_budget"
    counts_requests = False
    counts_outcomes = True

    __slots__ = (
        "_args",
        "_fail",
        "_flush_at",
        "_key",
        "_lock",
        "_succ",
        "_ttl",
        "flush_interval",
        "local",
        "shared_tokens",
    )

    def __init__(
        self,
        link: _Link,
        key: str,
        scope: str,
        mode: OnUnavailable,
        *,
        max_tokens: float,
        token_ratio: float,
        flush_interval: float,
        ttl: float,
    ) -> None:
        super().__init__(link, scope, mode)
        self.local = TokenBucketBudget(max_tokens=max_tokens, token_ratio=token_ratio)
        self.flush_interval = flush_interval
        self._key = key
        self._lock = threading.Lock()
        self._succ = 0
        self._fail = 0
        self._flush_at = -math.inf
        self._args = (
            self.local._max_milli,
            self.local._ratio_milli,
        )
        self._ttl = math.ceil(ttl)
        self.shared_tokens: float | None = None
        """The fleet's tokens as of the last round trip (``None`` before the first)."""

    def __repr__(self) -> str:
        return (
            f"SharedTokenBucketBudget(scope={self.scope!r}, max_tokens={self.local.max_tokens:g}, "
            f"token_ratio={self.local.token_ratio:g})"
        )

    def on_request(self, now: float) -> None:  # pragma: no cover - counts_requests is False
        pass

    def on_success(self) -> None:
        self.local.on_success()
        self._succ += 1
        if self.link.mono() >= self._flush_at:
            self._sync()

    def on_failure(self) -> None:
        self.local.on_failure()
        self._fail += 1

    def try_withdraw(self, now: float) -> bool:
        """Whether a retry is allowed: the fleet's ``tokens > max_tokens / 2`` (one round trip)."""
        r = self._sync()
        if r is not None:
            return r
        if self.mode == "fail_open":
            return True
        if self.mode == "fail_closed":
            return False
        return self.local.try_withdraw(now)

    def _sync(self) -> bool | None:
        with self._lock:
            s, f = self._succ, self._fail
            self._succ = self._fail = 0
        link = self.link
        now = link.mono()
        self._flush_at = now + self.flush_interval
        if link.down_until <= now:
            try:
                r = link.run(
                    link.scripts["budget"], 1, self._key, b"tokens", *self._args, s, f, self._ttl
                )
            except _Down:
                pass
            else:
                if self.degraded:
                    self._restore()
                self.shared_tokens = int(r[1]) / 1000
                return bool(r[0] == 1)
        with self._lock:
            self._succ += s
            self._fail += f
        self._down()
        return None


# --- the factory ---------------------------------------------------------------------------------


def _share(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError("local_share", value, "must be within (0, 1]")
    return float(value)


def _seconds(parameter: str, value: object, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero else value > 0)
        or not value < math.inf
    ):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(parameter, value, f"must be a finite number of seconds {bound}")
    return float(value)


class RedisState(StateStore):
    """State shared through Redis (``pip install 'buttress[redis]'``).

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
        ``unix:///path.sock``.  Parsed now; the first connection is made by the first decision.
    :param client: instead of ``url``: any redis-py client (``Redis``, ``RedisCluster``, or a
        Sentinel's ``master_for(...)``); its own timeouts apply.
    :param service: the service name, the first part of every key.  Default ``"default"``.
    :param prefix: the key prefix.  Default ``"buttress"``.
    :param timeout: socket timeout per call, seconds.  Default 0.05.
    :param retry_interval: after a failure, seconds before Redis is tried again.  Default 1.
    :param ttl: seconds an untouched breaker or budget is kept.  Default 86,400 (a day).
    :param on_unavailable: ``local`` (default), ``fail_open`` or ``fail_closed``, or a mapping by
        policy kind (``circuit_breaker``, ``rate_limiter``, ``retry_budget``).
    :param flush_interval: the budgets' batching interval, seconds.  Default 0.1.
    :param local_share: the fraction of a rate limit one process uses while it decides locally
        (``local`` rule); ``1 / replicas`` keeps the fleet at the limit.  Default 1.
    :param server_time: read time from Redis (``TIME``, default).  ``False`` sends the policies'
        clock readings instead: only for tests on a fake clock within one process.
    :param clock: the clock of the outage timers and events.
    """

    backend: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        service: str = "default",
        prefix: str = "buttress",
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        ttl: float = DEFAULT_TTL,
        on_unavailable: OnUnavailable | Mapping[str, OnUnavailable] = "local",
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        local_share: float = 1.0,
        server_time: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        redis = _redis()
        self.local_share = _share(local_share)
        self.timeout = _seconds("timeout", timeout)
        self.retry_interval = _seconds("retry_interval", retry_interval, zero=True)
        self.ttl = _seconds("ttl", ttl)
        self.flush_interval = _seconds("flush_interval", flush_interval, zero=True)
        self.modes = resolve_modes(on_unavailable)
        for name, value in (("service", service), ("prefix", prefix)):
            if not isinstance(value, str) or not value or "{" in value or "}" in value:
                raise ConfigError(name, value, "must be a non-empty string without '{' or '}'")
        self.service = service
        self.prefix = prefix
        self.server_time = bool(server_time)
        self.clock = clock
        self.url = url
        if (url is None) == (client is None):
            raise ConfigError(
                "url", redact_url(url), "give a Redis URL or a client, not both nor neither"
            )
        self._own = client is None
        if client is None:
            client = _client_from_url(redis, url, self.timeout)
        self.client = client
        self._link = _Link(client, self.retry_interval, clock)

    def __repr__(self) -> str:
        where = redact_url(self.url) if self.url is not None else type(self.client).__name__
        return f"RedisState({where!r}, service={self.service!r})"

    @property
    def available(self) -> bool:
        """``False`` while the stores decide without Redis (until the next attempt)."""
        return self._link.down_until <= self._link.mono()

    def ping(self) -> bool:
        """Whether Redis answers ``PING`` now (never raises)."""
        try:
            return bool(self.client.ping())
        except self._link.errors:
            return False

    def close(self) -> None:
        if self._own:
            self.client.close()

    def _mode(self, kind: str, value: OnUnavailable | None) -> OnUnavailable:
        if value is None:
            return self.modes[kind]
        return check_on_unavailable("on_unavailable", value)

    def _tagged(self, scope: str) -> str:
        return f"{self.prefix}:{{{self.service}/{check_scope(scope)}}}"

    def breaker_store(
        self, scope: str, *, on_unavailable: OnUnavailable | None = None
    ) -> RedisBreakerStore:
        return RedisBreakerStore(
            self._link,
            self._tagged(scope),
            scope,
            self._mode("circuit_breaker", on_unavailable),
            ttl=self.ttl,
            server_time=self.server_time,
        )

    def bucket_store(
        self,
        scope: str,
        *,
        max_keys: int = 10_000,
        local_share: float | None = None,
        on_unavailable: OnUnavailable | None = None,
    ) -> RedisBucketStore:
        return RedisBucketStore(
            self._link,
            f"{self.prefix}:{self.service}/{check_scope(scope)}:rl",
            scope,
            self._mode("rate_limiter", on_unavailable),
            max_keys=max_keys,
            local_share=self.local_share if local_share is None else local_share,
            server_time=self.server_time,
        )

    def retry_budget(
        self,
        scope: str,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        slices: int = 10,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> SharedRetryBudget:
        return SharedRetryBudget(
            self._link,
            f"{self._tagged(scope)}:rb",
            scope,
            self._mode("retry_budget", on_unavailable),
            ratio=ratio,
            min_per_second=min_per_second,
            ttl=ttl,
            slices=slices,
            clock=clock,
            flush_interval=self.flush_interval,
            server_time=self.server_time,
        )

    def token_bucket_budget(
        self,
        scope: str,
        *,
        max_tokens: float = 10.0,
        token_ratio: float = 0.1,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> SharedTokenBucketBudget:
        return SharedTokenBucketBudget(
            self._link,
            f"{self._tagged(scope)}:tb",
            scope,
            self._mode("retry_budget", on_unavailable),
            max_tokens=max_tokens,
            token_ratio=token_ratio,
            flush_interval=self.flush_interval,
            ttl=self.ttl,
        )


def _client_from_url(redis: Any, url: object, timeout: float) -> Any:
    url = check_redis_url(url)  # port, db and socket path read now; ConfigError shows no secret
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # One immediate retry, on a *connection* error only: a pooled connection may be stale
            # after a Redis restart (the retry reconnects).  Never on a timeout: a stalled server
            # would cost two timeouts per decision instead of one.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
            health_check_interval=0,
        )
        # from_url parses lazily in places (the port); make every part of the URL be read now.
        kw = client.connection_pool.connection_kwargs
        if "path" not in kw:
            int(kw.get("port", 6379))
            str(kw.get("host", ""))
    except (ValueError, TypeError):
        raise ConfigError("url", redact_url(url), "is not a Redis URL redis-py accepts") from None
    return client
