"""Degraded modes: declared in ``reliability.yaml``, switched by code, CLI and remediation, read
by applications directly or through OpenFeature (:mod:`buttress.modes.openfeature`).

See ``docs/degraded-modes.md``.
"""

from __future__ import annotations

from .switch import Mode, ModeChanged, ModeSwitch, read_state, write_state

__all__ = ["Mode", "ModeChanged", "ModeSwitch", "read_state", "write_state"]
