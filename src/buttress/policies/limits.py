"""Adaptive concurrency limits: AIMD, Vegas and Gradient2, after Netflix's concurrency-limits.

A concurrency limit is the number of calls allowed in flight at once.  Instead of guessing it, an
algorithm *learns* it from what each call reports when it ends: its round-trip time (``rtt``), how
many calls were in flight when it started (``inflight``), and whether it was *dropped* (timed out or
was refused by the dependency).  Each algorithm is a sans-I/O object: ``update(rtt, inflight,
dropped)`` returns the new limit; it never reads a clock, sleeps or locks (the
:class:`AdaptiveLimit` policy drives it under its lock).

AIMD (loss based)::

    dropped or rtt > timeout     -> limit = floor(limit * backoff_ratio)
    elif inflight * 2 >= limit   -> limit = limit + 1
    limit = clamp(limit, min_limit, max_limit)

Vegas (delay based, TCP Vegas; ``L`` is the estimated limit, ``rtt_noload`` the lowest rtt seen)::

    every probe_multiplier * L * jitter samples (jitter in [0.5, 1)): rtt_noload = rtt, no change
    rtt < rtt_noload (or the first sample): rtt_noload = rtt, no change
    queue = ceil(L * (1 - rtt_noload / rtt))
    dropped                      -> L = L - log10(L)
    elif inflight * 2 < L        -> no change (the caller, not the dependency, is the bottleneck)
    elif queue <= threshold(L)   -> L = L + beta(L)
    elif queue <  alpha(L)       -> L = L + log10(L)
    elif queue >  beta(L)        -> L = L - log10(L)
    L = (1 - smoothing) * L + smoothing * clamp(L_new, 1, max_limit)
    with alpha = 3 * log10(L), beta = 6 * log10(L), threshold = log10(L),
         log10(L) = max(1, floor(log10 L))   (Netflix's table; floor(sqrt L) from L = 1000 on)

Gradient2 (delay based, against a long-term average rtt)::

    long = exponential average of rtt over long_window samples (a plain mean for the first 10)
    long / rtt > 2               -> long = long * 0.95   (recover quickly after a latency spike)
    inflight < L / 2             -> no change
    gradient = clamp(rtt_tolerance * long / rtt, 0.5, 1)
    L = (1 - smoothing) * L + smoothing * (gradient * L + queue_size)
    L = clamp(L, min_limit, max_limit)

The limit reported is ``floor(L)``.  Gradient2 reacts to drops only through their rtt, as Netflix's
does.  Samples with ``rtt <= 0`` carry no delay information: Vegas and Gradient2 ignore them.

Windowing (Netflix's ``WindowedLimit``; :class:`WindowSpec`, ``AdaptiveLimit(window=...)``): instead
of every call's sample, the algorithm sees one sample per window::

    rtt < min_rtt_threshold      -> the sample is discarded (it neither counts nor closes a window)
    otherwise add it: count += 1, min_rtt = min(min_rtt, rtt), sum += rtt (or keep rtt for a
                      percentile), max_inflight = max(max_inflight, inflight), dropped |= dropped
    now > next_update            -> the window (this sample included) closes:
        next_update = now + clamp(2 * min_rtt, min_window_time, max_window_time)
        count >= window_size     -> algorithm.update(sum / count or the percentile, max_inflight,
                                                     dropped)
        else                     -> discarded (too few samples to say anything)

``next_update`` starts in the past, so the very first sample closes a window of one (discarded
unless ``window_size`` is 1) and starts the clock.
"""

from __future__ import annotations

import abc
import asyncio
import math
import random
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, LoadShed, Rejected
from buttress.events import Emitter, Event

from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync

__all__ = [
    "AIMD",
    "AdaptiveLimit",
    "ConcurrencyLimitExceeded",
    "Gradient2",
    "LimitAlgorithm",
    "LimitChanged",
    "LimitRejected",
    "SampleWindow",
    "Vegas",
    "WindowSample",
    "WindowSpec",
    "log10_root",
]


