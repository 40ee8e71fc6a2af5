"""The disaster-recovery drill of the real-system lab: ``buttress lab PATH --drill``.

One run with the policies (see :class:`~buttress.lab.system.spec.DrillSpec`): the load of
``load:``, the drill target's SQLite database backed up online every ``backup_every`` by
:func:`buttress.dr.sqlite.backup` (a background thread: :class:`Backups`), and one ``data_loss``
fault: at ``at`` the target is SIGKILLed and its database file deleted; ``detect`` later the
newest backup is restored (:func:`buttress.dr.sqlite.restore`) and the target started again.

**Achieved RPO**: from the disaster to the moment the restored backup was taken (its read
transaction began then: every order committed before is in it, none after), when acknowledged
orders were lost; 0 when none was (a design that keeps a copy elsewhere fills the backup's gap),
as ``buttress dr drill`` measures it.  The backup's age at the disaster is reported either way.
**Achieved RTO**: from the disaster to the first order acknowledged after it.  **Lost**: the
acknowledged orders the final read no longer finds (those committed between the backup and the
disaster, unless a copy elsewhere holds them), from the nothing-lost checker.  The objectives are
the journey's RTO/RPO for the ``instance`` disruption in ``architecture:`` (what ``buttress dr
drill --disruption delete`` judges), shown beside the assessment's estimates; the hypotheses are
that both are met.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from buttress.lab.errors import LabError
from buttress.records import fields_of

from .drillspec import DrillSpec
from .driver import Sample
from .load import LoadedLab
from .spec import FaultSpec, HypothesesSpec

__all__ = ["Backups", "drill_figures", "drill_hypotheses", "drill_lab", "drill_rows"]

FAULT = "data-loss"
DISRUPTION = "delete"
"""The ``buttress dr drill`` disruption a lost file is: judged as the assessment's ``instance``."""


def drill_lab(lab: LoadedLab) -> LoadedLab:
    """``lab`` turned into its drill: the drill's length, one ``data_loss`` fault, no other
    hypothesis but the audit log's (orders committed after the last backup are lost by design:
    the drill measures how many, it does not forbid it, unless ``drill.nothing_lost`` says the
    design fills the backup's gap from a copy elsewhere), and no supervision (``healing:``): the
    restore is the recovery the drill measures, and a supervisor restarting the target on its
    deleted file would race it."""
    exp = lab.experiments
    drill = exp.drill
    if drill is None:
        raise LabError(f"{lab.file}: no 'experiments.drill:' section, so there is no drill to run")
    fault = FaultSpec(
        name=FAULT, kind="data_loss", target=drill.target, at=drill.at, duration=drill.detect
    )
    load = exp.load.model_copy(
        update={"duration": drill.duration, "quick_duration": drill.duration}
    )
    hypotheses = HypothesesSpec(nothing_lost=drill.nothing_lost, audit_log=exp.hypotheses.audit_log)
    drilled = exp.model_copy(
        update={"plan": [fault], "load": load, "hypotheses": hypotheses, "healing": None}
    )
    return LoadedLab(lab.spec, drilled, lab.file, lab.app_dir)


class Backups:
    """Online backups of one SQLite file every ``every`` seconds, in a thread, until stopped.
    A round that fails (the file is gone during the disaster) is counted and skipped."""

    def __init__(self, database: Path, target: Path, every: float) -> None:
        self.database, self.target, self.every = database, target, every
        self.taken: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-backups", daemon=True)

    def start(self) -> Backups:
        self.target.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        from buttress.dr.sqlite import backup
        from buttress.errors import ButtressError

        while not self._stop.wait(self.every):
            try:
                info = backup(self.database, self.target)
            except (ButtressError, OSError):
                self.failed += 1
            else:
                self.taken.append(info.manifest.started_at)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def drill_figures(
    lab: LoadedLab,
    run: dict[str, Any],
    samples: list[Sample],
    *,
    wall0: float,
    restored: dict[str, Any] | None,
    backups: Backups,
) -> dict[str, Any]:
    """The drill's measurements and objectives (see the module docstring)."""
    drill = lab.experiments.drill
    assert drill is not None
    fault = next(
        f for f in run["faults"] if f["kind"] == "data_loss" and f["target"] == drill.target
    )
    disaster = fault["applied_at"]
    out: dict[str, Any] = {
        "target": drill.target,
        "disaster_at": disaster,
        "restored_at": fault["removed_at"],
        "backups_taken": len(backups.taken),
        "backups_failed": backups.failed,
        "restored_backup": None if restored is None else restored["backup"],
        "rpo": None,
        "backup_age": None,
        "rto": None,
        "lost": run["history"]["lost_count"],
        "objectives": _objectives(lab, drill),
    }
    if disaster is None:
        return out
    if restored is not None:
        out["backup_age"] = max(0.0, wall0 + disaster - float(restored["taken_at"]))
        out["rpo"] = 0.0 if out["lost"] == 0 else out["backup_age"]
    orders = {k for k, r in lab.experiments.load.requests.items() if r.order}
    after = [
        s.start + s.latency for s in samples if s.kind in orders and s.good and s.start >= disaster
    ]
    if after:
        out["rto"] = min(after) - disaster
    return out


def _objectives(lab: LoadedLab, drill: DrillSpec) -> dict[str, Any]:
    if getattr(lab.spec, "architecture", None) is None:
        return {"rto": None, "rpo": None, "estimated_rto": None, "estimated_rpo": None,
                "source": "no architecture: section"}  # fmt: skip
    from buttress.dr.report import load_objectives

    return fields_of(load_objectives(lab.file, drill.journey, DISRUPTION))


def drill_hypotheses(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Achieved RTO and RPO within their objectives (each only when the journey declares it)."""
    out = []
    for what in ("rto", "rpo"):
        target = figures["objectives"][what]
        if target is None:
            continue
        got = figures[what]
        out.append(
            {
                "hypothesis": f"drill of {figures['target']}: achieved {what.upper()} within "
                "the objective",
                "mode": "on",
                "expected": f"<= {_s(target)}",
                "observed": "not measured" if got is None else _s(got),
                "passed": got is not None and got <= target + 1e-9,
            }
        )
    return out


def drill_rows(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    """The drill's figures as rows: measured, objective, the assessment's estimate."""
    o = figures["objectives"]
    return [
        ("drill", "measured", "objective", "assessment's estimate"),
        ("RTO", _s(figures["rto"]), _s(o["rto"]), _s(o["estimated_rto"])),
        ("RPO", _s(figures["rpo"]), _s(o["rpo"]), _s(o["estimated_rpo"])),
        ("acknowledged orders lost", str(figures["lost"]), "-", "-"),
        ("restored backup's age", _s(figures.get("backup_age")), "-", "-"),
        ("backups taken / failed", f"{figures['backups_taken']} / {figures['backups_failed']}",
         "-", "-"),
    ]  # fmt: skip


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f} s"
