"""The decisions of remediation, without I/O: does a signal hold, may a rule act now.

:class:`Holds` follows signals as levels: each ``(kind, subject)`` is active or clear since some
time.  :class:`RuleGate` guards one rule: at least ``cooldown`` seconds between two actions, at
most ``limit`` actions within any ``per`` seconds, and none at all once the rule has escalated
(its action failed: a rule that fails escalates instead of retrying forever).  Both read time only
from their arguments.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from buttress.options import Options, duration, flag, integer

__all__ = ["Holds", "RuleGate", "RuleOptions"]


@dataclass(frozen=True, kw_only=True)
class RuleOptions(Options):
    """How often one remediation rule may act."""

    policy: ClassVar[str] = "Rule"

    hold: float = duration(0.0, "Seconds the signal must hold (or stay clear) before acting")
    cooldown: float = duration(60.0, "Seconds after an action during which the rule does not act")
    limit: int = integer(3, "Actions allowed within `per` seconds", gt=0)
    per: float = duration(3600.0, "The window, in seconds, of `limit`", ge=None, gt=0)
    repeat: bool = flag(
        False, "Act again (after the cooldown) while the signal keeps holding, not once per episode"
    )
    dry_run: bool = flag(False, "Journal what the rule would do, and do nothing")


class RuleGate:
    """Cooldown, limit per period and escalation of one rule."""

    def __init__(self, options: RuleOptions) -> None:
        self.options = options
        self.actions: deque[float] = deque()
        self.escalated = False

    def refusal(self, now: float) -> str | None:
        """Why the rule may not act at ``now`` (``escalated``, ``cooldown``, ``limit``), or
        ``None``."""
        if self.escalated:
            return "escalated"
        if self.actions and now - self.actions[-1] < self.options.cooldown:
            return "cooldown"
        while self.actions and self.actions[0] <= now - self.options.per:
            self.actions.popleft()
        if len(self.actions) >= self.options.limit:
            return "limit"
        return None

    def acted(self, now: float) -> None:
        """The rule acted (or would have, in a dry run) at ``now``."""
        self.actions.append(now)

    def escalate(self) -> None:
        self.escalated = True

    def reset(self) -> None:
        """Forget the escalation (an operator fixed what the action could not)."""
        self.escalated = False


class Holds:
    """Since when each signal is active or clear."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str], tuple[bool, float]] = {}
        self._was_active: set[tuple[str, str]] = set()

    def observe(self, kind: str, subject: str, active: bool, now: float) -> None:
        key = (kind, subject)
        known = self._state.get(key)
        if known is None or known[0] != active:
            self._state[key] = (active, now)
        if active:
            self._was_active.add(key)

    def held(
        self, kind: str, subject: str, *, active: bool, hold: float, now: float
    ) -> float | None:
        """Since when the signal has been ``active`` (or clear, after having been active) for at
        least ``hold`` seconds; ``None`` if it has not."""
        known = self._state.get((kind, subject))
        if known is None or known[0] != active:
            return None
        if not active and (kind, subject) not in self._was_active:
            return None  # clear from the start is not a recovery
        since = known[1]
        return since if now - since >= hold else None
