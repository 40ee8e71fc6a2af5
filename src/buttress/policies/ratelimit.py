"""Rate limiter: GCRA (the token bucket's exact twin) with burst, wait-or-reject, per-key buckets.

The Generic Cell Rate Algorithm keeps one number per bucket, the *theoretical arrival time* ``TAT``.
With ``rate`` calls per ``per`` seconds, the emission interval is ``T = per / rate``; with ``burst``
calls allowed at once, the tolerance is ``burst * T``.  A call of ``cost`` tokens at time ``now``::

    tat      = max(TAT, now)
    new_tat  = tat + cost * T
    wait     = new_tat - burst * T - now
    wait <= 0          -> admit now,              TAT = new_tat
    0 < wait <= limit  -> admit after ``wait`` s, TAT = new_tat   (a reservation: mode="wait")
    wait > limit       -> refuse, retry_after = wait, TAT unchanged

``limit`` is 0 in ``mode="reject"`` and ``min(max_wait, deadline - now)`` in ``mode="wait"``.  This
is a token bucket of capacity ``burst`` refilled at one token per ``T`` (the bucket holds
``(now + burst*T - TAT) / T`` tokens), kept as one float, so a decision is O(1) and a bucket whose
``TAT <= now`` is *full* and can be forgotten without changing any future decision.

**The bound.**  Over any window of length ``W``, the calls admitted (at the times they proceed)
number at most ``burst + W / T``: ``TAT`` grows by ``T`` per admitted call and never exceeds the
proceeding time plus ``burst * T``.

**Where the state lives.**  Decisions go through one narrow interface, :class:`BucketStore`:
``acquire(key, now, increment, tolerance, max_wait) -> float``, one atomic step per decision,
so the in-memory store here and a shared store (one Redis round trip running the same arithmetic in
a script) are interchangeable.  :class:`MemoryBucketStore` bounds its memory: at most ``max_keys``
buckets, full buckets are swept first, then the least recently used is dropped.

**The shared bucket without a lock.**  The bucket of key ``None`` (one limit for all callers) is
guarded by a *gate*: a list holding one item.  A decision takes the item with ``list.pop()``,
reads and writes the ``TAT``, and puts the item back with ``list.append()``; under the GIL both are
atomic, so one decision at a time holds the gate, exactly as under a lock, for the cost of two list
operations.  A decision that finds the gate empty (its holder was switched out in the middle of a
few bytecodes) yields the GIL until the item is back.  An exception raised between the pop and the
block that puts the item back (a signal handler's ``KeyboardInterrupt`` lands at the end of a call)
is caught by the ``except BaseException`` of the pop's own ``try``, which puts the item back, so the
gate is never lost.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import CURRENT_CONTEXT, DEADLINE
from buttress.errors import ConfigError, RateLimited
from buttress.events import Emitter, Event
from buttress.options import (
    REQUIRED,
    Options,
    check_integer,
    choice,
    custom,
    documented,
    duration,
    integer,
    number,
)

from .base import FUSE_LIMITER, AsyncNext, Policy, SyncNext, invoke_async, invoke_sync

__all__ = [
    "RateLimiterOptions",
    "BucketStore",
    "MemoryBucketStore",
    "RateLimitRejected",
    "RateLimitWaited",
    "RateLimiter",
    "context_key",
]

DEFAULT_MAX_KEYS = 10_000
DEFAULT_MAX_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class RateLimitRejected(Event, policy_type="rate_limiter", kind="rejected"):
    """A call was refused; it would be admitted ``retry_after`` seconds from now."""

    key: Hashable
    retry_after: float


@dataclass(frozen=True, slots=True)
class RateLimitWaited(Event, policy_type="rate_limiter", kind="waited"):
    """A call was admitted after waiting ``delay`` seconds (``mode="wait"``)."""

    key: Hashable
    delay: float


@runtime_checkable
class BucketStore(Protocol):
    """Where bucket state lives.  One call is one atomic decision.

    ``acquire`` returns a float: ``>= 0`` means *admitted*, after waiting that many seconds (0: now;
    the store has already counted the call); ``< 0`` means *refused*, and ``-result`` is the
    retry-after in seconds (nothing was counted).  ``increment`` is ``cost * T`` (the call's cost
    in seconds of refill, ``T = per / rate``); ``tolerance`` is ``burst * T``.  A shared store may
    read its own clock instead of ``now``, as long as it is one clock for all callers.
    """

    def acquire(
        self, key: Hashable, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float: ...


class MemoryBucketStore:
    """Buckets in this process, thread-safe, with bounded memory.

    :param max_keys: the most buckets kept (``>= 1``).  Default 10,000.  When a new key would pass
        it, full buckets (``TAT <= now``: forgetting them changes nothing) are swept, at most once
        per ``max_keys // 8`` new keys; if none can be swept the least recently used bucket is
        dropped (which can only make the limiter more lenient for that one key, never stricter).
    """

    __slots__ = ("_lock", "_since_sweep", "_tat", "evicted", "gate", "max_keys", "shared_tat")

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.max_keys = check_integer("max_keys", max_keys, ge=1)
        self._lock = threading.Lock()
        self._tat: OrderedDict[Hashable, float] = OrderedDict()
        self._since_sweep = max_keys  # the first overflow may sweep at once
        # The bucket of key None, kept out of the LRU: its TAT, read and written only by the holder
        # of the gate, a list of one item that a decision pops and appends (see the module docs).
        # Both are public because RateLimiter's layers inline the step on this bucket (one call
        # less per decision); nothing else should touch them.
        self.shared_tat = -math.inf
        self.gate: list[None] = [None]
        self.evicted = 0
        """Buckets dropped while not full (each made one key's limit briefly more lenient)."""

    def __len__(self) -> int:
        """Keyed buckets held (the shared bucket of key ``None`` is not counted)."""
        return len(self._tat)

    def tat(self, key: Hashable) -> float | None:
        """The stored theoretical arrival time of ``key`` (``None``: no bucket, i.e. full)."""
        if key is None:
            tat = self.shared_tat
            return None if tat == -math.inf else tat
        return self._tat.get(key)

    def acquire(
        self, key: Hashable, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float:
        if key is None:
            return self.acquire_shared(now, increment, tolerance, max_wait)
        with self._lock:
            d = self._tat
            tat = d.get(key)
            new_tat, wait = gcra_step(-math.inf if tat is None else tat, now, increment, tolerance)
            if wait > max_wait:
                return -wait
            if tat is None:
                d[key] = new_tat
                if len(d) > self.max_keys:
                    self._shrink_locked(now)
            else:
                d[key] = new_tat
                d.move_to_end(key)
            return wait if wait > 0.0 else 0.0

    def acquire_shared(
        self, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float:
        """``acquire(None, ...)``: one decision on the shared bucket, without a lock."""
        gate = self.gate
        try:
            gate.pop()
        except IndexError:
            return self.acquire_shared_contended(now, increment, tolerance, max_wait)
        except BaseException:  # raised after the pop returned: the gate is ours, give it back
            gate.append(None)
            raise
        else:
            try:
                # gcra_step and the admission, inlined: this is try_acquire()'s hot path
                tat = self.shared_tat
                new_tat = (tat if tat > now else now) + increment
                wait = new_tat - tolerance - now
                if wait > max_wait:
                    return -wait
                self.shared_tat = new_tat
            finally:
                gate.append(None)
            return wait if wait > 0.0 else 0.0

    def acquire_shared_contended(
        self, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float:
        """:meth:`acquire_shared` when another decision holds the gate: yield the GIL until it
        is back (its holder needs a few bytecodes), then decide."""
        gate = self.gate
        while True:
            time.sleep(0)  # not a wait: hands the GIL to the holder
            try:
                gate.pop()
            except IndexError:
                continue
            except BaseException:
                gate.append(None)
                raise
            else:
                try:
                    return self.decide_gated(now, increment, tolerance, max_wait)
                finally:
                    gate.append(None)

    def decide_gated(
        self, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float:
        """Holding the gate: the GCRA step on the shared bucket."""
        new_tat, wait = gcra_step(self.shared_tat, now, increment, tolerance)
        if wait > max_wait:
            return -wait
        self.shared_tat = new_tat
        return wait if wait > 0.0 else 0.0

    def _shrink_locked(self, now: float) -> None:
        d = self._tat
        self._since_sweep += 1
        if self._since_sweep >= max(1, self.max_keys // 8):
            self._since_sweep = 0
            full = [k for k, tat in d.items() if tat <= now]
            for k in full:
                del d[k]
        while len(d) > self.max_keys:
            _, tat = d.popitem(last=False)
            if tat > now:
                self.evicted += 1


def gcra_step(tat: float, now: float, increment: float, tolerance: float) -> tuple[float, float]:
    """The GCRA decision, sans-I/O: the bucket's new theoretical arrival time if this call is
    admitted, and the wait before it may run (``<= 0``: at once).  ``tat`` is ``-inf`` for a
    full bucket.  The store admits when the wait is within ``max_wait``, and only then stores the
    new ``tat``; ``scripts/ratelimit.lua`` is the same step on Redis."""
    new_tat = (tat if tat > now else now) + increment
    return new_tat, new_tat - tolerance - now


def context_key(prop: str) -> Callable[[], Hashable]:
    """A key function reading ``prop`` from the current call context's properties (``None`` if
    absent).

    ``RateLimiter(100, key=context_key("tenant"))`` with
    ``pipeline.call_with_context(Context(properties={"tenant": "acme"}), fn)``.
    """

    def key() -> Hashable:
        ctx = CURRENT_CONTEXT.get()
        return None if ctx is None else ctx.properties.get(prop)

    key.__qualname__ = f"context_key({prop!r})"
    return key


def _key_function(name: str, v: object) -> object:
    if v is not None and not callable(v):
        raise ConfigError(name, v, "must be a function of no arguments, or None")
    return v


@dataclass(frozen=True, kw_only=True)
class RateLimiterOptions(Options):
    """Options of :class:`RateLimiter` (``rate_limit:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "RateLimiter"

    rate: float = number(REQUIRED, "Calls allowed per `per` seconds", gt=0)
    per: float = duration(1.0, "The period rate is counted over, in seconds", gt=0, ge=None)
    burst: int | None = integer(
        None,
        "Calls allowed back to back after a quiet spell (the bucket's capacity); None: "
        "max(1, floor(rate)), one period's worth, the classic token bucket",
        ge=1,
        optional=True,
    )
    mode: Literal["reject", "wait"] = choice(
        "reject",
        "reject: refuse at once with RateLimited and its retry_after; wait: reserve the next slot "
        "and sleep until it, if within max_wait and the deadline in force",
        ("reject", "wait"),
    )
    max_wait: float = duration(DEFAULT_MAX_WAIT, "The longest wait in mode wait, in seconds")
    key: Callable[[], Hashable] | None = custom(
        None,
        "A function of no arguments giving the bucket key of the current call (a tenant, a "
        "route; None: the shared bucket), e.g. context_key",
        check=_key_function,
    )
    max_keys: int = integer(DEFAULT_MAX_KEYS, "The default store's bound on buckets", ge=1)


@documented(RateLimiterOptions)
class RateLimiter(Policy):
    """Admit at most ``rate`` calls per ``per`` seconds, with bursts of up to ``burst`` calls.

    ``store`` is where buckets live (default a fresh :class:`MemoryBucketStore` of ``max_keys``);
    ``clock`` the clock the buckets run on.  Per call with the shared in-memory bucket (no ``key``):
    one clock read, a list pop and append, no lock; with keyed buckets, one lock and one dict lookup
    more.
    """

    kind: ClassVar[str] = "rate_limiter"
    order: ClassVar[int] = 50

    def __init__(
        self,
        rate: float,
        *,
        per: float = RateLimiterOptions.per,
        burst: int | None = RateLimiterOptions.burst,
        mode: Literal["reject", "wait"] = RateLimiterOptions.mode,
        max_wait: float = RateLimiterOptions.max_wait,
        key: Callable[[], Hashable] | None = RateLimiterOptions.key,
        store: BucketStore | None = None,
        max_keys: int = RateLimiterOptions.max_keys,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "rate_limiter",
    ) -> None:
        o = self.options = RateLimiterOptions.from_arguments(locals())
        if store is not None and not isinstance(store, BucketStore):
            raise ConfigError(
                "store", store, "must provide acquire(key, now, increment, tolerance, max_wait)"
            )
        self.rate = o.rate
        self.per = o.per
        self.burst = o.burst if o.burst is not None else max(1, math.floor(o.rate))
        self.interval = o.per / o.rate
        self.tolerance = self.burst * self.interval
        self.mode = o.mode
        self.max_wait = o.max_wait
        self.key = o.key
        self.store: BucketStore = store if store is not None else MemoryBucketStore(o.max_keys)
        self.clock = clock
        self.name = name

    def __repr__(self) -> str:
        return (
            f"RateLimiter(name={self.name!r}, rate={self.rate:g}, per={self.per:g}, "
            f"burst={self.burst}, mode={self.mode!r})"
        )

    # -- the decision ------------------------------------------------------------------------------

    def reserve(self, key: Hashable = None, *, cost: float = 1.0, max_wait: float = 0.0) -> float:
        """One decision at the clock's current time (see :class:`BucketStore` for the result's
        sign).

        :param cost: tokens this call takes, ``0 < cost <= burst``.
        :param max_wait: admit if the wait is at most this (the caller then sleeps that long).
        """
        if not 0 < cost <= self.burst:
            raise ValueError(f"cost must be within (0, burst={self.burst}], got {cost!r}")
        return self.store.acquire(
            key, self.clock.monotonic(), cost * self.interval, self.tolerance, max_wait
        )

    def try_acquire(self, key: Hashable = None, *, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens now if the bucket has them (never waits)."""
        return self.reserve(key, cost=cost) >= 0.0

    def _refuse(self, em: Emitter, key: Hashable, retry_after: float, waited: bool) -> RateLimited:
        if em.active:
            em.emit(
                RateLimitRejected(em.pipeline, self.name, self.clock.monotonic(), key, retry_after)
            )
        where = "" if key is None else f" for key {key!r}"
        why = " (more than the wait allowed)" if waited else ""
        return RateLimited(
            f"rate limiter {self.name!r}: over {self.rate:g} per {self.per:g}s{where}; "
            f"retry after {retry_after:.3g}s{why}",
            policy=self.name,
            retry_after=retry_after,
        )

    def _wait_limit(self, now: float) -> float:
        limit = self.max_wait
        d = DEADLINE.get()
        if d is not None and d - now < limit:
            limit = max(0.0, d - now)
        return limit

    # -- executors ---------------------------------------------------------------------------------

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        sleep = self.clock.sleep
        interval = self.interval
        tolerance = self.tolerance
        waits = self.mode == "wait"
        wait_limit = self._wait_limit
        refuse = self._refuse
        direct = nxt is invoke_sync
        em = emitter
        name = self.name
        store = self.store
        if self.key is None and type(store) is MemoryBucketStore:
            # The shared in-memory bucket: the store's acquire_shared, inlined (one clock read, the
            # gate's pop and append); waits go through the store.
            shared = store.acquire_shared
            take = store.gate.pop
            put = store.gate.append
            contended = store.acquire_shared_contended

            def rate_limit_shared(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                now = mono()
                if waits:
                    w = shared(now, interval, tolerance, wait_limit(now))
                    if w != 0.0:
                        if w < 0.0:
                            raise refuse(em, None, -w, True)
                        if em.active:
                            em.emit(RateLimitWaited(em.pipeline, name, now, None, w))
                        sleep(w)
                else:
                    # store.acquire_shared(now, interval, tolerance, 0.0) with gcra_step, inlined
                    try:
                        take()
                    except IndexError:  # the store's sign: < 0 refused (-retry_after), 0 admitted
                        w = -contended(now, interval, tolerance, 0.0)
                    except BaseException:
                        put(None)
                        raise
                    else:
                        try:
                            tat = store.shared_tat
                            new_tat = (tat if tat > now else now) + interval
                            w = new_tat - tolerance - now
                            if w <= 0.0:
                                store.shared_tat = new_tat
                        finally:
                            put(None)
                    if w > 0.0:
                        raise refuse(em, None, w, False)
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)

            return rate_limit_shared
        acquire = store.acquire
        keyf = self.key

        def rate_limit_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            key = None if keyf is None else keyf()
            w = acquire(key, now, interval, tolerance, wait_limit(now) if waits else 0.0)
            if w != 0.0:
                if w < 0.0:
                    raise refuse(em, key, -w, waits)
                if em.active:
                    em.emit(RateLimitWaited(em.pipeline, name, now, key, w))
                sleep(w)
            return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)

        return rate_limit_call

    def fused_slot(self) -> int | None:
        # The fused layer admits from the in-memory shared bucket, rejecting rather than waiting.
        shared = self.key is None and type(self.store) is MemoryBucketStore
        return FUSE_LIMITER if shared and self.mode == "reject" else None

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        asleep = self.clock.sleep_async
        interval = self.interval
        tolerance = self.tolerance
        waits = self.mode == "wait"
        wait_limit = self._wait_limit
        refuse = self._refuse
        direct = nxt is invoke_async
        em = emitter
        name = self.name
        store = self.store
        if self.key is None and type(store) is MemoryBucketStore:
            # The sync layer's shared-bucket twin.
            shared = store.acquire_shared
            take = store.gate.pop
            put = store.gate.append
            contended = store.acquire_shared_contended

            async def rate_limit_shared_async(
                fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                now = mono()
                if waits:
                    w = shared(now, interval, tolerance, wait_limit(now))
                    if w != 0.0:
                        if w < 0.0:
                            raise refuse(em, None, -w, True)
                        if em.active:
                            em.emit(RateLimitWaited(em.pipeline, name, now, None, w))
                        await asleep(w)
                else:
                    # store.acquire_shared(now, interval, tolerance, 0.0) with gcra_step, inlined
                    try:
                        take()
                    except IndexError:  # the store's sign: < 0 refused (-retry_after), 0 admitted
                        w = -contended(now, interval, tolerance, 0.0)
                    except BaseException:
                        put(None)
                        raise
                    else:
                        try:
                            tat = store.shared_tat
                            new_tat = (tat if tat > now else now) + interval
                            w = new_tat - tolerance - now
                            if w <= 0.0:
                                store.shared_tat = new_tat
                        finally:
                            put(None)
                    if w > 0.0:
                        raise refuse(em, None, w, False)
                return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))

            return rate_limit_shared_async
        acquire = store.acquire
        keyf = self.key

        async def rate_limit_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            key = None if keyf is None else keyf()
            w = acquire(key, now, interval, tolerance, wait_limit(now) if waits else 0.0)
            if w != 0.0:
                if w < 0.0:
                    raise refuse(em, key, -w, waits)
                if em.active:
                    em.emit(RateLimitWaited(em.pipeline, name, now, key, w))
                await asleep(w)
            return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))

        return rate_limit_call_async
