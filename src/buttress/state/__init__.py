"""Where the circuit breaker, the rate limiter and the retry budget keep their state.

* :class:`MemoryState` (the default): in this process, the policies' own in-memory stores.
* :class:`RedisState`: shared by every replica through Redis, one atomic round trip per decision
  (``pip install 'buttress[redis]'``; imported lazily).

See :mod:`buttress.state.base` for the interface and what happens when the shared store fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    POLICY_KINDS,
    OnUnavailable,
    StateRestored,
    StateStore,
    StateUnavailable,
    check_on_unavailable,
)
from .memory import MemoryState

if TYPE_CHECKING:
    from .redis import RedisState

__all__ = [
    "POLICY_KINDS",
    "MemoryState",
    "OnUnavailable",
    "RedisState",
    "StateRestored",
    "StateStore",
    "StateUnavailable",
    "check_on_unavailable",
]


def __getattr__(name: str) -> Any:
    if name == "RedisState":
        from .redis import RedisState

        return RedisState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
