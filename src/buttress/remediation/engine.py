"""Remediation at run time: signals in, actions out, every action journaled.

:class:`Remediator` takes :class:`Signal` values (from :meth:`Remediator.signal`, from the policy
and supervisor events it listens to, from SLO statuses), keeps them as levels in
:class:`~buttress.remediation.core.Holds`, and for each rule whose signal has held long enough,
asks the rule's :class:`~buttress.remediation.core.RuleGate` and acts.  Each action, a dry run
included, is a :class:`JournalEntry` with the signal, its figures, the action and its outcome.  An
action that fails escalates its rule: the rule stops acting, a
:class:`RemediationEscalated` event goes out and ``on_escalate`` is called.

Actions run synchronously in the caller's thread; call from the event loop's thread when a rule
restarts a task child.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Emitter, Event, EventFamily, add_listener

from .core import Holds, RuleGate, RuleOptions

__all__ = [
    "Journal",
    "JournalEntry",
    "RemediationActed",
    "RemediationEscalated",
    "RemediationEvent",
    "Remediator",
    "Rule",
    "Signal",
    "signal_from_event",
    "signal_from_health_report",
    "signals_from_slo_statuses",
]


@dataclass(frozen=True, slots=True)
class Signal:
    """A condition observed: ``kind`` (``slo_burn``, ``breaker_open``, ...), whose (``subject``),
    whether it is ``active`` now, and the figures that show it."""

    kind: str
    subject: str
    active: bool = True
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """When ``signal`` (of ``subject``, ``*`` for any) is in ``state`` for ``options.hold``
    seconds, run ``action`` (described by ``describe``)."""

    name: str
    signal: str
    action: Callable[[Signal], str | None]
    describe: str
    subject: str = "*"
    state: str = "active"
    options: RuleOptions = field(default_factory=RuleOptions)


@dataclass(frozen=True)
class JournalEntry:
    """One action taken (or, ``dry_run``, that would have been)."""

    time: float  # wall clock
    rule: str
    signal: str
    subject: str
    figures: dict[str, Any]
    action: str
    dry_run: bool
    outcome: str  # "done", "dry run", "failed: ..."
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome.startswith("failed")


class Journal:
    """The record of every action, in memory and, with ``path``, as JSON lines on disk."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: list[JournalEntry] = []
        self._lock = threading.Lock()

    def add(self, entry: JournalEntry) -> None:
        with self._lock:
            self.entries.append(entry)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as f:
                    f.write(json.dumps(asdict(entry), default=str) + "\n")


class RemediationEvent(EventFamily, policy_type="remediation"):
    """The family of the remediator's events about one rule's ``action`` (its description)."""

    action: str


class RemediationActed(RemediationEvent, kind="acted"):
    """A rule acted on ``subject`` (or only journalled it, ``dry_run``)."""

    subject: str
    outcome: str
    dry_run: bool


class RemediationEscalated(RemediationEvent, kind="escalated"):
    """A rule's action failed (``error``): the rule escalates."""

    error: str


