"""The error hierarchy.

Everything Buttress raises derives from :class:`ButtressError`.  Anything a policy *refuses* to do
raises a :class:`Rejected` subclass: retries and hedges never retry those by default and breakers do
not count them, because a refusal is not evidence that the dependency is failing.
"""

from __future__ import annotations

__all__ = [
    "AttemptTimeout",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "ConfigError",
    "DeadlineExceeded",
    "LoadShed",
    "MissingExtra",
    "RateLimited",
    "Rejected",
    "RetryBudgetExhausted",
    "SpecError",
]


class ButtressError(Exception):
    """Root of every error Buttress raises."""


class ConfigError(ButtressError, ValueError):
    """A policy or component was built with an invalid parameter.

    Raised at build time, never per call; names the parameter and the value that was given.
    """

    def __init__(self, parameter: str, value: object, reason: str) -> None:
        self.parameter = parameter
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {parameter}={value!r}: {reason}")


class MissingExtra(ButtressError, ImportError):
    """An optional feature was used without its extra installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature = feature
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional dependency {module!r}: "
            f"install it with `pip install 'buttress[{extra}]'`"
        )


class Rejected(ButtressError):
    """A policy refused the call without running it.

    ``retry_after`` (seconds), when known, says when the policy expects to admit calls again.
    """

    def __init__(
        self, message: str = "", *, policy: str = "", retry_after: float | None = None
    ) -> None:
        self.policy = policy
        self.retry_after = retry_after
        super().__init__(message or f"{type(self).__name__} by {policy or 'a policy'}")


class CircuitOpen(Rejected):
    """The circuit breaker is open (or its half-open probes are all taken)."""


class BulkheadFull(Rejected):
    """The bulkhead has no free slot and its queue is full or the wait ran out."""


class RateLimited(Rejected):
    """The rate limiter has no token for this call."""


class RetryBudgetExhausted(Rejected):
    """The retry budget has no token left.

    A retry that runs out of budget re-raises the *last error*, not this; this exists for code that
    asks the budget directly (hedging, custom loops).
    """


class LoadShed(Rejected):
    """The call was shed to protect more critical traffic."""


class DeadlineExceeded(Rejected, TimeoutError):
    """The deadline for the whole operation has passed; no further work is started."""


class AttemptTimeout(ButtressError, TimeoutError):
    """One attempt ran longer than its timeout.

    Unlike :class:`DeadlineExceeded` this is retryable: the next attempt may be faster.
    """

    def __init__(self, timeout: float, *, policy: str = "") -> None:
        self.timeout = timeout
        self.policy = policy
        super().__init__(f"attempt timed out after {timeout:g}s")


class SpecError(ButtressError, ValueError):
    """``reliability.yaml`` (or another spec file) is invalid.

    Carries the file, line and column (1-based) and the dotted field path, so the message can point
    at the exact spot: ``reliability.yaml:12:5: policies.payments.retry.attempts: must be >= 1``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"
