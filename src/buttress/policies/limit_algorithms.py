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
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.errors import ConfigError
from buttress.options import (
    Options,
    callable_or_none,
    check_order,
    custom,
    documented,
    duration,
    integer,
    number,
)

__all__ = [
    "AIMD",
    "AlgorithmOptions",
    "AIMDOptions",
    "Gradient2",
    "Gradient2Options",
    "LimitAlgorithm",
    "Vegas",
    "VegasOptions",
    "algorithm_options",
    "build_algorithm",
    "log10_root",
]


def log10_root(limit: int) -> int:
    """Netflix's ``Log10RootFunction``: ``max(1, floor(log10(limit)))`` for every limit (their
    table covers 0..999 and computes ``floor(log10(limit))`` beyond; old releases took a square
    root there by mistake, which made Vegas's thresholds ten times too wide at large limits)."""
    if limit < 10:
        return 1
    return len(str(int(limit))) - 1  # floor(log10) of an integer, exact (no float rounding)


def _bounds(initial: int, min_limit: int, max_limit: int) -> None:
    check_order("min_limit", min_limit, "max_limit", max_limit)
    if not min_limit <= initial <= max_limit:
        raise ConfigError(
            "initial_limit",
            initial,
            f"must be within [min_limit, max_limit] = [{min_limit}, {max_limit}]",
        )


class LimitAlgorithm(abc.ABC):
    """A concurrency-limit algorithm: sans-I/O, not thread-safe by itself (drive it under a
    lock).  ``options`` declares its parameters."""

    limit: int
    """The current limit (an integer >= 1)."""
    options: Options

    @abc.abstractmethod
    def update(self, rtt: float, inflight: int, dropped: bool) -> int:
        """Take one sample and return the new limit.

        :param rtt: the call's duration in seconds.
        :param inflight: calls in flight when this call started (itself included).
        :param dropped: the call timed out or was refused by the dependency.
        """


class _Estimating(LimitAlgorithm):
    """A delay-based algorithm (Vegas, Gradient2): it moves an unrounded estimate of the limit,
    of which ``limit`` is the whole part, so that steps smaller than one add up."""

    def __init__(self, initial_limit: int) -> None:
        self._estimate = float(initial_limit)
        self.limit = initial_limit

    @property
    def estimate(self) -> float:
        """The unrounded limit estimate."""
        return self._estimate


_INITIAL = "The limit to start from"
_MIN = "The limit never falls below this"
_MAX = "The limit never grows above this"
_SMOOTHING = "Weight of a new estimate (1: no smoothing)"


@dataclass(frozen=True, kw_only=True)
class AIMDOptions(Options):
    """Options of :class:`AIMD` (``adaptive_limit:`` with ``algorithm: aimd``).  Netflix's
    defaults: growth by one per sample while at least half the limit is in use, a 10% cut on each
    drop (gentle, since one slow call is weak evidence), never below 20."""

    policy: ClassVar[str] = "AIMD"
    algorithm: ClassVar[str] = "aimd"

    initial_limit: int = integer(20, _INITIAL, ge=1)
    min_limit: int = integer(20, _MIN, ge=1)
    max_limit: int = integer(200, _MAX, ge=1)
    backoff_ratio: float = number(0.9, "The factor applied to the limit on a drop", ge=0.5, lt=1)
    timeout: float = duration(
        5.0, "A sample slower than this many seconds counts as a drop", gt=0, ge=None
    )

    def check(self) -> None:
        _bounds(self.initial_limit, self.min_limit, self.max_limit)


@dataclass(frozen=True, kw_only=True)
class VegasOptions(Options):
    """Options of :class:`Vegas` (``adaptive_limit:``, the default algorithm).  ``alpha``,
    ``beta`` and ``threshold`` default to Netflix's ``3 * log10_root``, ``6 * log10_root`` and
    ``log10_root``, which scale the tolerated queue slowly with the limit."""

    policy: ClassVar[str] = "Vegas"
    algorithm: ClassVar[str] = "vegas"

    initial_limit: int = integer(20, _INITIAL, ge=1)
    max_limit: int = integer(1000, _MAX, ge=1)
    smoothing: float = number(1.0, _SMOOTHING, gt=0, le=1)
    probe_multiplier: int = integer(
        30, "Re-measure the no-load rtt every probe_multiplier x limit x jitter samples", ge=1
    )
    alpha: Callable[[int], int] | None = custom(
        None, "limit -> the queue size below which the limit grows slowly", check=callable_or_none
    )
    beta: Callable[[int], int] | None = custom(
        None, "limit -> the queue size above which the limit shrinks", check=callable_or_none
    )
    threshold: Callable[[int], int] | None = custom(
        None,
        "limit -> the queue size at or below which the limit grows fast",
        check=callable_or_none,
    )

    def check(self) -> None:
        _bounds(self.initial_limit, 1, self.max_limit)


def _queue_size(name: str, v: Any) -> Any:
    if callable(v):
        return v
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(name, v, "must be an integer >= 0 or a function")
    return v


