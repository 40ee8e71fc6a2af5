"""Windowed samples for the adaptive limit: Netflix's ``WindowedLimit``.

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

import math
from dataclasses import dataclass
from typing import ClassVar

from buttress.errors import ConfigError
from buttress.options import Options, check_order, duration, integer, number_or_none

__all__ = ["SampleWindow", "WindowOptions", "WindowSample", "WindowSpec", "window_options"]


@dataclass(frozen=True, kw_only=True)
class WindowOptions(Options):
    """How :class:`~buttress.policies.limits.AdaptiveLimit` aggregates samples before its algorithm
    sees them (``adaptive_limit.window:``).

    A window's length is chosen when the previous one closes, from that window's fastest sample:
    ``clamp(2 * min_rtt, min_window_time, max_window_time)``, so a window spans at least two
    round trips; with the defaults it is always 1 s.  The algorithm receives the window's average
    (or percentile) rtt, its *largest* in-flight count and whether *any* sample was a drop.

    Netflix's defaults, with one difference: Netflix's builder refuses windows shorter than 100 ms
    and ``window_size`` below 10; Buttress accepts any positive value (short windows suit
    simulations on a fake clock), with the same semantics.
    """

    policy: ClassVar[str] = "WindowOptions"

    min_window_time: float = duration(1.0, "The shortest window, in seconds", gt=0, ge=None)
    max_window_time: float = duration(
        1.0, "The longest window, in seconds (>= min_window_time)", gt=0, ge=None
    )
    window_size: int = integer(
        10, "The fewest samples a window needs to count; windows with fewer are discarded", ge=1
    )
    min_rtt_threshold: float = duration(
        100e-6,
        "Samples faster than this many seconds are ignored altogether: cache hits and failed-fast "
        "calls say nothing about the dependency's queue",
    )
    percentile: float | None = number_or_none(
        None,
        "None: feed the window's average rtt to the algorithm (AverageSampleWindow); a fraction: "
        "that percentile of the window's rtts, the k-th smallest with k = max(1, floor(n * p + "
        "0.5)) (ImmutablePercentileSampleWindow)",
        gt=0,
        lt=1,
    )
    max_samples: int = integer(
        1000,
        "With a percentile, how many rtts a window keeps (the first ones; later samples still "
        "count and still move the minimum, the in-flight maximum and the drop flag)",
        ge=1,
    )

    def check(self) -> None:
        check_order(
            "min_window_time", self.min_window_time, "max_window_time", self.max_window_time
        )


WindowSpec = WindowOptions
"""The earlier name of :class:`WindowOptions`."""


def window_options(name: str, v: object) -> WindowOptions | None:
    """An options ``check``: ``True`` for the defaults, ``False`` or ``None`` for no windowing."""
    if v is True:
        return WindowOptions()
    if v is False or v is None:
        return None
    if isinstance(v, WindowOptions):
        return v
    raise ConfigError(name, v, "must be a WindowOptions, True, False or None")


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
