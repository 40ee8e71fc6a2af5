"""Active health checking: the settings and the per-endpoint state machine (sans-I/O).

A driver (:mod:`buttress.failover.driver`) probes every endpoint every ``interval`` seconds plus a
random jitter, and reports each probe's result to the pool, which feeds it to
:class:`ActiveHealth`:

* ``pass``: the probe got the expected answer;
* ``fail``: a definite wrong answer (an HTTP status outside ``expected_statuses``): the endpoint is
  marked unhealthy **at once**, whatever the threshold, as Envoy does;
* ``error``: no answer (refused, reset, timed out): counts towards ``unhealthy_threshold``.

State changes (per endpoint)::

    healthy   --(unhealthy_threshold errors in a row, or one fail)--> unhealthy
    unhealthy --(healthy_threshold passes in a row)-----------------> healthy

Endpoints start healthy, so a new pool serves at once; an endpoint that is down is found at the
first round (one ``fail``, or ``unhealthy_threshold`` rounds of ``error``).  The time between rounds
is ``interval + U(0, jitter * interval)``: jitter spreads the probes of many clients so that they do
not arrive in lockstep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.errors import ConfigError
from buttress.options import Options, choice, custom, duration, integer, number

__all__ = ["ActiveHealth", "HealthCheck", "ProbeResult"]

ProbeResult = Literal["pass", "fail", "error"]


def _path(name: str, v: Any) -> str:
    if not isinstance(v, str) or not v.startswith("/"):
        raise ConfigError(name, v, "must be a path starting with '/'")
    return v


def _statuses(name: str, v: Any) -> frozenset[int]:
    statuses = frozenset(v) if isinstance(v, Iterable) else frozenset()
    if not statuses or not all(
        isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
    ):
        raise ConfigError(name, v, "must be HTTP statuses (100-599)")
    return statuses


@dataclass(frozen=True, kw_only=True, repr=False)
class HealthCheck(Options):
    """Active health-check settings; every parameter is checked on construction, a bad one raises
    :class:`~buttress.errors.ConfigError` naming it."""

    policy: ClassVar[str] = "EndpointPool"

    kind: Literal["http", "tcp"] = choice(
        "http",
        "http: GET path and expect a status in expected_statuses; tcp: a connection is accepted",
        ("http", "tcp"),
    )
    path: str = custom(
        "/healthz", "The HTTP path probed, appended to the endpoint's base path", check=_path
    )
    interval: float = duration(5.0, "Seconds between rounds", ge=None, gt=0)
    jitter: float = number(0.1, "Extra random wait, as a fraction of interval", ge=0, le=1)
    timeout: float = duration(1.0, "Seconds a probe may take, at most interval", ge=None, gt=0)
    healthy_threshold: int = integer(2, "Passes in a row to return", ge=1)
    unhealthy_threshold: int = integer(2, "Errors in a row to leave", ge=1)
    expected_statuses: frozenset[int] = custom(
        frozenset(range(200, 300)), "HTTP statuses that pass", check=_statuses, shown="200-299"
    )

    def check(self) -> None:
        if self.timeout > self.interval:
            raise ConfigError(
                "timeout", self.timeout, f"must not exceed the interval ({self.interval:g}s)"
            )

    def __repr__(self) -> str:
        shown = ("kind", "path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold")
        return f"HealthCheck({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def wait(self, draw: float) -> float:
        """Seconds until the next round, for ``draw`` uniform in ``[0, 1)``."""
        return self.interval * (1.0 + self.jitter * draw)


class ActiveHealth:
    """One endpoint's active-check state: healthy or not, and the run of results."""

    __slots__ = ("errors", "healthy", "passes")

    def __init__(self) -> None:
        self.healthy = True
        self.passes = 0
        self.errors = 0

    def on_probe(self, result: str, config: HealthCheck) -> bool | None:
        """Apply one probe result; the new state if it changed, else ``None``."""
        if result == "pass":
            self.errors = 0
            self.passes += 1
            if not self.healthy and self.passes >= config.healthy_threshold:
                self.healthy = True
                return True
            return None
        self.passes = 0
        self.errors += 1
        if self.healthy and (result == "fail" or self.errors >= config.unhealthy_threshold):
            self.healthy = False
            return False
        return None
