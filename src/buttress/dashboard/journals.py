"""Experiment runs: Chaos Toolkit journals read from a directory.

A journal is the JSON file ``chaos run`` writes (``--journal-path``; Buttress's own experiment
runner writes the same format).  The fields used here are the ones chaoslib always writes:
``experiment.title``, ``status`` (``completed``, ``failed``, ``aborted``, ``interrupted``),
``deviated``, ``start``, ``end``, ``duration``, ``steady_states.before/after.steady_state_met``,
and per activity in ``run`` and ``rollbacks``: ``activity.name``, ``activity.type``, ``status``,
``start``, ``duration``.  Buttress's own runner (:mod:`buttress.chaos.experiment`) adds
``abort_reason``, shown when set.

A file that is not a journal (not JSON, or JSON without ``experiment`` and ``status``) is listed
with the reason instead of its figures, so one broken file never hides the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from buttress.errors import ButtressError
from buttress.records import fields_of

__all__ = ["JournalSummary", "find_journals", "load_journal", "summarise"]

MAX_JOURNALS = 200
"""Journals listed at most (the newest by modification time)."""


@dataclass(frozen=True, slots=True)
class JournalSummary:
    """What the dashboard shows of one journal (``error`` set when the file is unreadable)."""

    file: str
    title: str = ""
    status: str = ""
    deviated: bool = False
    start: str | None = None
    end: str | None = None
    duration: float | None = None
    hypothesis_before: bool | None = None
    hypothesis_after: bool | None = None
    activities: list[dict[str, Any]] = field(default_factory=list)
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    abort_reason: str | None = None

    @property
    def verdict(self) -> str:
        """``passed`` (completed, not deviated), ``deviated``, the status otherwise, or
        ``unreadable``."""
        if self.error is not None:
            return "unreadable"
        if self.deviated:
            return "deviated"
        return "passed" if self.status == "completed" else (self.status or "unknown")

    def to_json(self) -> dict[str, Any]:
        return fields_of(self, verdict=self.verdict)


def _activity(run: Any) -> dict[str, Any]:
    act = run.get("activity", {}) if isinstance(run, dict) else {}
    return {
        "name": str(act.get("name", "?")),
        "type": str(act.get("type", "?")),
        "status": str(run.get("status", "?")) if isinstance(run, dict) else "?",
        "start": run.get("start") if isinstance(run, dict) else None,
        "duration": run.get("duration") if isinstance(run, dict) else None,
    }


def _met(states: Any, which: str) -> bool | None:
    if not isinstance(states, dict):
        return None
    s = states.get(which)
    if not isinstance(s, dict):
        return None
    v = s.get("steady_state_met")
    return bool(v) if v is not None else None


def summarise(data: Any, file: str) -> JournalSummary:
    """A :class:`JournalSummary` of parsed journal ``data`` (``error`` set when it is not one)."""
    if not isinstance(data, dict) or "experiment" not in data or "status" not in data:
        return JournalSummary(file, error="not a Chaos Toolkit journal (no experiment/status)")
    exp = data.get("experiment")
    title = str(exp.get("title", "")) if isinstance(exp, dict) else ""
    runs = data.get("run") or []
    rollbacks = data.get("rollbacks") or []
    duration = data.get("duration")
    return JournalSummary(
        file=file,
        title=title,
        status=str(data.get("status") or ""),
        deviated=bool(data.get("deviated", False)),
        start=data.get("start"),
        end=data.get("end"),
        duration=float(duration) if isinstance(duration, int | float) else None,
        hypothesis_before=_met(data.get("steady_states"), "before"),
        hypothesis_after=_met(data.get("steady_states"), "after"),
        activities=[_activity(r) for r in runs if isinstance(r, dict)],
        rollbacks=[_activity(r) for r in rollbacks if isinstance(r, dict)],
        abort_reason=str(data["abort_reason"]) if data.get("abort_reason") else None,
    )


def load_journal(path: str | Path) -> dict[str, Any]:
    """The parsed journal at ``path``; raises :class:`~buttress.errors.ButtressError` naming the
    file when it cannot be read or parsed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ButtressError(f"journal {p}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ButtressError(f"journal {p}: not UTF-8 text ({e.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ButtressError(f"journal {p}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ButtressError(f"journal {p}: the top level must be a JSON object")
    return data


def _sort_key(s: JournalSummary) -> str:
    if s.start:
        try:
            return datetime.fromisoformat(s.start).isoformat()
        except ValueError:
            return s.start
    return ""


def find_journals(
    directory: str | Path,
    *,
    limit: int = MAX_JOURNALS,
    cache: dict[str, tuple[int, int, JournalSummary]] | None = None,
) -> list[JournalSummary]:
    """Summaries of the ``*.json`` journals in ``directory`` (and its subdirectories), newest
    first; unreadable files are listed with their ``error``.

    ``cache`` (a dict you keep between calls) skips re-reading files whose modification time and
    size did not change."""
    d = Path(directory)
    if not d.is_dir():
        raise ButtressError(f"--journals {directory}: no such directory")
    stats = []
    for f in d.rglob("*.json"):
        try:
            st = f.stat()
        except OSError:  # removed while we looked
            continue
        stats.append((st.st_mtime_ns, st.st_size, f))
    stats.sort(key=lambda t: t[0], reverse=True)
    out = []
    for mtime, size, f in stats[:limit]:
        rel = str(f.relative_to(d))
        hit = cache.get(rel) if cache is not None else None
        if hit is not None and hit[:2] == (mtime, size):
            out.append(hit[2])
            continue
        try:
            s = summarise(load_journal(f), rel)
        except ButtressError as e:
            s = JournalSummary(rel, error=str(e))
        if cache is not None:
            cache[rel] = (mtime, size, s)
        out.append(s)
    out.sort(key=_sort_key, reverse=True)
    return out
