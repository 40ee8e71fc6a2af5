"""Deduplication against a reference model: any sequence of firing and resolved notifications
and people resolving incidents, over a few alert groups, gives the outcomes the rules in
``docs/incidents.md`` say -- and never two open incidents for one group."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from buttress.incident import IncidentStore, parse_generic
from buttress.incident.model import AlertRecord, Notification

GROUPS = st.sampled_from(["g1", "g2"])
ALERTS = st.frozensets(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from([100.0, 200.0])), min_size=1
)


@dataclass
class Group:
    open: int | None = None
    last: int | None = None
    seen: set[tuple[str, float]] = field(default_factory=set)
    source_resolved: bool = False


def firing(group: str, alerts: frozenset[tuple[str, float]]) -> Notification:
    records = tuple(AlertRecord(f, "firing", s, None, {}, {}) for f, s in sorted(alerts))
    return Notification("alertmanager", group, True, records, {}, group, "svc", "m", "page", 100.0)


class Dedup(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = IncidentStore(":memory:")
        self.groups: dict[str, Group] = {}
        self.next_id = 1

    def teardown(self) -> None:
        self.store.close()

    @rule(group=GROUPS, alerts=ALERTS)
    def fire(self, group: str, alerts: frozenset[tuple[str, float]]) -> None:
        g = self.groups.setdefault(group, Group())
        [got] = self.store.ingest([firing(group, alerts)], received=1000.0)
        if g.open is not None:
            expected = ("updated" if alerts - g.seen else "repeat", g.open)
            g.seen |= alerts
        elif g.last is not None and not g.source_resolved and alerts <= g.seen:
            expected = ("repeat", g.last)
        else:
            expected = ("opened", self.next_id)
            g.open = g.last = self.next_id
            g.seen, g.source_resolved = set(alerts), False
            self.next_id += 1
        assert (got.action, got.incident) == expected

    @rule(group=GROUPS)
    def clear(self, group: str) -> None:
        g = self.groups.setdefault(group, Group())
        [got] = self.store.ingest([parse_generic({"key": group, "status": "resolved"})])
        if g.open is not None:
            assert (got.action, got.incident) == ("resolved", g.open)
            g.open, g.source_resolved = None, True
        else:
            assert got.action == "ignored"

    @rule(group=GROUPS)
    def person_resolves(self, group: str) -> None:
        g = self.groups.get(group)
        if g is None or g.open is None:
            return
        self.store.transition(g.open, "resolved", actor="alice", at=2000.0)
        g.open = None

    @invariant()
    def one_open_incident_per_group(self) -> None:
        open_keys = [i.group_key for i in self.store.incidents(open_only=True)]
        assert len(open_keys) == len(set(open_keys))
        assert sorted(open_keys) == sorted(k for k, g in self.groups.items() if g.open)


TestDedup = Dedup.TestCase
TestDedup.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
