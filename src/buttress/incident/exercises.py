"""Lab runs and disaster-recovery drills over a period, for ``buttress report``.

Read as plain JSON (this package imports neither the lab nor :mod:`buttress.dr`):

* a lab result is a ``result.json`` that ``buttress lab PATH`` writes into its report directory;
  its time is the earliest ``wall_start`` of its runs, its outcome the lab's ``verdict`` and the
  count of hypotheses that held, failed or were inconclusive; with ``--drill`` it carries a
  ``drill`` object (the achieved RTO and RPO against the journey's objectives);
* a drill report is the JSON of ``buttress dr drill --json`` (a file with ``disruption``,
  ``measured`` and ``disaster_at``); its time is the disaster's.

A directory is searched recursively (``result.json`` for labs, ``*.json`` for drills).  A file
that is not what its option expects is listed as skipped with the reason, never an error: report
directories hold other JSON too.

**The drill schedule.**  A spec whose ``experiments.drill`` says ``every: 90d`` (a quarterly
exercise) gets a verdict from :func:`schedule`: every drill held up to the report's end, lab
drills and ``buttress dr drill`` reports alike, failed or not (an exercise that found a problem
was still held), is a date; the schedule is ``met`` when no two drills in a row, and no drill and
the report's end, are more than ``every`` apart; ``overdue`` when the newest drill is older than
``every``; ``missed`` when it is not, but an earlier gap was longer; ``none`` without any drill.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from buttress.errors import ButtressError

__all__ = ["drill_every", "drill_results", "drill_times", "exercises", "lab_results", "schedule"]


def _files(roots: Iterable[str | Path], pattern: str, option: str) -> Iterator[Path]:
    for root in map(Path, roots):
        if root.is_dir():
            yield from sorted(root.rglob(pattern))
        elif root.is_file():
            yield root
        else:
            raise ButtressError(f"{option} {root}: no such file or directory")


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"not JSON ({e})") from None


def _lab_row(path: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        raise ValueError("not a lab result.json (no runs)")
    starts = [
        float(r["wall_start"])
        for r in data["runs"].values()
        if isinstance(r, dict) and isinstance(r.get("wall_start"), int | float)
    ]
    if not starts:
        raise ValueError("not a lab result.json (no run has a wall_start)")
    held = failed = inconclusive = 0
    for h in data.get("hypotheses") or []:
        passed = h.get("passed") if isinstance(h, dict) else None
        held += passed is True
        failed += passed is False
        inconclusive += passed is None
    drill = data.get("drill") if isinstance(data.get("drill"), dict) else None
    return {
        "file": str(path),
        "time": min(starts),
        "spec": data.get("file"),
        "runs": list(data["runs"]),
        "verdict": data.get("verdict"),
        "held": held,
        "failed": failed,
        "inconclusive": inconclusive,
        "drill": None
        if drill is None
        else {k: drill.get(k) for k in ("target", "rto", "rpo", "objectives")},
    }


def _drill_row(path: Path, data: Any) -> dict[str, Any]:
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("measured"), dict)
        or not isinstance(data.get("disaster_at"), int | float)
    ):
        raise ValueError("not a drill report (no measured figures or disaster_at)")
    measured = data["measured"]
    return {
        "file": str(path),
        "time": float(data["disaster_at"]),
        "database": data.get("database"),
        "disruption": data.get("disruption"),
        "rto": measured.get("rto"),
        "rpo": measured.get("rpo"),
        "rto_met": data.get("rto_met"),
        "rpo_met": data.get("rpo_met"),
        "passed": data.get("passed"),
        "failures": list(data.get("failures") or []),
    }


def _collect(
    roots: Iterable[str | Path], pattern: str, option: str, row: Any
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for path in _files(roots, pattern, option):
        try:
            rows.append(row(path, _load(path)))
        except ValueError as e:
            skipped.append({"file": str(path), "reason": str(e)})
    rows.sort(key=lambda r: r["time"])
    return rows, skipped


def lab_results(roots: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every lab ``result.json`` under ``roots`` (oldest first), and the files skipped."""
    return _collect(roots, "result.json", "--lab", _lab_row)


def drill_results(roots: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every drill report under ``roots`` (oldest first), and the files skipped."""
    return _collect(roots, "*.json", "--drills", _drill_row)


def exercises(
    labs: list[dict[str, Any]], drills: list[dict[str, Any]], since: float, until: float
) -> dict[str, Any]:
    """The lab runs and drills in ``[since, until)`` with their tallies."""
    lab = [r for r in labs if since <= r["time"] < until]
    dr = [r for r in drills if since <= r["time"] < until]
    return {
        "labs": lab,
        "drills": dr,
        "labs_passed": sum(r["verdict"] == "passed" for r in lab),
        "drills_passed": sum(r["passed"] is True for r in dr),
    }


def schedule(times: Iterable[float], every: float, until: float) -> dict[str, Any]:
    """The drill schedule's verdict at ``until`` (see the module docstring): ``status``, the
    ``last`` drill, when the next is ``due``, the drills ``held`` and the ``late`` gaps (``{"after",
    "next", "gap"}``: the drill after which the next came more than ``every`` later)."""
    held = sorted(t for t in times if t < until)
    late = [
        {"after": a, "next": b, "gap": b - a} for a, b in itertools.pairwise(held) if b - a > every
    ]
    last = held[-1] if held else None
    due = None if last is None else last + every
    if due is None:
        status = "none"
    elif until > due:
        status = "overdue"
    else:
        status = "missed" if late else "met"
    return {"every": every, "status": status, "last": last, "due": due, "held": len(held),
            "late": late}  # fmt: skip


def drill_times(labs: Iterable[dict[str, Any]], drills: Iterable[dict[str, Any]]) -> list[float]:
    """When each drill was held: lab results that carry a drill, and drill reports."""
    return [r["time"] for r in labs if r.get("drill")] + [r["time"] for r in drills]


def drill_every(spec: str | Path) -> float | None:
    """``experiments.drill.every`` of the spec at ``spec`` (seconds), or ``None``."""
    from buttress.spec import load_spec

    drill = getattr(getattr(load_spec(spec), "experiments", None), "drill", None)
    every = getattr(drill, "every", None)
    return None if every is None else float(every)
