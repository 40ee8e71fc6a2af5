"""Prometheus's alerts against the embedded evaluator's, on a run compressed 60 times.

`buttress lab PATH --prometheus` (:mod:`buttress.lab.system.prometheus`) runs a real Prometheus
beside the lab's services.  The SLOs' windows are minutes to days and the evaluator counts per
minute, but a run lasts 30 to 60 s; so the lab **compresses time by** :data:`FACTOR`: a second of
the run stands for a minute.

* **Prometheus** loads the rules :func:`buttress.slo.rules.rules_for` generates for each SLO with
  every window and ``for:`` divided by the factor (:func:`compressed`: 1h -> 60s, 5m -> 5s,
  30d -> 12h; the burn-rate thresholds do not change, they are ratios of the period to a window),
  its SLI read from the api's :class:`~buttress.telemetry.prometheus.SLICounter`
  (``buttress_sli_events_total{sli, outcome}``), scraped and evaluated every second.
* **The embedded evaluator** (:func:`buttress.slo.evaluator.evaluate`, unchanged, with the SLOs as
  written) reads the same counter's increments, scrape by scrape from Prometheus's TSDB, each
  second's count stored as one minute (:func:`embedded_firing`), and is asked at every step.

Both compute the same windows over the same events, so an alert must fire at the same step on both
sides, give or take one evaluation interval plus one scrape interval (:data:`TOLERANCE`): where a
window's edge falls between two scrapes, and whether the evaluation at a given second already sees
the scrape stamped just before it.  The evaluator's steps are aligned with the phase of the rule
group's evaluations (read from the TSDB), and every time is in seconds from the start of the load.

Beside them, the **users' view**: the evaluator on the load driver's own per-second counts
(requests by the second they were sent, timeouts and refused connections included).  It is shown,
not judged: it differs from the api's counts by what the api never sees and by when a request is
counted (sent, against answered).

An alert fired on one side only agrees when it fired within :data:`TOLERANCE` of the end of the
compared span (the other side may fire just after).  ``<Name>SLIAbsent`` alerts have no embedded
counterpart; they reach the receiver like the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from buttress.slo import SLIStore
from buttress.slo.evaluator import evaluate
from buttress.slo.rules import rules_for
from buttress.slo.sli import RatioSLI
from buttress.slo.spec import SLOSpec, WindowSLI
from buttress.telemetry.prometheus import sli_queries

from .driver import Sample

__all__ = [
    "EVALUATION_INTERVAL",
    "FACTOR",
    "SCRAPE_INTERVAL",
    "TOLERANCE",
    "alert_hypotheses",
    "compare",
    "compressed",
    "embedded_firing",
    "episodes",
    "lab_rules",
    "users_counts",
]

FACTOR = 60.0
"""Time compression: one second of the run stands for this many seconds of the SLOs' time."""
EVALUATION_INTERVAL = 1.0
"""Seconds between two evaluations of the rules (one minute, compressed)."""
SCRAPE_INTERVAL = 1.0
"""Seconds between two scrapes of every service's ``/metrics``."""
TOLERANCE = EVALUATION_INTERVAL + SCRAPE_INTERVAL
"""Prometheus and the embedded evaluator agree when their firing times are this close (s)."""
EPISODE_GAP = 2.5 * EVALUATION_INTERVAL
"""A firing series silent for longer than this (s) resolved; the next sample starts an episode."""
_BASE_MINUTE = 29_000_000
"""The minute the evaluator's store calls the start of the run (any minute far from 0)."""


