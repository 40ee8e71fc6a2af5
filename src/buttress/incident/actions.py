"""Timeline sources for what the runtime did about a failure: supervisor and remediation actions.

* The remediation journal (:class:`buttress.remediation.engine.Journal`, JSON lines, by default
  ``.buttress/remediation.jsonl``): every action a rule took, dry runs and failures included, with
  the signal and subject that triggered it.
* The supervisor's status file (``buttress supervise run --state``, by default
  ``.buttress/supervise.json``): a snapshot of the tree, rewritten on every change.  It holds no
  history, so it contributes one entry at its ``updated`` time naming each child that is not
  running, has restarted, or is crash looping.
* Supervisor and remediation events published into the state feed are read by
  :func:`buttress.incident.timeline.feed_entries` and shown under these sources too.

Both files are read as plain JSON, so this package does not import the supervisor or the
remediation engine.  A line or file that does not parse is skipped: a journal being appended to
may end with a partial line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from buttress.errors import ButtressError

from .model import Entry

__all__ = ["remediation_entries", "supervisor_entries"]


def _existing(paths: Iterable[str | Path], what: str) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ButtressError(f"{what} {p}: no such file or directory")
        out.extend(sorted(p.glob("*.jsonl" if what.startswith("remediation") else "*.json"))
                   if p.is_dir() else [p])  # fmt: skip
    return out


def _journal_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("time"), int | float):
            yield entry


def remediation_entries(paths: Iterable[str | Path], start: float, end: float) -> list[Entry]:
    """Each remediation action journaled in ``[start, end]`` (a directory contributes its
    ``*.jsonl``): kind ``acted``, ``dry_run`` or ``failed``."""
    out: list[Entry] = []
    for path in _existing(paths, "remediation journal"):
        for e in _journal_lines(path):
            t = float(e["time"])
            if not start <= t <= end:
                continue
            outcome = str(e.get("outcome", "?"))
            kind = (
                "failed"
                if outcome.startswith("failed")
                else "dry_run"
                if e.get("dry_run")
                else "acted"
            )
            text = (
                f"remediation {e.get('rule', '?')}: {e.get('action', '?')} on "
                f"{e.get('signal', '?')} {e.get('subject', '?')}: {outcome}"
            )
            detail: dict[str, Any] = {
                k: e[k] for k in ("rule", "signal", "subject", "figures", "detail") if k in e
            }
            out.append(Entry(t, "remediation", kind, text, detail))
    return out


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for child in node.get("children") or []:
        if not isinstance(child, dict):
            continue
        name = f"{path}/{child.get('name', '?')}"
        yield name, child
        if child.get("kind") == "supervisor":
            yield from _children(child, name)


def _troubled(child: dict[str, Any]) -> str | None:
    """What the status says is wrong with ``child`` (``None``: running, never restarted)."""
    parts = []
    state = str(child.get("state", "?"))
    if state != "running" and child.get("kind") != "supervisor":
        parts.append(state)
    restarts = child.get("restarts") or 0
    if restarts:
        parts.append(f"{restarts} restart(s)")
    if child.get("crash_loop"):
        parts.append(f"CRASH LOOP ({child.get('failures', '?')} failures in a row)")
    if not parts:
        return None
    last = child.get("last_exit")
    return ", ".join(parts) + (f"; last exit: {last}" if last else "")


def supervisor_entries(paths: Iterable[str | Path], start: float, end: float) -> list[Entry]:
    """One ``status`` entry per troubled child of each supervisor status file updated in
    ``[start, end]`` (the file holds the tree's latest state only)."""
    out: list[Entry] = []
    for path in _existing(paths, "supervisor status"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            updated = float(data["updated"])
            tree = data["tree"]
            top = str(data.get("name", "supervisor"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not start <= updated <= end or not isinstance(tree, dict):
            continue
        for name, child in _children(tree, top):
            trouble = _troubled(child)
            if trouble is not None:
                out.append(
                    Entry(
                        updated,
                        "supervisor",
                        "status",
                        f"supervisor {name}: {trouble}",
                        {k: child.get(k) for k in ("state", "restarts", "failures", "crash_loop")},
                    )
                )
    return out
