"""Backup freshness and verification as Prometheus gauges, read from the catalog on each scrape.

Events (:mod:`buttress.dr.events`) count what happened; an alert on "no good backup for a day"
needs a state, so a collector reads the backup target on every scrape and reports, per database:

* ``buttress_dr_last_good_backup_timestamp_seconds``: when the newest *verified* backup finished
  (Unix time); absent while a database has no verified backup;
* ``buttress_dr_last_good_backup_age_seconds``: now minus that (``+Inf`` with no verified backup,
  so ``> 86400`` fires for a database that was never verified too);
* ``buttress_dr_last_verify_success``: 1 when the newest verification of any of its backups
  passed, 0 when it failed; absent when nothing was verified;
* ``buttress_dr_backups{status}``: how many backups are ``verified``, ``failed`` or
  ``unverified``.

Reading the catalog costs a directory listing and one small JSON file per backup; scrape intervals
are seconds, backups are few.  An SLO on ``buttress_dr_last_good_backup_age_seconds`` is an ordinary
threshold SLI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from buttress.errors import MissingExtra

from .catalog import list_backups
from .manifest import BackupInfo

__all__ = ["BackupCatalogCollector", "catalog_gauges", "install"]


def catalog_gauges(
    backups: list[BackupInfo], now: float
) -> dict[str, dict[str, tuple[tuple[str, ...], float]]]:
    """Gauge name -> {series key -> (label values, value)}: the figures of the module docstring
    computed from a catalog listing; pure, so tested without a registry."""
    by_db: dict[str, list[BackupInfo]] = {}
    for b in backups:
        by_db.setdefault(b.manifest.database, []).append(b)
    out: dict[str, dict[str, tuple[tuple[str, ...], float]]] = {
        "buttress_dr_last_good_backup_timestamp_seconds": {},
        "buttress_dr_last_good_backup_age_seconds": {},
        "buttress_dr_last_verify_success": {},
        "buttress_dr_backups": {},
    }
    for db, items in sorted(by_db.items()):
        good = [b.manifest.finished_at for b in items if b.status == "verified"]
        if good:
            out["buttress_dr_last_good_backup_timestamp_seconds"][db] = ((db,), max(good))
        age = now - max(good) if good else math.inf
        out["buttress_dr_last_good_backup_age_seconds"][db] = ((db,), age)
        verified = [b for b in items if b.verified is not None]
        if verified:
            last = max(verified, key=lambda b: b.verified.at if b.verified else 0.0)
            ok = 1.0 if last.verified is not None and last.verified.ok else 0.0
            out["buttress_dr_last_verify_success"][db] = ((db,), ok)
        for status in ("verified", "failed", "unverified"):
            n = sum(1 for b in items if b.status == status)
            out["buttress_dr_backups"][f"{db}/{status}"] = ((db, status), float(n))
    return out


_HELP = {
    "buttress_dr_last_good_backup_timestamp_seconds": "When the newest verified backup finished.",
    "buttress_dr_last_good_backup_age_seconds": "Seconds since the newest verified backup.",
    "buttress_dr_last_verify_success": "1 if the newest verification passed, 0 if it failed.",
    "buttress_dr_backups": "Backups in the catalog by verification status.",
}


class BackupCatalogCollector:
    """A ``prometheus_client`` collector over one backup target (see the module docstring)."""

    def __init__(self, target: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        try:
            from prometheus_client.core import GaugeMetricFamily
        except ImportError:
            raise MissingExtra("DR metrics", "telemetry", "prometheus_client") from None
        self._family = GaugeMetricFamily
        self.target = Path(target)
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        try:
            backups = list_backups(self.target)
        except Exception:  # a scrape must not fail because the target is being written or gone
            backups = []
        for name, series in catalog_gauges(backups, self.clock()).items():
            labels = ["database", "status"] if name == "buttress_dr_backups" else ["database"]
            fam = self._family(name, _HELP[name], labels=labels)
            for values, value in series.values():
                fam.add_metric(list(values), value)
            yield fam


def install(target: str | Path, registry: Any | None = None) -> Callable[[], None]:
    """Register a :class:`BackupCatalogCollector` for ``target`` (default registry:
    ``prometheus_client.REGISTRY``); returns the function that unregisters it."""
    collector = BackupCatalogCollector(target)
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    registry.register(collector)
    return lambda: registry.unregister(collector)
