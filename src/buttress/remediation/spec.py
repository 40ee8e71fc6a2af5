"""The ``remediation:`` section of ``reliability.yaml``: when a signal holds, act.

.. code-block:: yaml

    remediation:
      - name: degrade-checkout
        when: {signal: slo_burn, subject: checkout, for: 2m}
        action: {mode: essential-only}
        cooldown: 10m
        limit: 3
        per: 1h
      - name: recover-checkout
        when: {signal: slo_burn, subject: checkout, state: clear, for: 5m}
        action: {clear_mode: true}
      - name: restart-api
        when: {signal: health_failing, subject: readiness, for: 30s}
        action: {restart: api}
        dry_run: true
      - name: page
        when: {signal: supervisor_gave_up, subject: workers}
        action: {http: "http://127.0.0.1:9093/hook"}

Signals: ``slo_burn`` (an SLO's burn-rate alert fires; subject: the SLO), ``breaker_open`` (a
circuit breaker is open; subject: the breaker), ``health_failing`` (a health group fails;
subject: the group), ``supervisor_gave_up`` (subject: the supervisor), or any name an application
sends.  Actions: ``mode``, ``clear_mode``, ``restart`` (a child of ``supervision:``), ``http``,
``command``, ``call`` (a handler registered in code: drain, fail a pool over, ...).  A ``mode`` or
``restart`` naming something the file does not declare is refused with the file, line and field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.spec.options import spec_model
from buttress.spec.sections import register_section
from buttress.spec.types import Duration
from buttress.spec.validation import located

from .core import RuleOptions

__all__ = ["ActionSpec", "RuleSpec", "WhenSpec"]


class WhenSpec(BaseModel):
    """The signal a rule waits for."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    signal: str = Field(min_length=1, description="slo_burn, breaker_open, health_failing, ...")
    subject: str = Field("*", min_length=1, description="Whose signal (`*`: any).")
    state: Literal["active", "clear"] = Field("active", description="Act when active, or clear.")
    hold: Duration = Field(0.0, alias="for", description="Seconds it must hold first.")


class ActionSpec(BaseModel):
    """What a rule does: exactly one key."""

    model_config = ConfigDict(extra="forbid")

    mode: str | None = Field(None, description="Switch this degraded mode on.")
    clear_mode: bool = Field(False, description="Back to normal operation.")
    restart: str | None = Field(None, description="Restart this child of supervision:.")
    http: str | None = Field(None, description="POST the signal as JSON to this URL.")
    command: list[str] | None = Field(None, min_length=1, description="Run this program.")
    call: str | None = Field(None, description="Call the handler registered under this name.")
    timeout: Duration = Field(10.0, gt=0, description="Seconds an http or command action has.")

    @model_validator(mode="after")
    def _one(self) -> ActionSpec:
        given = [
            k
            for k in ("mode", "clear_mode", "restart", "http", "command", "call")
            if getattr(self, k)
        ]
        if len(given) != 1:
            raise located((), "give exactly one of mode, clear_mode, restart, http, command, call")
        if self.http is not None and not self.http.startswith(("http://", "https://")):
            raise located(("http",), "must be an http:// or https:// URL")
        return self

    def describe(self) -> str:
        if self.mode:
            return f"mode {self.mode}"
        if self.clear_mode:
            return "clear mode"
        if self.restart:
            return f"restart {self.restart}"
        if self.http:
            return f"POST {self.http}"
        if self.command:
            return "run " + " ".join(self.command)
        return f"call {self.call}"


_RuleBase = spec_model(RuleOptions, "RuleOptionsSpec", exclude=("hold",))


class RuleSpec(_RuleBase):  # type: ignore[misc,valid-type]
    """One rule: when a signal holds, take an action."""

    name: str = Field(min_length=1, description="The rule's name (in the journal).")
    when: WhenSpec
    action: ActionSpec

    def options(self) -> RuleOptions:
        return RuleOptions(**{**self.option_values(), "hold": self.when.hold})

    def check_spec(self, root: Any) -> None:
        """Names are unique; ``mode`` and ``restart`` name what the file declares."""
        rules = root.remediation
        index = next(i for i, r in enumerate(rules) if r is self)
        where = ("remediation", index)
        first = next(i for i, r in enumerate(rules) if r.name == self.name)
        if first != index:
            raise located((*where, "name"), f"duplicate rule name {self.name!r}")
        action = self.action
        if action.mode is not None:
            modes = {m.name for m in getattr(root, "modes", None) or []}
            if action.mode not in modes:
                known = ", ".join(sorted(modes)) or "modes: declares none"
                raise located(
                    (*where, "action", "mode"), f"unknown mode {action.mode!r} (known: {known})"
                )
        if action.restart is not None:
            names = _children(getattr(root, "supervision", None))
            if action.restart not in names:
                known = ", ".join(sorted(names)) or "supervision: declares none"
                raise located(
                    (*where, "action", "restart"),
                    f"unknown child {action.restart!r} (known: {known})",
                )


def _children(section: Any) -> set[str]:
    if section is None:
        return set()
    out: set[str] = set()
    stack = list(section.children)
    while stack:
        c = stack.pop()
        out.add(c.name)
        stack.extend(c.children or [])
    return out


register_section(
    "remediation",
    RuleSpec,
    description="Rules: when a signal holds, act (mode, restart, hook), with cooldowns and limits"
    " (see docs/degraded-modes.md).",
    many=True,
)
