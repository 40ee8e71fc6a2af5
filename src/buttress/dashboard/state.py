"""What the dashboard shows, assembled from the store, the spec and the journals directory.

:class:`DashboardData` is synchronous and thread-safe; the web app calls it from worker threads.
Each ``*_payload`` method returns JSON-ready data (NaN and infinities as ``null``):

* :meth:`~DashboardData.slos_payload`: the SLO board (:func:`buttress.dashboard.slos.slo_board`)
  and SLIs in the store that no SLO describes;
* :meth:`~DashboardData.states_payload`: the latest state of every published component (stale ones
  flagged), the publishing sources with their heartbeat age, the newest events, the same events
  coalesced per component (:func:`coalesce_events`: a bulkhead flapping between ``ok``,
  ``saturated`` and ``rejecting`` is one row with a count and a time span, so a breaker opening
  is not buried) and, per circuit breaker, its state over the last ``timeline_minutes`` as a step
  series;
* :meth:`~DashboardData.journals_payload`: experiment runs (:mod:`buttress.dashboard.journals`);
* :meth:`~DashboardData.incidents_payload`: open incidents with their impact, and time-to-x
  figures (:mod:`buttress.dashboard.incidents`);
* :attr:`~DashboardData.assessment`: the assessment summary of the spec's ``architecture:``,
  computed once at start-up (it depends only on the spec).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buttress.errors import ButtressError

from .feed import FeedReader, StateEvent, StateRow, clean_value

if TYPE_CHECKING:
    from .incidents import IncidentsView

__all__ = [
    "BREAKER_LEVELS",
    "DashboardConfig",
    "DashboardData",
    "coalesce_events",
    "summarise_assessment",
]

BREAKER_LEVELS = {"closed": 0, "metrics_only": 0, "disabled": 0, "half_open": 1, "open": 2}
"""Breaker states as step-chart values: 0 closed, 1 half-open, 2 open (forced open counts as
open)."""


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """Where the data lives and how fresh it is kept.

    :param store: the SQLite store (SLI counts and the state feed); must exist.
    :param spec: a ``reliability.yaml`` (or OpenSLO / sloth file) with the SLOs, and optionally the
        ``architecture:`` section for the assessment summary.  ``None``: SLIs only.
    :param journals: a directory of Chaos Toolkit journals.  ``None``: no experiments section.
    :param lab: a lab report directory (``buttress lab PATH --out DIR``) or its ``result.json``:
        its runs side by side (off, typical, Buttress) and its hypotheses.  ``None``: no lab
        section.  Reread when the file changes (checked as often as the journals).
    :param incidents: the incident store (``buttress incident serve --store``): open incidents,
        their state, age and SLO impact, and the history's time to detect, acknowledge, mitigate
        and recover.  ``None``: no incidents section.  Reread as often as the journals.
    :param stale_after: seconds without a heartbeat after which a source's states are stale
        (default 5).
    :param poll: seconds between checks of the store for changes (default 0.2).
    :param slo_every: seconds between SLO re-evaluations while data changes (default 2).
    :param journals_every: seconds between rescans of the journals directory (default 3).
    :param timeline_minutes: minutes of breaker history shown (default 15).
    :param settle: seconds after a minute boundary during which the SLO board is fully
        re-evaluated on every refresh (default 15); later in the minute only the recent-traffic
        series and the ``so_far`` figures (the minute still filling counted) are refreshed,
        because the settled evaluation does not count the minute still filling.  Set it
        above the recorders' ``flush_every`` (default 5 s) so late counts of the last minute are
        seen.
    :param coalesce_gap: in "Recent state changes", consecutive changes of one component less
        than this many seconds apart are one row with a count and a time span (default 60).
    """

    store: Path
    spec: Path | None = None
    journals: Path | None = None
    lab: Path | None = None
    incidents: Path | None = None
    stale_after: float = 5.0
    poll: float = 0.2
    slo_every: float = 2.0
    journals_every: float = 3.0
    timeline_minutes: int = 15
    settle: float = 15.0
    coalesce_gap: float = 60.0


def summarise_assessment(report: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's view of :func:`buttress.assess.report.assess` output: per journey its
    target, availability, nines, downtime, single points of failure and top risks."""
    journeys = []
    for j in report.get("journeys", []):
        journeys.append(
            {
                "name": j["name"],
                "entry": j.get("entry"),
                "target": j.get("target"),
                "availability": j.get("availability"),
                "nines": j.get("nines"),
                "downtime_minutes_per_year": j.get("downtime_minutes_per_year"),
                "meets_target": j.get("meets_target"),
                "spofs": [", ".join(c.get("events", [])) for c in j.get("spofs", [])],
                "risks": [
                    {
                        "mode": r.get("mode"),
                        "event": r.get("event"),
                        "bad_minutes_per_year": r.get("bad_minutes_per_year"),
                        "rpn": r.get("rpn"),
                    }
                    for r in j.get("risks", [])[:5]
                ],
                "recommendations": [r.get("title") for r in j.get("recommendations", [])[:3]],
            }
        )
    return {
        "source": report.get("source"),
        "journeys": journeys,
        "single_points": list(report.get("single_points", [])),
        "components": len(report.get("components", [])),
    }