def compressed(slo: SLOSpec, factor: float = FACTOR) -> SLOSpec:
    """``slo`` with its period, tier windows, ``for:`` and absent delay divided by ``factor``, and
    its SLI read from :class:`~buttress.telemetry.prometheus.SLICounter`'s counter (good and total
    events of the SLI named after the SLO).  Objective, tiers and thresholds are unchanged."""
    tiers = [
        t.model_copy(
            update={
                "long_window": t.long_window / factor,
                "short_window": t.short_window / factor,
                "alert_after": t.alert_after / factor if t.alert_after else None,
            }
        )
        for t in slo.alerting.tiers
    ]
    absent = slo.alerting.absent_for
    alerting = slo.alerting.model_copy(
        update={"tiers": tiers, "absent_for": absent / factor if absent else None}
    )
    window = slo.window.model_copy(update={"rolling": slo.period / factor, "calendar": None})
    good, total = sli_queries(slo.name)
    sli = RatioSLI(kind="ratio", good=good, total=total)
    if isinstance(slo.sli, WindowSLI):  # the same slices, compressed, over the counter
        sli_w: Any = slo.sli.model_copy(update={"slice": slo.sli.slice / factor, "of": sli})
        return slo.model_copy(update={"sli": sli_w, "alerting": alerting, "window": window})
    return slo.model_copy(update={"sli": sli, "alerting": alerting, "window": window})


def lab_rules(slos: Sequence[SLOSpec], service: str, factor: float = FACTOR) -> dict[str, Any]:
    """The rule file the lab's Prometheus loads: :func:`~buttress.slo.rules.rules_for` of each
    :func:`compressed` SLO, evaluated every :data:`EVALUATION_INTERVAL`, every alert annotated
    with the compression."""
    note = (
        f"time compressed {factor:g}x for buttress lab --prometheus: a second of the run stands "
        f"for {factor:g} s; every window and for: is divided by {factor:g}"
    )
    groups = []
    for slo in slos:
        group = rules_for(
            compressed(slo.with_service(slo.service or service), factor),
            evaluation_interval=EVALUATION_INTERVAL,
        )
        for rule in group["rules"]:
            if "alert" in rule:
                rule["annotations"]["time_compression"] = note
        groups.append({"name": group["name"], "interval": "1s", "rules": group["rules"]})
    return {"groups": groups}


# -- the embedded side -------------------------------------------------------------------------


def embedded_firing(
    slos: Sequence[SLOSpec], counts: dict[str, tuple[list[int], list[int]]], steps: int
) -> dict[tuple[str, str], list[int]]:
    """``{(slo, tier): steps it fired at}``: :func:`~buttress.slo.evaluator.evaluate` asked at
    steps ``1 .. steps``, ``counts[slo] = (good, total)`` per step (count ``i`` stored as minute
    ``i``, so step ``k`` sees the counts ``[k - W, k)`` of a window of ``W`` minutes)."""
    out: dict[tuple[str, str], list[int]] = {}
    with SLIStore(":memory:") as store:
        for name, (good, total) in counts.items():
            store.add_series(name, _BASE_MINUTE, good, total)
        for k in range(1, steps + 1):
            for status in evaluate(slos, store, at=(_BASE_MINUTE + k) * 60):
                for tier in status.firing:
                    out.setdefault((status.name, tier), []).append(k)
    return out


def users_counts(
    slos: Sequence[SLOSpec], samples: Iterable[Sample], kinds: dict[str, str | None], n: int
) -> dict[str, tuple[list[int], list[int]]]:
    """Per SLO, the load driver's good and total requests per second of the run (by the second a
    request was sent; good: answered well within the SLO's latency threshold, if it has one).
    ``kinds`` maps an SLO's name to its request kind."""
    out = {s.name: ([0] * n, [0] * n) for s in slos if kinds.get(s.name)}
    limits = {s.name: getattr(s.sli, "threshold", None) for s in slos}
    for sample in samples:
        i = min(n - 1, max(0, int(sample.start)))
        for name, (good, total) in out.items():
            if kinds[name] != sample.kind:
                continue
            thr = limits[name]
            total[i] += 1
            good[i] += sample.good and (thr is None or sample.latency <= thr)
    return out


def episodes(times: Sequence[float], gap: float) -> list[tuple[float, float]]:
    """``(first, last)`` of each run of ``times`` (sorted) no further apart than ``gap``."""
    out: list[tuple[float, float]] = []
    for t in times:
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


