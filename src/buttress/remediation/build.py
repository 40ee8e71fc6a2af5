"""Rules from ``reliability.yaml``: each ``action:`` bound to what it acts on."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError

from .engine import Remediator, Rule, Signal
from .spec import ActionSpec, RuleSpec

if TYPE_CHECKING:
    from buttress.modes.switch import ModeSwitch
    from buttress.supervise.supervisor import Supervisor

__all__ = ["build_remediator", "build_rule"]


def _http(url: str, timeout: float, rule: str) -> Callable[[Signal], str]:
    def post(sig: Signal) -> str:
        body = json.dumps(
            {"rule": rule, "signal": sig.kind, "subject": sig.subject, "figures": sig.figures},
            default=str,
        ).encode()
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return f"HTTP {response.status}"

    return post


def _command(argv: list[str], timeout: float) -> Callable[[Signal], str]:
    def run(sig: Signal) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"exit status {done.returncode}: {done.stderr.strip()[:200]}")
        return done.stdout.strip()[:200]

    return run


def build_rule(
    spec: RuleSpec,
    *,
    switch: ModeSwitch | None = None,
    supervisor: Supervisor | None = None,
    handlers: Mapping[str, Callable[[Signal], str | None]] | None = None,
) -> Rule:
    """A :class:`Rule` from its spec; the objects the action needs must be given."""
    a: ActionSpec = spec.action
    cause = f"remediation {spec.name}"
    action: Callable[[Signal], str | None]
    if a.mode is not None or a.clear_mode:
        if switch is None:
            raise ConfigError(
                "switch", None, f"rule {spec.name!r} switches modes: pass a ModeSwitch"
            )
        mode, sw = a.mode, switch
        if mode is not None:

            def action(sig: Signal) -> str:
                sw.enter(mode, cause=f"{cause}: {sig.kind} {sig.subject}")
                return f"mode {mode} on"
        else:

            def action(sig: Signal) -> str:
                sw.leave(cause=f"{cause}: {sig.kind} {sig.subject} clear")
                return "normal operation"
    elif a.restart is not None:
        if supervisor is None:
            raise ConfigError(
                "supervisor", None, f"rule {spec.name!r} restarts a child: pass the Supervisor"
            )
        target, sup = a.restart, supervisor

        def action(sig: Signal) -> str:
            sup.restart_child(target, f"{cause}: {sig.kind} {sig.subject}")
            return f"{target} killed for a restart"
    elif a.http is not None:
        action = _http(a.http, a.timeout, spec.name)
    elif a.command is not None:
        action = _command(list(a.command), a.timeout)
    else:
        assert a.call is not None
        handler = (handlers or {}).get(a.call)
        if handler is None:
            known = ", ".join(sorted(handlers or {})) or "none were passed"
            raise ConfigError(
                "handlers", a.call, f"rule {spec.name!r} calls an unknown handler (known: {known})"
            )
        action = handler
    return Rule(
        name=spec.name,
        signal=spec.when.signal,
        subject=spec.when.subject,
        state=spec.when.state,
        action=action,
        describe=a.describe(),
        options=spec.options(),
    )


def build_remediator(
    spec: Any,
    *,
    switch: ModeSwitch | None = None,
    supervisor: Supervisor | None = None,
    handlers: Mapping[str, Callable[[Signal], str | None]] | None = None,
    **kwargs: Any,
) -> Remediator:
    """A :class:`Remediator` for the ``remediation:`` rules of a ``ReliabilitySpec`` (or a list
    of :class:`RuleSpec`); ``kwargs`` go to :class:`Remediator`."""
    rules = getattr(spec, "remediation", spec) or []
    built = [build_rule(r, switch=switch, supervisor=supervisor, handlers=handlers) for r in rules]
    return Remediator(built, **kwargs)
