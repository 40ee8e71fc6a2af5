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

import math
from collections.abc import Iterable
from typing import Literal

from buttress.errors import ConfigError
from buttress.options import check_integer

__all__ = ["ActiveHealth", "HealthCheck", "ProbeResult"]

ProbeResult = Literal["pass", "fail", "error"]


class HealthCheck:
    """Active health-check settings.

    :param kind: ``"http"`` (GET ``path``, expect a status in ``expected_statuses``) or ``"tcp"``
        (a connection is accepted).  Default ``"http"``.
    :param path: the HTTP path probed, appended to the endpoint's base path.  Default ``/healthz``.
    :param interval: seconds between rounds (``> 0``).  Default 5.
    :param jitter: extra random wait, as a fraction of ``interval`` in ``[0, 1]``.  Default 0.1.
    :param timeout: seconds a probe may take (``> 0``, at most ``interval``).  Default 1.
    :param healthy_threshold: passes in a row to return (``>= 1``).  Default 2.
    :param unhealthy_threshold: errors in a row to leave (``>= 1``).  Default 2.
    :param expected_statuses: HTTP statuses that pass.  Default 200-299.
    """

    __slots__ = (
        "expected_statuses",
        "healthy_threshold",
        "interval",
        "jitter",
        "kind",
        "path",
        "timeout",
        "unhealthy_threshold",
    )

    def __init__(
        self,
        *,
        kind: Literal["http", "tcp"] = "http",
        path: str = "/healthz",
        interval: float = 5.0,
        jitter: float = 0.1,
        timeout: float = 1.0,
        healthy_threshold: int = 2,
        unhealthy_threshold: int = 2,
        expected_statuses: Iterable[int] = range(200, 300),
    ) -> None:
        if kind not in ("http", "tcp"):
            raise ConfigError("kind", kind, "must be 'http' or 'tcp'")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("path", path, "must be a path starting with '/'")
        for name, value in (("interval", interval), ("timeout", timeout)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < math.inf
            ):
                raise ConfigError(name, value, "must be a finite number of seconds > 0")
        if timeout > interval:
            raise ConfigError("timeout", timeout, f"must not exceed the interval ({interval:g}s)")
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ConfigError("jitter", jitter, "must be a fraction of the interval within [0, 1]")
        for name, count in (
            ("healthy_threshold", healthy_threshold),
            ("unhealthy_threshold", unhealthy_threshold),
        ):
            check_integer(name, count, ge=1)
        statuses = frozenset(expected_statuses)
        if not statuses or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
        ):
            raise ConfigError(
                "expected_statuses", expected_statuses, "must be HTTP statuses (100-599)"
            )
        self.kind = kind
        self.path = path
        self.interval = float(interval)
        self.jitter = float(jitter)
        self.timeout = float(timeout)
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self.expected_statuses = statuses

    def __repr__(self) -> str:
        return (
            f"HealthCheck(kind={self.kind!r}, path={self.path!r}, interval={self.interval:g}, "
            f"timeout={self.timeout:g}, healthy_threshold={self.healthy_threshold}, "
            f"unhealthy_threshold={self.unhealthy_threshold})"
        )

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
