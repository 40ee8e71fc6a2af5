"""What the outbox refuses, each naming the parameter, the value and the reason."""

from __future__ import annotations

from buttress.errors import ButtressError, ConfigError

__all__ = [
    "NotInTransaction",
    "NotSerialisable",
    "OutboxError",
    "PermanentError",
    "StoreUnavailable",
    "UnknownQueue",
]


class OutboxError(ButtressError):
    """Root of the outbox's runtime errors."""


class UnknownQueue(ConfigError):
    """A queue the outbox was not built with (a typo would otherwise park messages forever)."""

    def __init__(self, queue: str, known: frozenset[str] | set[str]) -> None:
        self.queue = queue
        names = ", ".join(sorted(known)) or "none"
        super().__init__("queue", queue, f"is not a queue of this outbox (known: {names})")


class NotSerialisable(ConfigError):
    """The payload cannot be written as JSON; nothing was stored."""

    def __init__(self, queue: str, detail: str) -> None:
        super().__init__(
            "payload", queue, f"cannot be serialised as JSON, nothing stored: {detail}"
        )


class NotInTransaction(ConfigError):
    """``enqueue`` was given a connection in autocommit mode outside a transaction: the message
    would be committed on its own, apart from the business write it belongs with."""

    def __init__(self) -> None:
        super().__init__(
            "conn",
            "autocommit connection",
            "enqueue must run inside the transaction of the business write (BEGIN first)",
        )


class StoreUnavailable(OutboxError):
    """The database behind the outbox could not be reached or refused the operation; whatever
    was being done is not acknowledged (``operation``: what, ``detail``: the driver's words)."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(f"outbox store unavailable during {operation}: {detail}")


class PermanentError(OutboxError):
    """Raise from a handler to send the message to the dead-letter queue at once: retrying
    cannot help (a malformed payload, a refused business rule)."""
