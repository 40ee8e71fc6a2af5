"""The risk register: one row per failure mode, in expected bad minutes per year, with FMEA scores.

For a journey and each basic event that can affect it (a unit, an active-passive group, a domain):

* ``frequency`` f: failures per year, ``8760 / (MTBF + MTTR)`` for a unit or domain; for an
  active-passive group, the stationary rate of entering a down state of its Markov chain;
* ``detect`` and ``recover``: hours to detect and then to restore (``detect + recover = MTTR``);
* ``share`` of users hit while it lasts: the Birnbaum importance ``P[x=1] - P[x=0]`` (1 for a
  single point of failure, the chance the rest of the redundancy is also gone otherwise).  While an
  active-active replica's failure is not yet detected, the load balancer still sends it ``1/n`` of
  requests, so during detection the share is at least ``1/n``;
* ``bad minutes`` = ``f * 60 * (detect * share_detect + recover * share)``, ranked, and as a share
  of the journey's yearly error budget ``(1 - target) * 525 600``.

FMEA scores (1-10 each, higher is worse) sit alongside, and their product is the risk priority
number (RPN):

* severity: ``ceil(10 * share * weight)`` with weight 0.4 / 0.6 / 0.8 / 1.0 for journeys of low /
  medium / high / critical criticality;
* occurrence: from the frequency per year, one step per half decade:
  <=0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, more;
* detection: from the time to detect: <=30s, 1m, 2m, 5m, 10m, 20m, 1h, 4h, 1d, more.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from .analysis import Analysis
from .analytic import HOURS_PER_YEAR, active_passive_chain, active_passive_stationary
from .budget import yearly_budget
from .faulttree import Event

__all__ = ["Risk", "risk_register"]

_OCCURRENCE = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
_DETECTION_MIN = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 240.0, 1440.0]
_WEIGHT = {"low": 0.4, "medium": 0.6, "high": 0.8, "critical": 1.0}


@dataclass(frozen=True, slots=True)
class Risk:
    """One failure mode of one journey."""

    journey: str
    event: str
    mode: str
    source: str
    frequency: float
    detect: float
    recover: float
    share: float
    share_detect: float
    bad_minutes: float
    budget_share: float
    severity: int
    occurrence: int
    detection: int

    @property
    def rpn(self) -> int:
        """FMEA risk priority number, severity x occurrence x detection (1..1000)."""
        return self.severity * self.occurrence * self.detection


def _score(value: float, thresholds: list[float]) -> int:
    return 1 + bisect.bisect_left(thresholds, value)


def _ap_frequency(analysis: Analysis, comp: str) -> tuple[float, float]:
    """(entries into a down state per hour, mean down time in hours) of an active-passive group."""
    g = analysis.system.components[comp].ap_params()
    states, q = active_passive_chain(g)
    _, pi = active_passive_stationary(g)
    rate = 0.0
    down_share = 0.0
    for i, s in enumerate(states):
        if s[0] != "up":
            down_share += pi[i]
            continue
        for j, t in enumerate(states):
            if t[0] != "up" and j != i:
                rate += pi[i] * q[i][j]
    return rate, (down_share / rate if rate > 0 else 0.0)


def risk_register(analysis: Analysis, journey: str, *, limit: int | None = None) -> list[Risk]:
    """Failure modes of ``journey``, most bad minutes first."""
    system = analysis.system
    j = system.journeys[journey]
    res = analysis.journeys[journey]
    budget = yearly_budget(j.target)
    weight = _WEIGHT[j.criticality]
    rows: list[Risk] = []
    for ev, imp in res.importance.items():
        info = analysis.compiled.info[ev]
        share = min(1.0, max(0.0, imp.birnbaum))
        share_detect = share
        if info.kind == "domain":
            assert info.domain is not None
            u = system.domains[info.domain].unit
            freq = HOURS_PER_YEAR / (u.mtbf + u.mttr) if u.lam > 0 else 0.0
            detect, recover = u.detect, u.mttr - u.detect
            source = info.domain
        elif info.kind == "unit":
            assert info.component is not None
            comp = system.components[info.component]
            u = comp.unit
            freq = HOURS_PER_YEAR / (u.mtbf + u.mttr) if u.lam > 0 else 0.0
            detect, recover = u.detect, u.mttr - u.detect
            if comp.replicas > 1 and comp.mode == "active-active":
                share_detect = max(share, 1.0 / comp.replicas)
            source = info.component
        else:
            assert info.component is not None
            comp = system.components[info.component]
            rate, duration = _ap_frequency(analysis, info.component)
            freq = rate * HOURS_PER_YEAR
            detect = min(comp.detection, duration)
            recover = max(0.0, duration - detect)
            source = info.component
        bad = freq * 60.0 * (detect * share_detect + recover * share)
        if bad <= 0 and share <= 0:
            continue
        rows.append(
            Risk(
                journey=journey,
                event=ev.name,
                mode=_mode(ev),
                source=source,
                frequency=freq,
                detect=detect,
                recover=recover,
                share=share,
                share_detect=share_detect,
                bad_minutes=bad,
                budget_share=bad / budget,
                severity=max(1, min(10, math.ceil(10 * max(share, share_detect) * weight))),
                occurrence=_score(freq, _OCCURRENCE),
                detection=_score(detect * 60.0, _DETECTION_MIN),
            )
        )
    rows.sort(key=lambda r: (-r.bad_minutes, -r.rpn, r.event))
    return rows[:limit] if limit is not None else rows


def _mode(ev: Event) -> str:
    text = ev.label or ev.name
    return text[:-6] + " down" if text.endswith(" fails") else text
