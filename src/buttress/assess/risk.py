"""The risk register: one row per failure mode, in expected bad minutes per year, with FMEA scores.

For a journey and each basic event that can affect it (a unit, an active-passive group, a domain),
an occurrence has two phases, and each phase has its own share of the journey's users hit:

* ``frequency`` f: occurrences per year, ``8760 / (MTBF + MTTR)`` for a unit or domain; for an
  active-passive group, the stationary rate of entering a down state of its Markov chain;
* ``detect`` (hours): until the failure is noticed (``defaults.detect``, a unit's ``detect``, an
  active-passive group's failover ``detection``), then ``recover``: until it is restored
  (``detect + recover = MTTR``, or the group's mean down time);
* ``hit_recover``, the share hit once the failure is known and routed around: the Birnbaum
  importance ``P[down | x failed] - P[down | x up]`` (1 for a single point of failure, the chance
  that the rest of the redundancy is also gone otherwise);
* ``hit_detect``, the share hit before that: at least the share of requests still *routed* to what
  failed.  A load balancer keeps sending an undetected dead replica its ``1/n`` of traffic, so for
  the failed replicas of every active-active component ``c`` on the journey's hard path (one unit,
  or ``k_c`` replicas placed in a failed zone or region)
  ``routed = 1 - prod_c (1 - k_c / n_c)`` and ``hit_detect = max(hit_recover, routed)``;
* ``hit`` (effective share): the time-weighted mean of the two,
  ``(detect * hit_detect + recover * hit_recover) / (detect + recover)``;
* ``bad minutes`` per year ``= f * 60 * (detect + recover) * hit``
  ``= f * 60 * (detect * hit_detect + recover * hit_recover)``, ranked, and as a share of the
  journey's yearly error budget ``(1 - target) * 525 600``.

So every column of a row multiplies out to its bad minutes: ``per yr x outage minutes x hit``.

FMEA scores (1-10 each, higher is worse) sit alongside, and their product is the risk priority
number (RPN):

* severity: ``ceil(10 * max(hit_detect, hit_recover) * weight)`` (the worst moment of the failure)
  with weight 0.4 / 0.6 / 0.8 / 1.0 for journeys of low / medium / high / critical criticality;
* occurrence: from the frequency per year, one step per half decade:
  <=0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, more;
* detection: from the time to detect: <=30s, 1m, 2m, 5m, 10m, 20m, 1h, 4h, 1d, more.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from .analysis import Analysis
from .analytic import HOURS_PER_YEAR
from .budget import yearly_budget
from .compiler import CHAIN_KINDS
from .faulttree import Event

__all__ = ["Risk", "risk_register", "routed_share", "routed_shares"]

_OCCURRENCE = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
_DETECTION_MIN = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 60.0, 240.0, 1440.0]
_WEIGHT = {"low": 0.4, "medium": 0.6, "high": 0.8, "critical": 1.0}


@dataclass(frozen=True, slots=True)
class Risk:
    """One failure mode of one journey (times in hours, shares of the journey's users in [0, 1]).

    ``bad_minutes == frequency * outage_minutes * hit
    == frequency * 60 * (detect * hit_detect + recover * hit_recover)``.
    """

    journey: str
    event: str
    mode: str
    source: str
    frequency: float
    detect: float
    recover: float
    hit_detect: float
    hit_recover: float
    bad_minutes: float
    budget_share: float
    severity: int
    occurrence: int
    detection: int

    @property
    def outage_minutes(self) -> float:
        """Minutes one occurrence lasts, detection and recovery together."""
        return (self.detect + self.recover) * 60.0

    @property
    def hit(self) -> float:
        """Effective share of users hit over the whole occurrence (time-weighted mean of the
        detection-phase and recovery-phase shares)."""
        total = self.detect + self.recover
        if total <= 0:
            return self.hit_recover
        return (self.detect * self.hit_detect + self.recover * self.hit_recover) / total

    @property
    def rpn(self) -> int:
        """FMEA risk priority number, severity x occurrence x detection (1..1000)."""
        return self.severity * self.occurrence * self.detection


def _score(value: float, thresholds: list[float]) -> int:
    return 1 + bisect.bisect_left(thresholds, value)


def _ap_frequency(analysis: Analysis, comp: str) -> tuple[float, float]:
    """(entries into a down state per hour, mean down time in hours) of a Markov group."""
    chain = analysis.system.components[comp].chain()
    return chain.outage_rate(), chain.mean_outage()


def routed_shares(analysis: Analysis, journey: str) -> dict[Event, float]:
    """Share of ``journey``'s requests routed to what each event takes down, before anyone notices.

    ``1 - prod_c (1 - k_c / n_c)`` over the components ``c`` on the journey's hard path that the
    event hits, ``k_c`` of their ``n_c`` replicas failed by it (the unit itself, or the replicas
    placed in a failed domain or beneath it); 1 when a component on the path shares the fate of
    that domain.  Active-passive groups count 0: their failover downtime is already the group's
    own outage (the ``ap`` event).  Events the path does not route to are left out (share 0).
    Costs O(components on the path x replicas x domain depth).
    """
    system = analysis.system
    events = analysis.compiled.events
    survive: dict[str, float] = {}
    fate: set[str] = set()
    out: dict[Event, float] = {}
    for name in system.hard_closure(system.journeys[journey].entry):
        comp = system.components[name]
        for s in comp.shared:
            fate.update(system.chain(s))
        if comp.active_passive:
            continue
        n = comp.replicas
        failed: dict[str, int] = {}
        for i in range(n):
            unit = events.get(f"unit:{name}[{i}]")
            if unit is not None:
                out[unit] = 1.0 / n
            for d in system.chain(comp.zone_of(i)):
                failed[d] = failed.get(d, 0) + 1
        for d, k in failed.items():
            survive[d] = survive.get(d, 1.0) * (1.0 - k / n)
    for d in fate | set(survive):
        ev = events.get(f"domain:{d}")
        if ev is not None:
            out[ev] = 1.0 if d in fate else 1.0 - survive[d]
    return out


def routed_share(analysis: Analysis, journey: str, event: Event) -> float:
    """One event's entry of :func:`routed_shares` (0 for an event the path does not route to)."""
    return routed_shares(analysis, journey).get(event, 0.0)


def risk_register(analysis: Analysis, journey: str, *, limit: int | None = None) -> list[Risk]:
    """Failure modes of ``journey``, most bad minutes first (see the module docstring for every
    column's formula)."""
    system = analysis.system
    j = system.journeys[journey]
    res = analysis.journeys[journey]
    budget = yearly_budget(j.target)
    weight = _WEIGHT[j.criticality]
    routed = routed_shares(analysis, journey)
    rows: list[Risk] = []
    for ev, imp in res.importance.items():
        info = analysis.compiled.info[ev]
        hit_recover = min(1.0, max(0.0, imp.birnbaum))
        if info.kind in CHAIN_KINDS:
            assert info.component is not None
            comp = system.components[info.component]
            rate, duration = _ap_frequency(analysis, info.component)
            freq = rate * HOURS_PER_YEAR
            detect = min(comp.detection if info.kind == "ap" else comp.unit.detect, duration)
            recover = max(0.0, duration - detect)
            source = info.component
        else:
            u = info.unit(system)
            owner = info.domain if info.kind == "domain" else info.component
            assert u is not None and owner is not None
            source = owner
            freq = HOURS_PER_YEAR / (u.mtbf + u.mttr) if u.lam > 0 else 0.0
            detect, recover = u.detect, u.mttr - u.detect
        hit_detect = max(hit_recover, routed.get(ev, 0.0))
        bad = freq * 60.0 * (detect * hit_detect + recover * hit_recover)
        if freq <= 0 or (bad <= 0 and hit_recover <= 0):
            continue  # a failure that never happens (availability 1) is no risk
        rows.append(
            Risk(
                journey=journey,
                event=ev.name,
                mode=_mode(ev),
                source=source,
                frequency=freq,
                detect=detect,
                recover=recover,
                hit_detect=hit_detect,
                hit_recover=hit_recover,
                bad_minutes=bad,
                budget_share=bad / budget,
                severity=max(1, min(10, math.ceil(10 * hit_detect * weight))),
                occurrence=_score(freq, _OCCURRENCE),
                detection=_score(detect * 60.0, _DETECTION_MIN),
            )
        )
    rows.sort(key=lambda r: (-r.bad_minutes, -r.rpn, r.event))
    return rows[:limit] if limit is not None else rows


def _mode(ev: Event) -> str:
    text = ev.label or ev.name
    return text[:-6] + " down" if text.endswith(" fails") else text
