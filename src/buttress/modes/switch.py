"""The mode switch: which degraded mode is on, switched by code, by the CLI, by remediation.

One :class:`ModeSwitch` per process holds the current mode (``None``: normal operation).  With a
``state_file``, the mode is also shared between processes: :meth:`ModeSwitch.enter` writes it, and
reads pick up a change another process wrote (``buttress modes set``) within ``poll`` seconds, so
the hot path costs one clock reading and a comparison between polls.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Emitter, Event

__all__ = ["Mode", "ModeChanged", "ModeSwitch", "read_state", "write_state"]


@dataclass(frozen=True, slots=True)
class Mode:
    """A degraded mode (built from a ``modes:`` entry, or in code)."""

    name: str
    description: str = ""
    keeps: frozenset[str] = frozenset()
    off: frozenset[str] = frozenset()
    shed: frozenset[str] = frozenset()
    flags: Mapping[str, bool | int | float | str] | None = None

    @classmethod
    def from_spec(cls, spec: Any) -> Mode:
        return cls(
            spec.name,
            spec.description,
            frozenset(spec.keeps),
            frozenset(spec.off),
            frozenset(spec.shed),
            dict(spec.flags),
        )


@dataclass(frozen=True, slots=True)
class ModeChanged(Event, policy_type="modes", kind="changed"):
    mode: str | None  # None: back to normal operation
    previous: str | None
    cause: str


def write_state(path: str | Path, mode: str | None, cause: str, wall: float) -> None:
    """Write the shared mode file atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + f".{os.getpid()}.partial")
    partial.write_text(json.dumps({"mode": mode, "cause": cause, "since": wall}))
    partial.replace(target)


def read_state(path: str | Path) -> dict[str, Any] | None:
    """The shared mode file's content, or ``None`` if there is none (or it is unreadable)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ModeSwitch:
    """The current degraded mode among ``modes``.

    :param modes: the declared modes.
    :param name: the switch's name in events.
    :param state_file: a file shared with other processes and with ``buttress modes``.
    :param poll: seconds between looks at ``state_file``.
    """

    def __init__(
        self,
        modes: Sequence[Mode],
        *,
        name: str = "modes",
        state_file: str | Path | None = None,
        poll: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.modes = {m.name: m for m in modes}
        if len(self.modes) != len(modes):
            raise ConfigError("modes", [m.name for m in modes], "names must be unique")
        self.state_file = Path(state_file) if state_file is not None else None
        self.poll = poll
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Mode | None = None
        self._cause = ""
        self._next_poll = 0.0
        self._emitter = Emitter(name)
        self._listeners: list[Callable[[str | None, str | None], None]] = []
        self._refresh(force=True)

    @classmethod
    def from_spec(cls, spec: Any, **kwargs: Any) -> ModeSwitch:
        """From a ``ReliabilitySpec`` (its ``modes:``) or a list of :class:`ModeSpec`."""
        entries = getattr(spec, "modes", spec) or []
        return cls([Mode.from_spec(m) for m in entries], **kwargs)

    @property
    def current(self) -> Mode | None:
        """The mode that is on, or ``None``."""
        if self.state_file is not None and self._clock.monotonic() >= self._next_poll:
            self._refresh()
        return self._current

    @property
    def cause(self) -> str:
        return self._cause

    def enter(self, name: str, cause: str = "api") -> None:
        """Switch ``name`` on (another mode that was on goes off)."""
        if name not in self.modes:
            known = ", ".join(sorted(self.modes)) or "none are declared"
            raise ConfigError("mode", name, f"is not a declared mode (known: {known})")
        self._switch(self.modes[name], cause, write=True)

    def leave(self, cause: str = "api") -> None:
        """Back to normal operation."""
        self._switch(None, cause, write=True)

    def on_change(self, listener: Callable[[str | None, str | None], None]) -> None:
        """Call ``listener(new, previous)`` after each change (outside the lock)."""
        self._listeners.append(listener)

    # --- what applications ask ---------------------------------------------------------------

    def is_on(self, feature: str) -> bool:
        """Is ``feature`` available in the current mode?  (Only ``off:`` switches one off.)"""
        mode = self.current
        return mode is None or feature not in mode.off

    def sheds(self, criticality: str) -> bool:
        """Does the current mode shed work of this criticality?"""
        mode = self.current
        return mode is not None and criticality in mode.shed

    def flag(self, key: str) -> tuple[bool | int | float | str | None, str | None]:
        """The value the current mode gives flag ``key`` and the mode's name, or ``(None,
        None)``: ``off`` features are ``False``, ``keeps`` are ``True``, then ``flags``."""
        mode = self.current
        if mode is None:
            return None, None
        if key in mode.off:
            return False, mode.name
        if key in mode.keeps:
            return True, mode.name
        if mode.flags and key in mode.flags:
            return mode.flags[key], mode.name
        return None, None

    # --- internals ---------------------------------------------------------------------------

    def _switch(self, mode: Mode | None, cause: str, *, write: bool) -> None:
        with self._lock:
            previous = self._current
            self._current, self._cause = mode, cause
            if write and self.state_file is not None:
                write_state(self.state_file, mode.name if mode else None, cause, self._clock.wall())
        if previous is mode:
            return
        new, old = (mode.name if mode else None), (previous.name if previous else None)
        if self._emitter.active:
            self._emitter.emit(
                ModeChanged(
                    self._emitter.pipeline, "mode", self._clock.monotonic(), new, old, cause
                )
            )
        for listener in self._listeners:
            listener(new, old)

    def _refresh(self, *, force: bool = False) -> None:
        self._next_poll = self._clock.monotonic() + self.poll
        if self.state_file is None:
            return
        data = read_state(self.state_file)
        if data is None:
            return
        name = data.get("mode")
        mode = self.modes.get(name) if isinstance(name, str) else None
        if (mode is not self._current) or force:
            self._switch(mode, str(data.get("cause", "state file")), write=False)