@dataclass(frozen=True, kw_only=True)
class Gradient2Options(Options):
    """Options of :class:`Gradient2` (``adaptive_limit:`` with ``algorithm: gradient2``)."""

    policy: ClassVar[str] = "Gradient2"
    algorithm: ClassVar[str] = "gradient2"

    initial_limit: int = integer(20, _INITIAL, ge=1)
    min_limit: int = integer(20, _MIN, ge=1)
    max_limit: int = integer(200, _MAX, ge=1)
    smoothing: float = number(0.2, _SMOOTHING, gt=0, le=1)
    queue_size: int | Callable[[int], int] = custom(
        4,
        "Headroom added each step: an integer >= 0, or a function of the limit",
        check=_queue_size,
        spec=True,
    )
    long_window: int = integer(600, "Samples the long-term average rtt spans", ge=1)
    rtt_tolerance: float = number(
        1.5,
        "How much slower than the long-term average the current rtt may be before the limit "
        "shrinks",
        ge=1,
    )

    def check(self) -> None:
        _bounds(self.initial_limit, self.min_limit, self.max_limit)


@documented(AIMDOptions)
class AIMD(LimitAlgorithm):
    """Additive increase, multiplicative decrease (loss based)."""

    def __init__(
        self,
        *,
        initial_limit: int = AIMDOptions.initial_limit,
        min_limit: int = AIMDOptions.min_limit,
        max_limit: int = AIMDOptions.max_limit,
        backoff_ratio: float = AIMDOptions.backoff_ratio,
        timeout: float = AIMDOptions.timeout,
    ) -> None:
        o = self.options = AIMDOptions.from_arguments(locals())
        self.limit = o.initial_limit
        self.min_limit = o.min_limit
        self.max_limit = o.max_limit
        self.backoff_ratio = o.backoff_ratio
        self.timeout = o.timeout

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


@documented(VegasOptions)
class Vegas(_Estimating):
    """TCP Vegas for request concurrency (delay based).  ``rng`` is the random source for the
    probe jitter (a seeded :class:`random.Random` in tests)."""

    def __init__(
        self,
        *,
        initial_limit: int = VegasOptions.initial_limit,
        max_limit: int = VegasOptions.max_limit,
        smoothing: float = VegasOptions.smoothing,
        probe_multiplier: int = VegasOptions.probe_multiplier,
        alpha: Callable[[int], int] | None = VegasOptions.alpha,
        beta: Callable[[int], int] | None = VegasOptions.beta,
        threshold: Callable[[int], int] | None = VegasOptions.threshold,
        rng: random.Random | None = None,
    ) -> None:
        o = self.options = VegasOptions.from_arguments(locals())
        super().__init__(o.initial_limit)
        self.smoothing = o.smoothing
        self.probe_multiplier = o.probe_multiplier
        self.alpha: Callable[[int], int] = o.alpha or (lambda n: 3 * log10_root(n))
        self.beta: Callable[[int], int] = o.beta or (lambda n: 6 * log10_root(n))
        self.threshold: Callable[[int], int] = o.threshold or log10_root
        self.rng = rng or random.Random()
        self.max_limit = o.max_limit
        self.rtt_noload = 0.0
        """The lowest (or last probed) rtt: the estimate of the dependency's latency without
        queueing."""
        self._probe_count = 0
        self._probe_jitter = self.rng.uniform(0.5, 1.0)

    def __repr__(self) -> str:
        return f"Vegas(limit={self.limit}, rtt_noload={self.rtt_noload:g})"

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


@documented(Gradient2Options)
class Gradient2(_Estimating):
    """Netflix's Gradient2: the limit follows the ratio of a long-term average rtt to the current
    rtt.

    Why the average and not the minimum (Vegas): request latency is bursty and varies with the work
    each request carries; a minimum drifts towards an unrealistically low baseline and sheds too
    much.
    """

    WARMUP: ClassVar[int] = 10

    def __init__(
        self,
        *,
        initial_limit: int = Gradient2Options.initial_limit,
        min_limit: int = Gradient2Options.min_limit,
        max_limit: int = Gradient2Options.max_limit,
        smoothing: float = Gradient2Options.smoothing,
        queue_size: int | Callable[[int], int] = Gradient2Options.queue_size,
        long_window: int = Gradient2Options.long_window,
        rtt_tolerance: float = Gradient2Options.rtt_tolerance,
    ) -> None:
        o = self.options = Gradient2Options.from_arguments(locals())
        super().__init__(o.initial_limit)
        self.smoothing = o.smoothing
        qs = o.queue_size
        if callable(qs):
            self.queue_size: Callable[[int], int] = qs
        else:
            self.queue_size = lambda _n: qs
        self.long_window = o.long_window
        self.rtt_tolerance = o.rtt_tolerance
        self.min_limit = o.min_limit
        self.max_limit = o.max_limit
        self._long = 0.0
        self._sum = 0.0
        self._count = 0
        self.last_rtt = 0.0

    def __repr__(self) -> str:
        return f"Gradient2(limit={self.limit}, long_rtt={self._long:g})"

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


AlgorithmOptions = AIMDOptions | VegasOptions | Gradient2Options
"""An algorithm's declaration."""

_BY_OPTIONS: dict[type[Options], type[LimitAlgorithm]] = {
    AIMDOptions: AIMD,
    VegasOptions: Vegas,
    Gradient2Options: Gradient2,
}


def algorithm_options(name: str, v: object) -> object:
    """An options ``check``: an algorithm stands for its options; ``None`` for Vegas's."""
    if v is None:
        return VegasOptions()
    if isinstance(v, LimitAlgorithm):
        return v.options
    if isinstance(v, AIMDOptions | VegasOptions | Gradient2Options):
        return v
    raise ConfigError(name, v, "must be AIMD, Vegas, Gradient2 or a LimitAlgorithm")


def build_algorithm(options: Options) -> LimitAlgorithm:
    """A fresh algorithm from its options."""
    return _BY_OPTIONS[type(options)](**options.as_kwargs())