LEVEL_RANK = {"ok": 0, "warn": 1, "bad": 2}

EVENTS_READ = 5000
"""Events read per states payload (the newest of the timeline window)."""

GROUP_MEMBERS = 50
"""Changes listed inside one coalesced row (the newest); its count, span and per-state and
per-kind tallies always cover all of them."""


def coalesce_events(
    events: Sequence[StateEvent], *, gap: float = 60.0, members: int = GROUP_MEMBERS
) -> list[dict[str, Any]]:
    """Group ``events`` (oldest first) per component: a change at most ``gap`` seconds after
    the previous change of the same component (same source, type, scope and name) joins its row,
    whatever other components did in between.  Nothing is dropped: each row has the ``count`` of
    its changes, their span (``first`` .. ``last``, ``first_seq`` .. ``last_seq``), tallies
    ``states`` and ``kinds`` (in order of first appearance) with each state's ``levels``, the
    latest ``kind``, ``state`` and ``level``, the ``worst`` level among them and the newest
    ``members`` changes themselves (newest first).  Rows come newest first (by the time of their
    latest change)."""
    open_rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for e in events:
        key = (e.source, e.policy_type, e.scope, e.name)
        row = open_rows.get(key)
        if row is None or e.time - row["last"] > gap:
            row = {
                "source": e.source,
                "policy_type": e.policy_type,
                "scope": e.scope,
                "name": e.name,
                "count": 0,
                "first": e.time,
                "last": e.time,
                "first_seq": e.seq,
                "last_seq": e.seq,
                "worst": e.level,
                "states": {},
                "levels": {},
                "kinds": {},
                "members": [],
            }
            open_rows[key] = row
            rows.append(row)
        row["count"] += 1
        row["last"] = max(row["last"], e.time)
        row["last_seq"] = e.seq
        row["kind"], row["state"], row["level"] = e.kind, e.state, e.level
        if LEVEL_RANK.get(e.level, 2) > LEVEL_RANK.get(row["worst"], 2):
            row["worst"] = e.level
        row["states"][e.state] = row["states"].get(e.state, 0) + 1
        row["levels"][e.state] = e.level
        row["kinds"][e.kind] = row["kinds"].get(e.kind, 0) + 1
        row["members"].append(
            {"seq": e.seq, "time": e.time, "kind": e.kind, "state": e.state, "level": e.level}
        )
        if len(row["members"]) > members:
            del row["members"][0]
    for row in rows:
        row["members"].reverse()
    rows.sort(key=lambda r: (r["last"], r["last_seq"]), reverse=True)
    return rows


def _has_architecture(path: Path) -> bool:
    from buttress.spec.source import load_yaml

    doc = load_yaml(path)
    return isinstance(doc.data, dict) and "architecture" in doc.data


