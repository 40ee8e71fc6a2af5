"""The backup target as a catalog: listing backups and pruning them by a retention policy.

A retention policy keeps the union of:

* the ``keep_last`` newest backups;
* the newest backup of each of the ``keep_daily`` most recent UTC days that have one;
* every backup that finished within ``keep_within`` seconds of now;
* always the newest backup that passed verification: pruning never leaves a database without a
  known-good backup, whatever the rules say.

Everything else of that database is deleted, as are interrupted backups (``.partial-*``
directories) older than an hour.  The decision (:func:`plan_prune`) is a pure function of the list
and the time, so it is tested without a file system.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from buttress.errors import ConfigError

from .manifest import MANIFEST, BackupInfo, load_backup

__all__ = ["PruneDecision", "Retention", "check_target", "list_backups", "plan_prune", "prune"]

PARTIAL_GRACE = 3600.0
"""Seconds after which an interrupted backup directory is deleted by :func:`prune`."""


def check_target(target: str | Path) -> Path:
    """The backup target as an existing, writable directory; one clear error otherwise."""
    p = Path(target)
    if not p.exists():
        raise ConfigError(
            "target", str(target), "does not exist; create the backup directory first"
        )
    if not p.is_dir():
        raise ConfigError("target", str(target), "is not a directory")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError("target", str(target), "is not writable")
    return p


def list_backups(target: str | Path, database: str | None = None) -> list[BackupInfo]:
    """Every complete backup under ``target`` (of ``database`` when given), oldest first.

    Directories without a manifest (interrupted backups) are not listed; a manifest that cannot
    be read raises :class:`~buttress.dr.manifest.CorruptManifest`.
    """
    p = Path(target)
    if not p.is_dir():
        raise ConfigError("target", str(target), "does not exist or is not a directory")
    out = []
    for child in p.iterdir():
        if child.name.startswith(".") or not (child / MANIFEST).is_file():
            continue
        info = load_backup(child)
        if database is None or info.manifest.database == database:
            out.append(info)
    out.sort(key=lambda b: (b.manifest.started_at, b.manifest.id))
    return out


@dataclass(frozen=True, slots=True)
class Retention:
    """How many backups to keep (see the module docstring).  All zero keeps only the newest
    verified backup."""

    keep_last: int = 7
    keep_daily: int = 7
    keep_within: float = 0.0

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_daily"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"--{name.replace('_', '-')}", v, "must be an integer >= 0")
        if not self.keep_within >= 0:
            raise ConfigError("--keep-within", self.keep_within, "must be >= 0 seconds")


@dataclass(frozen=True, slots=True)
class PruneDecision:
    """Which backups stay and which go, with the rule that kept each."""

    keep: dict[str, str]
    delete: tuple[str, ...]


def plan_prune(backups: Sequence[BackupInfo], policy: Retention, now: float) -> PruneDecision:
    """Apply ``policy`` to one database's ``backups`` (any order); pure."""
    ordered = sorted(backups, key=lambda b: b.manifest.started_at, reverse=True)
    keep: dict[str, str] = {}
    for b in ordered[: policy.keep_last]:
        keep.setdefault(b.manifest.id, "last")
    days: list[str] = []
    for b in ordered:
        day = time.strftime("%Y-%m-%d", time.gmtime(b.manifest.started_at))
        if day not in days:
            days.append(day)
            if len(days) <= policy.keep_daily:
                keep.setdefault(b.manifest.id, f"daily {day}")
    for b in ordered:
        if now - b.manifest.finished_at <= policy.keep_within:
            keep.setdefault(b.manifest.id, "within")
    good = next((b for b in ordered if b.status == "verified"), None)
    if good is not None:
        keep.setdefault(good.manifest.id, "newest verified")
    delete = tuple(b.manifest.id for b in ordered if b.manifest.id not in keep)
    return PruneDecision(keep=keep, delete=delete)


def prune(
    target: str | Path,
    policy: Retention,
    *,
    database: str | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> dict[str, PruneDecision]:
    """Apply ``policy`` to every database in ``target`` (or one); returns the decision per
    database.  With ``dry_run`` nothing is deleted."""
    when = time.time() if now is None else now
    by_db: dict[str, list[BackupInfo]] = {}
    for b in list_backups(target, database):
        by_db.setdefault(b.manifest.database, []).append(b)
    out = {}
    for db, backups in sorted(by_db.items()):
        decision = plan_prune(backups, policy, when)
        out[db] = decision
        if not dry_run:
            for bid in decision.delete:
                shutil.rmtree(Path(target) / bid)
    if not dry_run:
        for child in Path(target).glob(".partial-*"):
            try:
                if when - child.stat().st_mtime > PARTIAL_GRACE:
                    shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass
    return out