# -- the comparison ----------------------------------------------------------------------------


def _first(eps: list[tuple[float, float]]) -> float | None:
    return round(eps[0][0], 2) if eps else None


def _resolved(eps: list[tuple[float, float]], end: float) -> float | None:
    """When the first episode ended (the first evaluation it no longer fired at); ``None`` when
    it still fired at the end of the compared span, or never fired."""
    if not eps or eps[0][1] + EVALUATION_INTERVAL > end:
        return None
    return round(eps[0][1] + EVALUATION_INTERVAL, 2)


def _agree(prom: float | None, emb: float | None, end: float) -> bool:
    if prom is None and emb is None:
        return True
    if prom is None or emb is None:  # fired too late for the other side to be seen firing
        only = prom if prom is not None else emb
        return only is not None and only >= end - TOLERANCE
    return abs(prom - emb) <= TOLERANCE


def compare(
    slos: Sequence[SLOSpec],
    *,
    prometheus: dict[tuple[str, str], list[float]],
    embedded: dict[tuple[str, str], list[int]],
    users: dict[tuple[str, str], list[int]],
    phase: dict[str, float],
    end: float,
) -> list[dict[str, Any]]:
    """One row per alert (SLO and tier) that fired on any side: Prometheus's firing times
    (``prometheus``: its evaluations' times, s from the start), the embedded evaluator's
    (``embedded``: steps, at ``phase[slo] + step`` s) and the users' view (steps = seconds);
    ``end`` is the last second compared."""
    rows = []
    for slo in slos:
        p = phase.get(slo.name, 0.0)
        for tier in slo.tiers():
            key = (slo.name, tier.name)
            prom = episodes(sorted(prometheus.get(key, [])), EPISODE_GAP)
            emb = episodes([p + k for k in embedded.get(key, [])], 1.0)
            usr = episodes([float(k) for k in users.get(key, [])], 1.0)
            if not (prom or emb or usr):
                continue
            first_p, first_e = _first(prom), _first(emb)
            diff = None if first_p is None or first_e is None else round(first_p - first_e, 2)
            rows.append(
                {
                    "slo": slo.name,
                    "alert": slo.alert_name,
                    "tier": tier.name,
                    "severity": tier.severity,
                    "prometheus": first_p,
                    "prometheus_resolved": _resolved(prom, end),
                    "prometheus_episodes": len(prom),
                    "embedded": first_e,
                    "embedded_resolved": _resolved(emb, end),
                    "embedded_episodes": len(emb),
                    "difference": diff,
                    "users_view": _first(usr),
                    "agree": _agree(first_p, first_e, end),
                }
            )
    return rows


