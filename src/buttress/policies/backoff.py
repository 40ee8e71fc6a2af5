"""Backoff: how long to wait before retry number *n*.

The formulas are those of Marc Brooker's "Exponential Backoff and Jitter" (AWS Architecture Blog,
2015). With ``n`` the number of failures so far (1 before the first retry) the *base curve* is

* constant:     ``d(n) = base``
* linear:       ``d(n) = base + step * (n - 1)``
* exponential:  ``d(n) = base * multiplier ** (n - 1)``

capped at ``cap``, and then jittered:

* ``none``:         ``d``
* ``full``:         ``uniform(0, d)``
* ``equal``:        ``d / 2 + uniform(0, d / 2)``
* ``decorrelated``: ``min(cap, uniform(base, 3 * previous))`` with ``previous`` starting at ``base``
  (the curve is ignored: each delay grows from the previous one).

Full jitter is the default: it spreads clients out best and, in Brooker's simulations, finishes the
contended work with the least total load.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar, Literal

from buttress.errors import ConfigError
from buttress.options import Options, choice, documented, duration, number

__all__ = ["Backoff", "BackoffOptions", "Jitter", "backoff_options"]

Jitter = Literal["none", "full", "equal", "decorrelated"]


@dataclass(frozen=True, kw_only=True)
class BackoffOptions(Options):
    """Options of :class:`Backoff` (``backoff:`` in a ``retry:``)."""

    policy: ClassVar[str] = "Backoff"

    kind: Literal["constant", "linear", "exponential"] = choice(
        "exponential", "The base curve", ("constant", "linear", "exponential")
    )
    base: float = duration(0.1, "The first delay, in seconds")
    multiplier: float = number(2.0, "Growth per retry (exponential)", ge=1)
    step: float = duration(0.0, "Added per retry (linear), in seconds")
    cap: float = duration(10.0, "The longest delay, in seconds (>= base)")
    jitter: Jitter = choice(
        "full",
        "How the delay is randomised: full spreads clients best (Brooker, AWS 2015)",
        ("none", "full", "equal", "decorrelated"),
    )

    def check(self) -> None:
        if self.cap < self.base:
            raise ConfigError("cap", self.cap, f"must be >= base ({self.base:g}s)")


@documented(BackoffOptions)
class Backoff:
    """A delay schedule.  Build it with :meth:`constant`, :meth:`linear` or :meth:`exponential`.

    Defaults: exponential, ``base=0.1`` s, ``multiplier=2``, ``cap=10`` s, full jitter.  All
    durations are seconds; ``cap`` must be ``>= base``.

    ``rng`` (a :class:`random.Random`) makes the jitter reproducible; by default each schedule has
    its own generator seeded from the system.
    """

    def __init__(
        self,
        kind: Literal["constant", "linear", "exponential"] = BackoffOptions.kind,
        *,
        base: float = BackoffOptions.base,
        multiplier: float = BackoffOptions.multiplier,
        step: float = BackoffOptions.step,
        cap: float = BackoffOptions.cap,
        jitter: Jitter = BackoffOptions.jitter,
        rng: random.Random | None = None,
    ) -> None:
        o = self.options = BackoffOptions.from_arguments(locals())
        self.kind = o.kind
        self.base = o.base
        self.step = o.step
        self.cap = o.cap
        self.multiplier = o.multiplier
        self.jitter: Jitter = o.jitter
        if rng is not None and not isinstance(rng, random.Random):
            raise ConfigError("rng", rng, "must be a random.Random")
        self.rng = rng if rng is not None else random.Random()

    @classmethod
    def from_options(cls, options: BackoffOptions, *, rng: random.Random | None = None) -> Backoff:
        """The schedule ``options`` declare."""
        return cls(**options.as_kwargs(), rng=rng)

    @classmethod
    def constant(
        cls, delay: float, *, jitter: Jitter = "none", rng: random.Random | None = None
    ) -> Backoff:
        return cls("constant", base=delay, cap=delay, jitter=jitter, rng=rng)

    @classmethod
    def linear(
        cls,
        base: float,
        step: float,
        *,
        cap: float = 10.0,
        jitter: Jitter = "none",
        rng: random.Random | None = None,
    ) -> Backoff:
        return cls("linear", base=base, step=step, cap=cap, jitter=jitter, rng=rng)

    @classmethod
    def exponential(
        cls,
        base: float = 0.1,
        *,
        multiplier: float = 2.0,
        cap: float = 10.0,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
    ) -> Backoff:
        return cls("exponential", base=base, multiplier=multiplier, cap=cap, jitter=jitter, rng=rng)

    def curve(self, n: int) -> float:
        """The un-jittered delay before retry ``n`` (``n >= 1``), capped."""
        if self.kind == "constant":
            d = self.base
        elif self.kind == "linear":
            d = self.base + self.step * (n - 1)
        else:
            # Guard the power against overflow for large n: past the cap it no longer matters.
            try:
                d = self.base * self.multiplier ** (n - 1)
            except OverflowError:
                d = math.inf
        return d if d < self.cap else self.cap

    def delay(self, n: int, previous: float | None = None) -> float:
        """The delay before retry ``n``; ``previous`` is the last delay returned (for
        decorrelated)."""
        j = self.jitter
        if j == "decorrelated":
            prev = self.base if previous is None else previous
            hi = max(self.base, prev * 3.0)
            d = self.rng.uniform(self.base, hi)
            return d if d < self.cap else self.cap
        d = self.curve(n)
        if j == "none":
            return d
        if j == "full":
            return self.rng.uniform(0.0, d)
        half = d / 2.0
        return half + self.rng.uniform(0.0, half)

    def bounds(self, n: int, previous: float | None = None) -> tuple[float, float]:
        """The closed interval the delay before retry ``n`` always falls in (used by the tests and
        docs)."""
        j = self.jitter
        if j == "decorrelated":
            prev = self.base if previous is None else previous
            return (min(self.base, self.cap), min(self.cap, max(self.base, prev * 3.0)))
        d = self.curve(n)
        if j == "none":
            return (d, d)
        if j == "full":
            return (0.0, d)
        return (d / 2.0, d)

    def __repr__(self) -> str:
        return (
            f"Backoff({self.kind!r}, base={self.base:g}, multiplier={self.multiplier:g}, "
            f"step={self.step:g}, cap={self.cap:g}, jitter={self.jitter!r})"
        )


def backoff_options(name: str, v: object) -> BackoffOptions:
    """An options ``check``: a :class:`Backoff` stands for its options; ``None`` for the
    defaults."""
    if v is None:
        return BackoffOptions()
    if isinstance(v, Backoff):
        return v.options
    if isinstance(v, BackoffOptions):
        return v
    raise ConfigError(name, v, "must be a Backoff or BackoffOptions")
