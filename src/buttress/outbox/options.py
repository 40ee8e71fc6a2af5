"""The relay's options: one frozen type, the house way (:mod:`buttress.options`)."""

from __future__ import annotations

from dataclasses import dataclass

from buttress.errors import ConfigError
from buttress.options import Options, duration, integer

__all__ = ["RelayOptions"]


@dataclass(frozen=True, kw_only=True)
class RelayOptions(Options):
    """How a :class:`~buttress.outbox.Relay` takes and delivers messages."""

    policy = "Relay"

    lease: float = duration(
        30.0,
        "How long a taken message stays reserved for its worker; heartbeats extend it.  A worker "
        "that dies leaves its messages to the others after at most this long",
        gt=0,
    )
    heartbeat: float | None = duration(
        None,
        "Seconds between heartbeats renewing the leases held; None: a third of the lease",
        gt=0,
        optional=True,
    )
    batch: int = integer(
        100, "Messages taken per round (one per ordering key at a time)", ge=1, le=10_000
    )
    poll: float = duration(0.2, "Seconds an idle relay waits before looking again", gt=0)

    def check(self) -> None:
        if self.heartbeat is not None and self.heartbeat >= self.lease:
            raise ConfigError(
                "heartbeat", self.heartbeat, f"must be shorter than the lease ({self.lease:g} s)"
            )

    @property
    def beat(self) -> float:
        """The heartbeat period in force."""
        return self.heartbeat if self.heartbeat is not None else self.lease / 3