class DashboardData:
    """Reads everything the dashboard shows.  Raises :class:`~buttress.errors.ButtressError` (or
    :class:`~buttress.errors.SpecError` for a bad spec) at construction, never later."""

    def __init__(self, config: DashboardConfig) -> None:
        from buttress.slo.load import load_slos
        from buttress.slo.spec import SLOSpec
        from buttress.slo.store import SLIStore

        self.config = config
        store = Path(config.store)
        if not store.exists():
            raise ButtressError(
                f"--store {store}: no such store (start the service or lab that records into it, "
                "or give the right path)"
            )
        if store.is_dir():
            raise ButtressError(f"--store {store}: is a directory, expected the SQLite store file")
        if config.journals is not None and not Path(config.journals).is_dir():
            raise ButtressError(f"--journals {config.journals}: no such directory")
        if config.incidents is not None and Path(config.incidents).is_dir():
            raise ButtressError(
                f"--incidents {config.incidents}: is a directory, expected the incident store file"
            )
        self.slos: list[SLOSpec] = []
        self.assessment: dict[str, Any] | None = None
        self.assessment_error: str | None = None
        if config.spec is not None:
            self.slos = load_slos(config.spec)
            if _has_architecture(Path(config.spec)):
                self.assessment = self._assess(Path(config.spec))
        self.reader = FeedReader(store)
        try:
            self.store = SLIStore(store)
        except Exception as e:
            self.reader.close()
            raise ButtressError(f"--store {store}: cannot open as an SLI store ({e})") from None
        self._lock = threading.Lock()
        self._board: list[dict[str, Any]] | None = None
        self._board_minute = -1
        self._journals: dict[str, Any] = {}
        self._lab_cache: tuple[int, dict[str, Any]] | None = None
        self._incidents: IncidentsView | None = None
        if config.incidents is not None:
            from .incidents import IncidentsView

            self._incidents = IncidentsView(Path(config.incidents))

    def _assess(self, spec: Path) -> dict[str, Any] | None:
        from buttress.assess.model import load_architecture
        from buttress.assess.report import assess
        from buttress.assess.system import System

        arch, _ = load_architecture(spec)
        try:
            report = assess(System.from_spec(arch), source=str(spec))
        except ButtressError as e:  # the spec validated; an analysis limit is shown, not fatal
            self.assessment_error = str(e)
            return None
        return clean_value(summarise_assessment(report))  # type: ignore[no-any-return]

    # -- payloads ----------------------------------------------------------------------------------

    def slos_payload(self, at: float | None = None) -> dict[str, Any]:
        from .slos import recent_traffic, slo_board, so_far, unmeasured_slis

        now = time.time() if at is None else at
        minute = int(now // 60)
        with self._lock:
            if (
                at is not None
                or self._board is None
                or minute != self._board_minute
                or now - minute * 60 < self.config.settle
            ):
                board = slo_board(self.slos, self.store, now) if self.slos else []
                if at is None:
                    self._board, self._board_minute = board, minute
            else:  # the evaluated minutes cannot have changed: refresh the filling minute only
                by_name = {s.name: s for s in self.slos}
                fresh = so_far([by_name[e["name"]] for e in self._board], self.store, now)
                board = [
                    {**e, "recent": recent_traffic(self.store, e["name"], now), "so_far": f}
                    for e, f in zip(self._board, fresh, strict=True)
                ]
            other = unmeasured_slis(self.slos, self.store, now)
        return clean_value(  # type: ignore[no-any-return]
            {
                "at": now,
                "slos": board,
                "unmeasured": other,
                "has_spec": self.config.spec is not None,
            }
        )

    def states_payload(self, now: float | None = None, *, events: int = 200) -> dict[str, Any]:
        now = time.time() if now is None else now
        rows = self.reader.states()
        heartbeats = {r.name: r for r in rows if r.policy_type == "source"}
        stale_after = self.config.stale_after

        def stale(r: StateRow) -> bool:
            hb = heartbeats.get(r.source)
            if hb is None:
                return False  # written by something that keeps no heartbeat: trust its rows
            return hb.state != "up" or now - hb.updated > stale_after

        states = []
        for r in rows:
            if r.policy_type == "source":
                continue
            d = r.to_json()
            d["stale"] = stale(r)
            states.append(d)
        sources = [
            {
                "source": hb.name,
                "state": hb.state,
                "age": now - hb.updated,
                "alive": hb.state == "up" and now - hb.updated <= stale_after,
                "fields": hb.fields,
            }
            for hb in heartbeats.values()
        ]
        since = now - self.config.timeline_minutes * 60
        log = self.reader.events(since=since, limit=EVENTS_READ)
        # The grouped changes cover the timeline window, or as far back as the read reached.
        changes_since = log[0].time if len(log) >= EVENTS_READ else since
        timelines = self._breaker_timelines(rows, log, since, now)
        recent = [e.to_json() for e in log[-events:] if e.policy_type != "source"]
        recent.reverse()
        changes = coalesce_events(
            [e for e in log if e.policy_type != "source"], gap=self.config.coalesce_gap
        )
        return clean_value(  # type: ignore[no-any-return]
            {
                "at": now,
                "seq": self.reader.last_seq(),
                "states": states,
                "sources": sources,
                "events": recent,
                "changes": changes,
                "changes_since": changes_since,
                "timelines": timelines,
            }
        )

    def _breaker_timelines(
        self, rows: list[StateRow], log: list[Any], since: float, now: float
    ) -> list[dict[str, Any]]:
        out = []
        for r in rows:
            if r.policy_type != "circuit_breaker":
                continue
            evs = [
                e
                for e in log
                if e.policy_type == "circuit_breaker"
                and (e.source, e.scope, e.name) == (r.source, r.scope, r.name)
            ]
            # Before the first change in the window the breaker was in that change's "from"
            # state; a first record without one (the publisher's first sample) starts the line.
            # Without any change in the window, it has been in its current state all along.
            xs: list[float] = []
            ys: list[int] = []
            first = evs[0].fields.get("from_state") if evs else None
            if not evs or isinstance(first, str):
                xs.append(since)
                ys.append(BREAKER_LEVELS.get(first if isinstance(first, str) else r.state, 2))
            for e in evs:
                xs.append(max(e.time, since))
                ys.append(BREAKER_LEVELS.get(e.state, 2))
            xs.append(now)
            ys.append(BREAKER_LEVELS.get(r.state, 2))
            out.append(
                {
                    "key": f"{r.source}|{r.scope}|{r.name}",
                    "source": r.source,
                    "scope": r.scope,
                    "name": r.name,
                    "x": xs,
                    "y": ys,
                }
            )
        return out

    def journals_payload(self) -> dict[str, Any]:
        from .journals import find_journals

        if self.config.journals is None:
            return {"enabled": False, "runs": []}
        runs = [s.to_json() for s in find_journals(self.config.journals, cache=self._journals)]
        return clean_value({"enabled": True, "runs": runs})  # type: ignore[no-any-return]

    def journal(self, name: str) -> dict[str, Any]:
        """The full journal ``name`` (a path relative to the journals directory)."""
        from .journals import load_journal

        if self.config.journals is None:
            raise ButtressError("no journals directory configured")
        root = Path(self.config.journals).resolve()
        target = (root / name).resolve()
        if root not in target.parents or target.suffix != ".json" or not target.is_file():
            raise ButtressError(f"journal {name!r}: not found")
        return load_journal(target)

    def lab_payload(self) -> dict[str, Any]:
        """The lab's result (see :class:`DashboardConfig` ``lab``): columns, the side-by-side
        rows and the hypotheses, or why there is none yet."""
        if self.config.lab is None:
            return {"enabled": False}
        path = Path(self.config.lab)
        if path.is_dir():
            path = path / "result.json"
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return {"enabled": True, "file": str(path), "note": "no result yet (the lab writes "
                    "result.json when its last run ends)"}  # fmt: skip
        cached = self._lab_cache
        if cached is None or cached[0] != mtime:
            cached = self._lab_cache = (mtime, _read_lab_result(path))
        return cached[1]

    def incidents_payload(self, now: float | None = None) -> dict[str, Any]:
        """Open incidents and the history's time-to-x figures (see
        :mod:`buttress.dashboard.incidents`)."""
        if self._incidents is None:
            return {"enabled": False}
        payload = self._incidents.payload(
            time.time() if now is None else now,
            slos=self.slos,
            sli_store=self.store,
            sli_lock=self._lock,
        )
        return clean_value(payload)  # type: ignore[no-any-return]

    def assessment_payload(self) -> dict[str, Any]:
        return {
            "enabled": self.assessment is not None or self.assessment_error is not None,
            "summary": self.assessment,
            "error": self.assessment_error,
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything at once (``GET /api/snapshot`` and the first SSE message)."""
        return {
            "store": str(self.config.store),
            "spec": str(self.config.spec) if self.config.spec else None,
            "slos": self.slos_payload(),
            "states": self.states_payload(),
            "journals": self.journals_payload(),
            "lab": self.lab_payload(),
            "incidents": self.incidents_payload(),
            "assessment": self.assessment_payload(),
        }

    def close(self) -> None:
        if self._incidents is not None:
            self._incidents.close()
        self.reader.close()
        self.store.close()


def _read_lab_result(path: Path) -> dict[str, Any]:
    """The lab section's payload from ``result.json`` (a file that is not one says so)."""
    base: dict[str, Any] = {"enabled": True, "file": str(path)}
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        table = result["side_by_side"]
        hypotheses = [
            {k: h.get(k) for k in ("hypothesis", "expected", "observed", "passed")}
            for h in result["hypotheses"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return base | {"note": f"not a lab result.json with a side-by-side table ({e})"}
    return base | {
        "verdict": result.get("verdict"),
        "columns": table[0][1:],
        "rows": table[1:],
        "hypotheses": hypotheses,
        "notes": result.get("notes", []),
    }
