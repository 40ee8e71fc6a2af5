"""The options of a supervisor and of its children, declared once (see :mod:`buttress.options`).

The defaults follow the anchors: a restart intensity of 3 in 5 s is Elixir's supervisor default
(Erlang/OTP's, 1 in 5 s, is strict for OS processes); the first restart waits 100 ms as systemd's
``RestartSec=`` does; the delay then doubles up to a cap, as Kubernetes' CrashLoopBackOff does, and
a child that ran for ``reset_after`` seconds before it failed starts again from the first delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from buttress.errors import ConfigError
from buttress.options import Options, choice, duration, integer, number

__all__ = ["STRATEGIES", "RESTART_TYPES", "ChildOptions", "SupervisorOptions"]

Strategy = Literal["one_for_one", "one_for_all", "rest_for_one"]
RestartType = Literal["permanent", "transient", "temporary"]

STRATEGIES: tuple[str, ...] = ("one_for_one", "one_for_all", "rest_for_one")
RESTART_TYPES: tuple[str, ...] = ("permanent", "transient", "temporary")


@dataclass(frozen=True, kw_only=True)
class SupervisorOptions(Options):
    """How a supervisor reacts when a child fails, and when it gives up."""

    policy: ClassVar[str] = "Supervisor"

    strategy: Strategy = choice(
        "one_for_one",
        "Which children restart when one fails: only it, all of them, or it and the ones started"
        " after it",
        STRATEGIES,
    )
    intensity: int = integer(
        3, "Restarts allowed within `period`; one more and the supervisor escalates", ge=None, gt=0
    )
    period: float = duration(
        5.0, "The window, in seconds, over which restarts are counted", ge=None, gt=0
    )


@dataclass(frozen=True, kw_only=True)
class ChildOptions(Options):
    """How one child restarts, starts and stops."""

    policy: ClassVar[str] = "Child"

    restart: RestartType = choice(
        "permanent",
        "permanent: always restarted; transient: only after a failure; temporary: never",
        RESTART_TYPES,
    )
    backoff_initial: float = duration(0.1, "Delay before the first restart, in seconds")
    backoff_factor: float = number(2.0, "Growth of the delay per consecutive failure", ge=1)
    backoff_cap: float = duration(30.0, "The longest delay before a restart, in seconds")
    reset_after: float = duration(
        60.0, "Seconds of uptime after which a failure counts as the first again", ge=None, gt=0
    )
    ready_timeout: float = duration(
        30.0, "Seconds a started child has to become ready; then it counts as failed", ge=None, gt=0
    )
    grace: float = duration(5.0, "Seconds between SIGTERM and SIGKILL when stopping")
    watchdog: float = duration(
        0.0, "Seconds without a WATCHDOG=1 ping after which the child is killed (0: off)"
    )
    liveness_period: float = duration(
        1.0,
        "Seconds between two liveness checks (for a child with a liveness check)",
        ge=None,
        gt=0,
    )
    liveness_timeout: float = duration(
        3.0, "Seconds the liveness check may keep failing before the child is killed"
    )

    def check(self) -> None:
        if self.backoff_cap < self.backoff_initial:
            raise ConfigError(
                "backoff_cap",
                self.backoff_cap,
                f"must be >= backoff_initial ({self.backoff_initial:g}s)",
            )

    def delay(self, failures: int) -> float:
        """The wait before the restart that follows ``failures`` consecutive failures (``>= 1``):
        ``min(cap, initial * factor ** (failures - 1))``."""
        exponent = max(0, failures - 1)
        # factor ** exponent overflows a float long before any cap matters: stop growing at the cap
        delay = self.backoff_initial
        for _ in range(exponent):
            delay *= self.backoff_factor
            if delay >= self.backoff_cap:
                return self.backoff_cap
        return min(delay, self.backoff_cap)