class Remediator:
    """Rules over signals.

    :param rules: the rules (see :meth:`from_spec` for ``reliability.yaml``).
    :param journal: where actions are recorded (default: in memory).
    :param on_escalate: called with the rule and the failed entry when a rule escalates.
    :param dry_run: every rule only journals (on top of each rule's own ``dry_run``).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        journal: Journal | None = None,
        on_escalate: Callable[[Rule, JournalEntry], None] | None = None,
        dry_run: bool = False,
        name: str = "remediation",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError("rules", names, "names must be unique")
        self.rules = list(rules)
        self.gates = {r.name: RuleGate(r.options) for r in rules}
        self.journal = journal or Journal()
        self.dry_run = dry_run
        self._on_escalate = on_escalate
        self._holds = Holds()
        self._acted_since: dict[str, float] = {}  # rule -> start of the episode it acted in
        self._subjects: dict[str, set[str]] = {}
        self._figures: dict[tuple[str, str], dict[str, Any]] = {}
        self._clock = clock
        self._emitter = Emitter(name)
        self._lock = threading.Lock()

    # --- input -------------------------------------------------------------------------------

    def signal(self, signal: Signal) -> list[JournalEntry]:
        """Record ``signal`` and act on the rules it makes due; the entries journaled."""
        now = self._clock.monotonic()
        with self._lock:
            self._holds.observe(signal.kind, signal.subject, signal.active, now)
            self._subjects.setdefault(signal.kind, set()).add(signal.subject)
            self._figures[(signal.kind, signal.subject)] = dict(signal.figures)
        return self.tick()

    def tick(self) -> list[JournalEntry]:
        """Act on the rules whose signal has now held long enough (call it periodically when
        rules have a ``for:``)."""
        now = self._clock.monotonic()
        due: list[tuple[Rule, Signal]] = []
        with self._lock:
            for rule in self.rules:
                for subject in self._matching(rule):
                    since = self._holds.held(
                        rule.signal,
                        subject,
                        active=rule.state == "active",
                        hold=rule.options.hold,
                        now=now,
                    )
                    if since is None:
                        continue
                    if not rule.options.repeat and self._acted_since.get(rule.name) == since:
                        continue  # once per episode
                    gate = self.gates[rule.name]
                    refusal = gate.refusal(now)
                    if refusal is not None:
                        continue
                    gate.acted(now)
                    self._acted_since[rule.name] = since
                    figures = self._figures.get((rule.signal, subject), {})
                    sig = Signal(rule.signal, subject, rule.state == "active", figures)
                    due.append((rule, sig))
        # act outside the lock: actions are user code and I/O
        return [self._act(rule, sig) for rule, sig in due]

    def reset(self, rule: str) -> None:
        """Let an escalated rule act again."""
        self.gates[rule].reset()

    def listen(self) -> Callable[[], None]:
        """Turn policy and supervisor events into signals (:func:`signal_from_event`); returns a
        function that stops listening."""

        def on_event(event: Event) -> None:
            sig = signal_from_event(event)
            if sig is not None:
                self.signal(sig)

        return add_listener(on_event)

    # --- internals ---------------------------------------------------------------------------

    def _matching(self, rule: Rule) -> list[str]:
        seen = self._subjects.get(rule.signal, set())
        if rule.subject == "*":
            return sorted(seen)
        return [rule.subject] if rule.subject in seen else []

    def _act(self, rule: Rule, sig: Signal) -> JournalEntry:
        dry = self.dry_run or rule.options.dry_run
        outcome, detail = "dry run", ""
        if not dry:
            try:
                detail = rule.action(sig) or ""
                outcome = "done"
            except Exception as e:  # any failure of the action escalates the rule
                outcome = f"failed: {type(e).__name__}: {e}"
        entry = JournalEntry(
            time=self._clock.wall(),
            rule=rule.name,
            signal=sig.kind,
            subject=sig.subject,
            figures=dict(sig.figures),
            action=rule.describe,
            dry_run=dry,
            outcome=outcome,
            detail=detail,
        )
        self.journal.add(entry)
        now = self._clock.monotonic()
        if self._emitter.active:
            self._emitter.emit(
                RemediationActed(
                    self._emitter.pipeline, rule.name, now, rule.describe, sig.subject, outcome, dry
                )
            )
        if entry.failed:
            self.gates[rule.name].escalate()
            if self._emitter.active:
                self._emitter.emit(
                    RemediationEscalated(
                        self._emitter.pipeline, rule.name, now, rule.describe, outcome
                    )
                )
            if self._on_escalate is not None:
                self._on_escalate(rule, entry)
        return entry


def signal_from_event(event: Event) -> Signal | None:
    """The signal an event carries: a circuit breaker's transitions (``breaker_open``, active
    while it is open), a supervisor giving up (``supervisor_gave_up``)."""
    if event.policy_type == "circuit_breaker" and hasattr(event, "to_state"):
        to_state = str(event.to_state)
        figures = {
            k: getattr(event, k) for k in ("calls", "failures", "slow_calls") if hasattr(event, k)
        }
        return Signal("breaker_open", event.policy, to_state in ("open", "forced_open"), figures)
    if event.policy_type == "supervisor" and event.kind == "gave_up":
        figures = {
            "restarts": getattr(event, "restarts", None),
            "reason": getattr(event, "reason", ""),
        }
        return Signal("supervisor_gave_up", event.pipeline, True, figures)
    return None


def signals_from_slo_statuses(statuses: Sequence[Any]) -> list[Signal]:
    """One ``slo_burn`` signal per SLO status (:class:`buttress.slo.evaluator.SLOStatus`): active
    while a burn-rate alert tier fires; figures: the burn rates, the budget remaining, the tiers."""
    out = []
    for s in statuses:
        figures = {
            "firing": list(s.firing),
            "burn_rates": dict(s.burn_rates),
            "budget_remaining": s.budget_remaining,
        }
        out.append(Signal("slo_burn", s.name, bool(s.firing), figures))
    return out


def signal_from_health_report(report: Any) -> Signal:
    """The ``health_failing`` signal of a health group's report
    (:class:`buttress.health.report.HealthReport`): active while the group fails; figures: the
    failing checks."""
    failing = [e.check.name for e in report.entries if str(e.effective) == "fail"]
    return Signal("health_failing", report.group, not report.ok, {"failing": failing})