def alert_hypotheses(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run with Prometheus: every alert fired by both within :data:`TOLERANCE` s."""
    out = []
    for mode, run in runs.items():
        prom = run.get("prometheus")
        if not prom:
            continue
        rows = prom["alerts"]
        wrong = [r for r in rows if not r["agree"]]
        diffs = [abs(r["difference"]) for r in rows if r["difference"] is not None]
        if wrong:
            observed = "; ".join(
                f"{r['alert']} {r['tier']}: Prometheus {_at(r['prometheus'])}, "
                f"embedded {_at(r['embedded'])}"
                for r in wrong
            )
        elif rows:
            observed = (
                f"{len(rows)} alert(s) fired; largest difference {max(diffs, default=0.0):.2f} s"
            )
        else:
            observed = "no alert fired on either side"
        label = "the typical protections" if mode == "typical" else f"policies {mode}"
        out.append(
            {
                "hypothesis": f"Prometheus and the embedded evaluator fire every SLO alert within "
                f"{TOLERANCE:g} s of each other (one evaluation plus one scrape interval, time "
                f"compressed {prom['factor']:g}x) with {label}",
                "mode": mode,
                "expected": f"|difference| <= {TOLERANCE:g} s",
                "observed": observed,
                "passed": not wrong,
            }
        )
    return out


def _at(t: float | None) -> str:
    return "never" if t is None else f"{t:.1f} s"


def steps_of(phase: float, end: float) -> int:
    """How many embedded steps fit before ``end`` (s from the start) at ``phase``."""
    return max(0, math.floor(end - phase))


# -- for the report ----------------------------------------------------------------------------

ALERT_HEADERS = (
    "run",
    "SLO alert (tier)",
    "Prometheus fired",
    "embedded fired",
    "difference",
    "resolved (Prometheus / embedded)",
    "episodes",
    "users' view",
    "agree",
)
DETECTION_HEADERS = (
    "run",
    "fault",
    "applied at",
    "first incident",
    "detected at",
    "time to detect",
)


def _s(t: float | None) -> str:
    return "-" if t is None else f"{t:.1f} s"


def _end(fired: float | None, resolved: float | None) -> str:
    return "-" if fired is None else ("firing" if resolved is None else f"{resolved:.1f} s")


def alert_tables(runs: dict[str, dict[str, Any]], names: dict[str, str]) -> dict[str, Any] | None:
    """The report's rows (``names``: each mode's name): one per alert and run, one per fault and
    run (the time to detect), one per incident; ``None`` without Prometheus."""
    with_prom = {m: r["prometheus"] for m, r in runs.items() if r.get("prometheus")}
    if not with_prom:
        return None
    alerts, detection, incidents = [], [], []
    for mode, prom in with_prom.items():
        name = names.get(mode, mode)
        for a in prom["alerts"]:
            alerts.append(
                (
                    name,
                    f"{a['alert']} ({a['tier']})",
                    _s(a["prometheus"]),
                    _s(a["embedded"]),
                    "-" if a["difference"] is None else f"{a['difference']:+.2f} s",
                    f"{_end(a['prometheus'], a['prometheus_resolved'])} / "
                    f"{_end(a['embedded'], a['embedded_resolved'])}",
                    f"{a['prometheus_episodes']} / {a['embedded_episodes']}",
                    _s(a["users_view"]),
                    "yes" if a["agree"] else "NO",
                )
            )
        for d in prom["detection"]:
            detection.append(
                (
                    name,
                    d["fault"],
                    _s(d["applied_at"]),
                    _incident_text(d),
                    _s(d["detected"]),
                    _s(d["time_to_detect"]),
                )
            )
        for i in prom["incidents"]:
            incidents.append(
                (
                    name,
                    f"#{i['id']}",
                    f"{i['title']} ({i['tier']})",
                    i["severity"],
                    _s(i["started"]),
                    _s(i["detected"]),
                    _s(i["resolved"]),
                    i["state"],
                )
            )
    first = next(iter(with_prom.values()))
    return {
        "alerts": alerts,
        "levels": ["ok" if r[-1] == "yes" else "bad" for r in alerts],
        "detection": detection,
        "incidents": incidents,
        "factor": first["factor"],
        "tolerance": first["tolerance"],
    }


def _incident_text(d: dict[str, Any]) -> str:
    if d["incident"] is not None:
        return f"#{d['incident']} {d['alert']}"
    if d.get("open"):
        return f"none new: {', '.join(f'#{i}' for i in d['open'])} already open"
    return "none"


def alert_lines(runs: dict[str, dict[str, Any]], names: dict[str, str]) -> list[str]:
    """The alert and detection tables as text (none without Prometheus)."""
    from buttress.tables import render_table

    tables = alert_tables(runs, names)
    if tables is None:
        return []
    lines = [
        f"Alerts: Prometheus against the embedded evaluator (time compressed {tables['factor']:g}x:"
        f" a second stands for a minute; seconds from the start of the load)"
    ]
    lines += [render_table(ALERT_HEADERS, tables["alerts"]) if tables["alerts"] else "  none", ""]
    if tables["detection"]:
        lines += [render_table(DETECTION_HEADERS, tables["detection"]), ""]
    return lines