class ConcurrencyLimitExceeded(LoadShed):
    """The adaptive concurrency limit is reached: the call was refused without running.

    ``limit`` and ``inflight`` are the values seen when it was refused.
    """

    def __init__(
        self, message: str = "", *, policy: str = "", limit: int = 0, inflight: int = 0
    ) -> None:
        self.limit = limit
        self.inflight = inflight
        super().__init__(message, policy=policy)


@dataclass(frozen=True, slots=True)
class LimitChanged(Event):
    """The adaptive limit moved from ``old`` to ``new``."""

    policy_type: ClassVar[str] = "adaptive_limit"
    kind: ClassVar[str] = "changed"
    old: int
    new: int


@dataclass(frozen=True, slots=True)
class LimitRejected(Event):
    """A call was refused: ``inflight`` calls were running against a limit of ``limit``."""

    policy_type: ClassVar[str] = "adaptive_limit"
    kind: ClassVar[str] = "rejected"
    limit: int
    inflight: int


def log10_root(limit: int) -> int:
    """Netflix's ``Log10RootFunction``: ``max(1, floor(log10(limit)))`` for every limit (their
    table covers 0..999 and computes ``floor(log10(limit))`` beyond; old releases took a square
    root there by mistake, which made Vegas's thresholds ten times too wide at large limits)."""
    if limit < 10:
        return 1
    return len(str(int(limit))) - 1  # floor(log10) of an integer, exact (no float rounding)


def _int(parameter: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(parameter, value, f"must be an integer >= {low}")
    return value


def _fraction(parameter: str, value: object, *, low_open: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (0 < v <= 1) if low_open else (0 <= v <= 1)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(parameter, value, f"must be within {interval}")
    return float(value)  # type: ignore[arg-type]


def _bounds(initial: int, min_limit: int, max_limit: int) -> None:
    if max_limit < min_limit:
        raise ConfigError("max_limit", max_limit, f"must be >= min_limit ({min_limit})")
    if not min_limit <= initial <= max_limit:
        raise ConfigError(
            "initial_limit",
            initial,
            f"must be within [min_limit, max_limit] = [{min_limit}, {max_limit}]",
        )


class LimitAlgorithm(abc.ABC):
    """A concurrency-limit algorithm: sans-I/O, not thread-safe by itself (drive it under a
    lock)."""

    limit: int
    """The current limit (an integer >= 1)."""

    @abc.abstractmethod
    def update(self, rtt: float, inflight: int, dropped: bool) -> int:
        """Take one sample and return the new limit.

        :param rtt: the call's duration in seconds.
        :param inflight: calls in flight when this call started (itself included).
        :param dropped: the call timed out or was refused by the dependency.
        """


class AIMD(LimitAlgorithm):
    """Additive increase, multiplicative decrease (loss based).

    :param initial_limit: default 20.
    :param min_limit: default 20.
    :param max_limit: default 200.
    :param backoff_ratio: the factor applied on a drop, within ``[0.5, 1)``.  Default 0.9.
    :param timeout: a sample slower than this (seconds, ``> 0``) counts as a drop.  Default 5 s.

    Defaults are Netflix's: growth by one per sample while at least half the limit is in use, a 10%
    cut on each drop (gentle, since one slow call is weak evidence), never below 20.
    """

    __slots__ = ("backoff_ratio", "limit", "max_limit", "min_limit", "timeout")

    def __init__(
        self,
        *,
        initial_limit: int = 20,
        min_limit: int = 20,
        max_limit: int = 200,
        backoff_ratio: float = 0.9,
        timeout: float = 5.0,
    ) -> None:
        initial_limit = _int("initial_limit", initial_limit, 1)
        min_limit = _int("min_limit", min_limit, 1)
        max_limit = _int("max_limit", max_limit, 1)
        _bounds(initial_limit, min_limit, max_limit)
        if (
            isinstance(backoff_ratio, bool)
            or not isinstance(backoff_ratio, int | float)
            or not 0.5 <= backoff_ratio < 1
        ):
            raise ConfigError("backoff_ratio", backoff_ratio, "must be within [0.5, 1)")
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf
        ):
            raise ConfigError("timeout", timeout, "must be a finite number of seconds > 0")
        self.limit = initial_limit
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.backoff_ratio = float(backoff_ratio)
        self.timeout = float(timeout)

    def __repr__(self) -> str:
        return f"AIMD(limit={self.limit}, min={self.min_limit}, max={self.max_limit})"

    def update(self, rtt: float, inflight: int, dropped: bool) -> int:
        limit = self.limit
        if dropped or rtt > self.timeout:
            limit = int(limit * self.backoff_ratio)
        elif inflight * 2 >= limit:
            limit += 1
        limit = min(self.max_limit, max(self.min_limit, limit))
        self.limit = limit
        return limit


class Vegas(LimitAlgorithm):
    """TCP Vegas for request concurrency (delay based).

    :param initial_limit: default 20.
    :param max_limit: default 1000.
    :param smoothing: weight of a new estimate, within ``(0, 1]``.  Default 1 (no smoothing).
    :param probe_multiplier: re-measure the no-load rtt every ``probe_multiplier * limit * jitter``
        samples (``>= 1``).  Default 30.
    :param alpha, beta, threshold: functions of the (integer) limit giving the queue sizes that mean
        "grow slowly", "shrink" and "grow fast".  Defaults ``3 * log10_root``, ``6 * log10_root``,
        ``log10_root``: Netflix's, which scale the tolerated queue slowly with the limit.
    :param rng: the random source for the probe jitter (a seeded :class:`random.Random` in tests).
    """

    __slots__ = (
        "_estimate",
        "_probe_count",
        "_probe_jitter",
        "alpha",
        "beta",
        "limit",
        "max_limit",
        "probe_multiplier",
        "rng",
        "rtt_noload",
        "smoothing",
        "threshold",
    )

    def __init__(
        self,
        *,
        initial_limit: int = 20,
        max_limit: int = 1000,
        smoothing: float = 1.0,
        probe_multiplier: int = 30,
        alpha: Callable[[int], int] | None = None,
        beta: Callable[[int], int] | None = None,
        threshold: Callable[[int], int] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        initial_limit = _int("initial_limit", initial_limit, 1)
        max_limit = _int("max_limit", max_limit, 1)
        _bounds(initial_limit, 1, max_limit)
        self.smoothing = _fraction("smoothing", smoothing)
        self.probe_multiplier = _int("probe_multiplier", probe_multiplier, 1)
        self.alpha: Callable[[int], int] = alpha or (lambda n: 3 * log10_root(n))
        self.beta: Callable[[int], int] = beta or (lambda n: 6 * log10_root(n))
        self.threshold: Callable[[int], int] = threshold or log10_root
        self.rng = rng or random.Random()
        self.max_limit = max_limit
        self._estimate = float(initial_limit)
        self.limit = initial_limit
        self.rtt_noload = 0.0
        """The lowest (or last probed) rtt: the estimate of the dependency's latency without
        queueing."""
        self._probe_count = 0
        self._probe_jitter = self.rng.uniform(0.5, 1.0)

    def __repr__(self) -> str:
        return f"Vegas(limit={self.limit}, rtt_noload={self.rtt_noload:g})"

    @property
    def estimate(self) -> float:
        """The unrounded limit estimate."""
        return self._estimate

    def update(self, rtt: float, inflight: int, dropped: bool) -> int:
        if not rtt > 0:
            return self.limit
        self._probe_count += 1
        est = self._estimate
        if self._probe_jitter * self.probe_multiplier * est <= self._probe_count:
            self._probe_jitter = self.rng.uniform(0.5, 1.0)
            self._probe_count = 0
            self.rtt_noload = rtt
            return self.limit
        if self.rtt_noload == 0 or rtt < self.rtt_noload:
            self.rtt_noload = rtt
            return self.limit
        n = int(est)
        queue = math.ceil(est * (1 - self.rtt_noload / rtt))
        if dropped:
            new = est - log10_root(n)
        elif inflight * 2 < est:
            return self.limit
        else:
            alpha = self.alpha(n)
            beta = self.beta(n)
            if queue <= self.threshold(n):
                new = est + beta
            elif queue < alpha:
                new = est + log10_root(n)
            elif queue > beta:
                new = est - log10_root(n)
            else:
                return self.limit
        new = max(1.0, min(float(self.max_limit), new))
        est = (1 - self.smoothing) * est + self.smoothing * new
        self._estimate = est
        self.limit = max(1, int(est))
        return self.limit


class Gradient2(LimitAlgorithm):
    """Netflix's Gradient2: the limit follows the ratio of a long-term average rtt to the current
    rtt.

    :param initial_limit: default 20.
    :param min_limit: default 20.
    :param max_limit: default 200.
    :param smoothing: weight of a new estimate, within ``(0, 1]``.  Default 0.2.
    :param queue_size: headroom added each step (an int, or a function of the limit).  Default 4.
    :param long_window: samples the long-term average spans (``>= 1``).  Default 600.
    :param rtt_tolerance: how much slower than the long-term average the current rtt may be before
        the limit shrinks (``>= 1``).  Default 1.5.

    Why the average and not the minimum (Vegas): request latency is bursty and varies with the work
    each request carries; a minimum drifts towards an unrealistically low baseline and sheds too
    much.
    """

    __slots__ = (
        "_count",
        "_estimate",
        "_long",
        "_sum",
        "last_rtt",
        "limit",
        "long_window",
        "max_limit",
        "min_limit",
        "queue_size",
        "rtt_tolerance",
        "smoothing",
    )

    WARMUP: ClassVar[int] = 10

    def __init__(
        self,
        *,
        initial_limit: int = 20,
        min_limit: int = 20,
        max_limit: int = 200,
        smoothing: float = 0.2,
        queue_size: int | Callable[[int], int] = 4,
        long_window: int = 600,
        rtt_tolerance: float = 1.5,
    ) -> None:
        initial_limit = _int("initial_limit", initial_limit, 1)
        min_limit = _int("min_limit", min_limit, 1)
        max_limit = _int("max_limit", max_limit, 1)
        _bounds(initial_limit, min_limit, max_limit)
        self.smoothing = _fraction("smoothing", smoothing)
        if isinstance(queue_size, int) and not isinstance(queue_size, bool):
            _int("queue_size", queue_size, 0)
            fixed = queue_size
            self.queue_size: Callable[[int], int] = lambda _n: fixed
        elif callable(queue_size):
            self.queue_size = queue_size
        else:
            raise ConfigError("queue_size", queue_size, "must be an integer >= 0 or a function")
        self.long_window = _int("long_window", long_window, 1)
        if (
            isinstance(rtt_tolerance, bool)
            or not isinstance(rtt_tolerance, int | float)
            or not 1 <= rtt_tolerance < math.inf
        ):
            raise ConfigError("rtt_tolerance", rtt_tolerance, "must be a finite number >= 1")
        self.rtt_tolerance = float(rtt_tolerance)
        self.min_limit = min_limit
        self.max_limit = max_limit
        self._estimate = float(initial_limit)
        self.limit = initial_limit
        self._long = 0.0
        self._sum = 0.0
        self._count = 0
        self.last_rtt = 0.0

    def __repr__(self) -> str:
        return f"Gradient2(limit={self.limit}, long_rtt={self._long:g})"

    @property
    def estimate(self) -> float:
        """The unrounded limit estimate."""
        return self._estimate

    @property
    def long_rtt(self) -> float:
        """The long-term average rtt."""
        return self._long

    def update(self, rtt: float, inflight: int, dropped: bool) -> int:
        if not rtt > 0:
            return self.limit
        est = self._estimate
        queue = self.queue_size(int(est))
        self.last_rtt = rtt
        if self._count < self.WARMUP:
            self._count += 1
            self._sum += rtt
            self._long = self._sum / self._count
        else:
            factor = 2.0 / (self.long_window + 1)
            self._long = self._long * (1 - factor) + rtt * factor
        long = self._long
        if long / rtt > 2:
            self._long = long * 0.95
        if inflight < est / 2:
            return self.limit
        gradient = max(0.5, min(1.0, self.rtt_tolerance * long / rtt))
        new = est * gradient + queue
        new = est * (1 - self.smoothing) + new * self.smoothing
        new = max(float(self.min_limit), min(float(self.max_limit), new))
        self._estimate = new
        self.limit = int(new)
        return self.limit


# -- windows ---------------------------------------------------------------------------------------


def _seconds(parameter: str, value: object, *, zero_ok: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = (v >= 0 if zero_ok else v > 0) and v < math.inf
    if not ok:
        bound = ">= 0" if zero_ok else "> 0"
        raise ConfigError(parameter, value, f"must be a finite number of seconds {bound}")
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How :class:`AdaptiveLimit` aggregates samples before its algorithm sees them: Netflix's
    ``WindowedLimit``.

    :param min_window_time: the shortest window, in seconds (``> 0``).  Default 1 s.
    :param max_window_time: the longest window, in seconds (``>= min_window_time``).  Default 1 s.
    :param window_size: the fewest samples a window needs to count; windows with fewer are
        discarded (``>= 1``).  Default 10.
    :param min_rtt_threshold: samples faster than this (seconds, ``>= 0``) are ignored altogether:
        cache hits and failed-fast calls say nothing about the dependency's queue.  Default 100 µs.
    :param percentile: ``None`` (default) feeds the window's *average* rtt to the algorithm
        (Netflix's ``AverageSampleWindow``); a fraction within ``(0, 1)`` feeds that percentile
        of the window's rtts instead (``ImmutablePercentileSampleWindow``): the ``k``-th smallest
        with ``k = max(1, floor(n * percentile + 0.5))``.
    :param max_samples: with a percentile, how many rtts a window keeps (the first ones; later
        samples still count and still move the minimum, the in-flight maximum and the drop flag).
        ``>= 1``; default 1000.

    A window's length is chosen when the previous one closes, from that window's fastest sample:
    ``clamp(2 * min_rtt, min_window_time, max_window_time)``, so a window spans at least two
    round trips; with the defaults it is always 1 s.  The algorithm receives the window's average
    (or percentile) rtt, its *largest* in-flight count and whether *any* sample was a drop.

    Netflix's defaults, with one difference: Netflix's builder refuses windows shorter than 100 ms
    and ``window_size`` below 10; Buttress accepts any positive value (short windows suit
    simulations on a fake clock), with the same semantics.
    """

    min_window_time: float = 1.0
    max_window_time: float = 1.0
    window_size: int = 10
    min_rtt_threshold: float = 100e-6
    percentile: float | None = None
    max_samples: int = 1000

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        low = _seconds("min_window_time", self.min_window_time, zero_ok=False)
        high = _seconds("max_window_time", self.max_window_time, zero_ok=False)
        if high < low:
            raise ConfigError(
                "max_window_time", self.max_window_time, f"must be >= min_window_time ({low:g})"
            )
        set_(self, "min_window_time", low)
        set_(self, "max_window_time", high)
        _int("window_size", self.window_size, 1)
        set_(
            self,
            "min_rtt_threshold",
            _seconds("min_rtt_threshold", self.min_rtt_threshold, zero_ok=True),
        )
        p = self.percentile
        if p is not None:
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p < 1:
                raise ConfigError("percentile", p, "must be None (the average) or within (0, 1)")
            set_(self, "percentile", float(p))
        _int("max_samples", self.max_samples, 1)


@dataclass(frozen=True, slots=True)
class WindowSample:
    """One closed window, as the algorithm sees it (when ``used``).

    ``rtt`` is the average (or the percentile) rtt, ``min_rtt`` the fastest, ``inflight`` the
    largest in-flight count, ``dropped`` whether any sample was a drop, ``samples`` how many it
    held, ``closed_at`` the clock reading that closed it; ``used`` is ``False`` for a window
    discarded for holding fewer than ``window_size`` samples.
    """

    rtt: float
    min_rtt: float
    inflight: int
    dropped: bool
    samples: int
    closed_at: float
    used: bool


class SampleWindow:
    """The running window of Netflix's ``WindowedLimit``: sans-I/O, not thread-safe by itself
    (:class:`AdaptiveLimit` drives it under its lock).

    :meth:`add` takes one sample with the clock reading at its end and returns the closed window
    when one closes with enough samples (then the caller feeds it to the algorithm), else
    ``None``.  ``windows`` counts closed windows, ``discarded`` those with too few samples,
    ``last`` is the latest closed window.
    """

    __slots__ = (
        "_count",
        "_dropped",
        "_inflight",
        "_min",
        "_next",
        "_rtts",
        "_sum",
        "discarded",
        "last",
        "spec",
        "threshold",
        "windows",
    )

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.threshold = spec.min_rtt_threshold
        self._next = -math.inf
        self._rtts: list[float] | None = None if spec.percentile is None else []
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._inflight = 0
        self._dropped = False
        self.windows = 0
        self.discarded = 0
        self.last: WindowSample | None = None

    def __repr__(self) -> str:
        return (
            f"SampleWindow(samples={self._count}, next_update={self._next:g}, "
            f"windows={self.windows}, discarded={self.discarded})"
        )

    @property
    def samples(self) -> int:
        """Samples in the open window."""
        return self._count

    @property
    def next_update(self) -> float:
        """The clock reading after which the next sample closes the window (``-inf`` before the
        first sample)."""
        return self._next

    def add(self, now: float, rtt: float, inflight: int, dropped: bool) -> WindowSample | None:
        """Add one sample that ended at ``now``; return the window it closed, if that window
        has at least ``window_size`` samples."""
        if rtt < self.threshold:
            return None
        self._count += 1
        self._sum += rtt
        # comparisons, not min()/max(): a builtin call costs more on this per-call path
        if rtt < self._min:  # noqa: PLR1730
            self._min = rtt
        if inflight > self._inflight:  # noqa: PLR1730
            self._inflight = inflight
        if dropped:
            self._dropped = True
        rtts = self._rtts
        if rtts is not None and len(rtts) < self.spec.max_samples:
            rtts.append(rtt)
        if now <= self._next:
            return None
        return self._close(now)

    def _close(self, now: float) -> WindowSample | None:
        spec = self.spec
        count, low, rtts = self._count, self._min, self._rtts
        self._next = now + min(max(2 * low, spec.min_window_time), spec.max_window_time)
        if rtts is None:
            tracked = self._sum / count
        else:
            rtts.sort()
            k = max(1, math.floor(len(rtts) * spec.percentile + 0.5))  # type: ignore[operator]
            tracked = rtts[k - 1]
            self._rtts = []
        used = count >= spec.window_size
        window = WindowSample(tracked, low, self._inflight, self._dropped, count, now, used)
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._inflight = 0
        self._dropped = False
        self.windows += 1
        self.last = window
        if used:
            return window
        self.discarded += 1
        return None


# -- the policy ------------------------------------------------------------------------------------

_NOT_SAMPLED = (Rejected, asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class AdaptiveLimit(Policy):
    """Admit calls while fewer than the learned limit are in flight; learn the limit from each call.

    :param algorithm: a :class:`LimitAlgorithm`.  Default :class:`Vegas` (Netflix's default).
    :param drop_on: exception types that count as *drops* (the dependency is overloaded): default
        :class:`TimeoutError` (which includes :class:`~buttress.errors.AttemptTimeout`).  Other
        errors are not sampled: their latency says little about capacity.  Refusals by inner
        policies (:class:`~buttress.errors.Rejected`) and cancellations are never sampled.
    :param window: ``None`` or ``False`` (default): the algorithm sees every call's sample.  A
        :class:`WindowSpec`, or ``True`` for ``WindowSpec()`` (Netflix's defaults: 1 s windows of
        at least 10 samples, samples under 100 µs ignored, the average rtt): the algorithm sees one
        aggregated sample per window (see :class:`SampleWindow`), which keeps a delay-based
        algorithm's baseline from chasing single fast or slow calls.
    :param clock: the clock rtts (and windows) are measured on.
    :param name: the ``policy`` label in events.

    A call is admitted when ``inflight < limit`` (checked and counted under one lock) and refused
    with :class:`ConcurrencyLimitExceeded` otherwise.  ``limit`` and ``inflight`` read the state;
    every change of the limit emits :class:`LimitChanged`, and ``on_change`` callbacks (``old,
    new``) run after the lock is released.

    Why per-sample is the default: it is Netflix's default (``WindowedLimit`` is an explicit
    wrapper there too), it reacts within one call, and it works at any call rate, whereas a
    window of 10 samples per second never moves the limit of a dependency called fewer than 10
    times a second.  Turn windowing on for Vegas or Gradient2 in front of a dependency whose
    latency varies from call to call (see ``docs/adaptive-concurrency.md``).
    """

    kind: ClassVar[str] = "adaptive_limit"
    order: ClassVar[int] = 58

    __slots__ = (
        "_inflight",
        "_limit",
        "_listeners",
        "_lock",
        "algorithm",
        "clock",
        "drop_on",
        "name",
        "sample_window",
        "window",
    )

    def __init__(
        self,
        algorithm: LimitAlgorithm | None = None,
        *,
        drop_on: type[BaseException] | tuple[type[BaseException], ...] = TimeoutError,
        window: WindowSpec | bool | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "adaptive_limit",
    ) -> None:
        if algorithm is None:
            algorithm = Vegas()
        if not isinstance(algorithm, LimitAlgorithm):
            raise ConfigError(
                "algorithm", algorithm, "must be AIMD, Vegas, Gradient2 or a LimitAlgorithm"
            )
        drops = drop_on if isinstance(drop_on, tuple) else (drop_on,)
        for t in drops:
            if not (isinstance(t, type) and issubclass(t, BaseException)):
                raise ConfigError(
                    "drop_on", drop_on, "must be an exception type or a tuple of them"
                )
        if window is True:
            window = WindowSpec()
        elif window is False:
            window = None
        elif window is not None and not isinstance(window, WindowSpec):
            raise ConfigError("window", window, "must be a WindowSpec, True, False or None")
        self.algorithm = algorithm
        self.drop_on: tuple[type[BaseException], ...] = drops
        self.window: WindowSpec | None = window
        """The windowing, or ``None`` when the algorithm sees every sample."""
        self.sample_window: SampleWindow | None = None if window is None else SampleWindow(window)
        """The running window (its counters and ``last`` closed window), when windowed."""
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._inflight = 0
        self._limit = algorithm.limit
        self._listeners: list[Callable[[int, int], None]] = []

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimit(name={self.name!r}, limit={self._limit}, algorithm={self.algorithm!r}"
            + ("" if self.window is None else f", window={self.window!r}")
            + ")"
        )

    @property
    def limit(self) -> int:
        """The current concurrency limit."""
        return self._limit

    @property
    def inflight(self) -> int:
        """Calls admitted and not yet finished."""
        return self._inflight

    def on_change(self, callback: Callable[[int, int], None]) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every limit change.  Returns a function that removes
        it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # -- the decisions (sans-I/O apart from the lock) ----------------------------------------------

    def try_acquire(self) -> int:
        """Admit one call if ``inflight < limit``: returns the in-flight count including it (the
        sample's ``inflight``), or 0 when refused.  Pair every admission with :meth:`release`."""
        with self._lock:
            n = self._inflight
            if n >= self._limit:
                return 0
            n += 1
            self._inflight = n
            return n

    def release(
        self, rtt: float | None, inflight: int, dropped: bool = False, *, now: float | None = None
    ) -> tuple[int, int]:
        """End one admitted call; ``rtt=None`` means "not sampled".  Returns ``(old, new)``
        limits.

        ``now`` is the clock reading at the call's end, which places the sample in a window
        (read from the policy's clock when omitted; unused without windowing)."""
        win = self.sample_window
        if win is not None and rtt is not None and now is None:
            now = self.clock.monotonic()
        with self._lock:
            self._inflight -= 1
            old = self._limit
            if rtt is None:
                return old, old
            if win is None:
                new = self.algorithm.update(rtt, inflight, dropped)
            else:
                closed = win.add(now, rtt, inflight, dropped)  # type: ignore[arg-type]
                if closed is None:
                    return old, old
                new = self.algorithm.update(closed.rtt, closed.inflight, closed.dropped)
            self._limit = new
        return old, new

    def _changed(self, em: Emitter, old: int, new: int) -> None:
        if em.active:
            em.emit(LimitChanged(em.pipeline, self.name, self.clock.monotonic(), old, new))
        for cb in tuple(self._listeners):
            cb(old, new)

    def _refuse(self, em: Emitter) -> ConcurrencyLimitExceeded:
        limit, inflight = self._limit, self._inflight
        if em.active:
            em.emit(LimitRejected(em.pipeline, self.name, self.clock.monotonic(), limit, inflight))
        return ConcurrencyLimitExceeded(
            f"adaptive limit {self.name!r}: {inflight} calls in flight, limit {limit}",
            policy=self.name,
            limit=limit,
            inflight=inflight,
        )

    def _finish(self, em: Emitter, start: float, n: int, exc: BaseException) -> None:
        if isinstance(exc, self.drop_on) and not isinstance(exc, _NOT_SAMPLED):
            end = self.clock.monotonic()
            old, new = self.release(end - start, n, True, now=end)
        else:
            old, new = self.release(None, n)
        if old != new:
            self._changed(em, old, new)

    # -- executors ---------------------------------------------------------------------------------
    # The sync and async layers are twins: the same body around a call and an await.  The success
    # path feeds the algorithm inline (one lock, no extra call); a windowed limit adds the sample to
    # its window and updates the algorithm only when a window closes.

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        lock = self._lock
        update = self.algorithm.update
        add = None if self.sample_window is None else self.sample_window.add
        finish = self._finish
        changed = self._changed
        refuse = self._refuse
        direct = nxt is invoke_sync
        em = emitter
        me = self

        def adaptive_limit_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                n = me._inflight
                ok = n < me._limit
                if ok:
                    n += 1
                    me._inflight = n
            if not ok:
                raise refuse(em)
            start = mono()
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except BaseException as exc:
                finish(em, start, n, exc)
                raise
            end = mono()
            with lock:
                me._inflight -= 1
                old = new = me._limit
                if add is None:
                    new = me._limit = update(end - start, n, False)
                else:
                    closed = add(end, end - start, n, False)
                    if closed is not None:
                        new = me._limit = update(closed.rtt, closed.inflight, closed.dropped)
            if old != new:
                changed(em, old, new)
            return result

        return adaptive_limit_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        lock = self._lock
        update = self.algorithm.update
        add = None if self.sample_window is None else self.sample_window.add
        finish = self._finish
        changed = self._changed
        refuse = self._refuse
        direct = nxt is invoke_async
        em = emitter
        me = self

        async def adaptive_limit_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                n = me._inflight
                ok = n < me._limit
                if ok:
                    n += 1
                    me._inflight = n
            if not ok:
                raise refuse(em)
            start = mono()
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                finish(em, start, n, exc)
                raise
            end = mono()
            with lock:
                me._inflight -= 1
                old = new = me._limit
                if add is None:
                    new = me._limit = update(end - start, n, False)
                else:
                    closed = add(end, end - start, n, False)
                    if closed is not None:
                        new = me._limit = update(closed.rtt, closed.inflight, closed.dropped)
            if old != new:
                changed(em, old, new)
            return result

        return adaptive_limit_call_async
