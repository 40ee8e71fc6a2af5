"""The incident store: deduplication by alert group, the lifecycle with who and when, and the
journal of refused payloads -- on a real SQLite file with fsync on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.incident import IncidentStore, TransitionRefused, parse_alertmanager, parse_generic
from buttress.incident.model import STATES, TRANSITIONS, BadPayload, parse_time
from buttress.incident.store import MIGRATIONS
from buttress.sqlite import NewerSchema
from buttress.testing import FakeClock

from .payloads import am_alert, am_payload

T0 = 1_767_323_045.123456  # 2026-01-02T03:04:05.123456Z


@pytest.fixture
def store(tmp_path: Path) -> IncidentStore:
    s = IncidentStore(tmp_path / "inc.db", clock=FakeClock(wall_start=T0 + 60))
    yield s
    s.close()


def test_fsync_is_full_and_schema_versioned(store: IncidentStore) -> None:
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    IncidentStore(path).close()
    with sqlite3.connect(path) as c:
        c.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(NewerSchema, match="newer than this version"):
        IncidentStore(path)


def test_nanosecond_times_and_go_zero_time() -> None:
    assert parse_time("2026-01-02T03:04:05.123456789Z", "t") == pytest.approx(T0)
    assert parse_time("2026-01-02T04:04:05.123456+01:00", "t") == pytest.approx(T0)
    assert parse_time("0001-01-01T00:00:00Z", "t") is None
    with pytest.raises(BadPayload, match="t: time without a zone"):
        parse_time("2026-01-02T03:04:05", "t")


def test_group_opens_once_repeats_dedupe_and_resolution_closes(store: IncidentStore) -> None:
    one = parse_alertmanager(am_payload([am_alert(service="shop")]))
    [opened] = store.ingest([one])
    assert opened.action == "opened"
    inc = store.get(opened.incident or 0)
    assert (inc.state, inc.service, inc.mode, inc.started) == (
        "detected", "shop", "HighErrorRate", pytest.approx(T0)
    )  # fmt: skip
    assert inc.detected == pytest.approx(T0 + 60)
    # Alertmanager's repeat: same alerts, same group -> no new incident
    assert [o.action for o in store.ingest([one, one])] == ["repeat", "repeat"]
    # a second alert joins the group
    two = parse_alertmanager(
        am_payload([am_alert(service="shop"), am_alert(fingerprint="f2", service="shop")])
    )
    assert store.ingest([two])[0].action == "updated"
    gone = parse_alertmanager(
        am_payload([am_alert(status="resolved", service="shop")], status="resolved")
    )
    assert store.ingest([gone])[0].action == "resolved"
    inc = store.get(inc.id)
    assert (inc.state, inc.resolved_by, inc.notifications) == ("resolved", "alertmanager", 5)
    assert [e.kind for e in store.log(inc.id)] == ["detected", "alerts", "resolved"]
    # the same group firing again after the source resolved it: a new incident
    assert store.ingest([one])[0] == type(opened)("opened", inc.id + 1)
    # a resolution with no open incident changes nothing
    store.transition(inc.id + 1, "resolved", actor="alice")
    assert store.ingest([gone])[0].action == "ignored"


def test_repeats_do_not_reopen_what_a_person_resolved(store: IncidentStore) -> None:
    n = parse_alertmanager(am_payload([am_alert()]))
    [o] = store.ingest([n])
    store.transition(o.incident or 0, "resolved", actor="bob", note="false alarm")
    assert store.ingest([n])[0].action == "repeat"
    new_firing = parse_alertmanager(am_payload([am_alert(starts="2026-01-02T05:00:00Z")]))
    assert store.ingest([new_firing])[0].action == "opened"


def test_lifecycle_records_who_and_when_and_refuses_out_of_order(store: IncidentStore) -> None:
    [o] = store.ingest([parse_generic({"key": "db", "status": "firing", "service": "shop"})])
    ident = o.incident or 0
    with pytest.raises(TransitionRefused, match=r"cannot resolve incident 99: no such incident"):
        store.transition(99, "resolved", actor="alice")
    store.transition(ident, "acknowledged", actor="alice", at=T0 + 120)
    with pytest.raises(TransitionRefused, match="it is already acknowledged"):
        store.transition(ident, "acknowledged", actor="bob")
    store.transition(ident, "mitigated", actor="bob", at=T0 + 300, note="failed over")
    with pytest.raises(TransitionRefused, match=r"cannot acknowledge incident \d+: it is already"):
        store.transition(ident, "acknowledged", actor="bob")
    inc = store.transition(ident, "resolved", actor="carol", at=T0 + 900)
    assert (inc.acknowledged, inc.acknowledged_by) == (T0 + 120, "alice")
    assert (inc.mitigated, inc.mitigated_by) == (T0 + 300, "bob")
    assert (inc.resolved, inc.resolved_by, inc.state) == (T0 + 900, "carol", "resolved")
    with pytest.raises(TransitionRefused, match="already resolved"):
        store.transition(ident, "mitigated", actor="bob")
    assert store.log(ident)[2].detail == {"note": "failed over"}


def test_step_before_detection_is_refused(store: IncidentStore) -> None:
    [o] = store.ingest([parse_generic({"key": "db", "status": "firing"})])
    with pytest.raises(TransitionRefused, match="before it was detected"):
        store.transition(o.incident or 0, "acknowledged", actor="a", at=T0 - 3600)
    assert store.get(o.incident or 0).state == "detected"  # rolled back


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["acknowledged", "mitigated", "resolved"]), max_size=6))
def test_any_sequence_of_steps_follows_the_table(steps: list[str]) -> None:
    with IncidentStore(":memory:", clock=FakeClock(wall_start=T0)) as store:
        [o] = store.ingest([parse_generic({"key": "k", "status": "firing"})])
        state = "detected"
        for target in steps:
            if target in TRANSITIONS[state]:
                state = store.transition(o.incident or 0, target, actor="x").state
            else:
                with pytest.raises(TransitionRefused):
                    store.transition(o.incident or 0, target, actor="x")
            assert store.get(o.incident or 0).state == state
            assert STATES.index(state) >= 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"version": "3", "groupKey": "g", "status": "firing", "alerts": []}, "version"),
        ({"version": "4", "status": "firing", "alerts": []}, "groupKey"),
        ({"version": "4", "groupKey": "g", "status": "on fire", "alerts": []}, "status"),
        ({"version": "4", "groupKey": "g", "status": "firing", "alerts": {}}, "alerts"),
        ({"version": "4", "groupKey": "g", "status": "firing", "alerts": [1]}, "alerts[0]"),
        (am_payload([am_alert(starts="yesterday")]), "alerts[0].startsAt"),
    ],
)
def test_malformed_alertmanager_payloads_name_the_field(body: object, field: str) -> None:
    with pytest.raises(BadPayload) as info:
        parse_alertmanager(body)
    assert info.value.field == field


def test_truncated_alerts_are_noted(store: IncidentStore) -> None:
    body = am_payload([am_alert()]) | {"truncatedAlerts": 40}
    [o] = store.ingest([parse_alertmanager(body)])
    assert store.log(o.incident or 0)[0].detail == {
        "alerts": 1,
        "title": "HighErrorRate",
        "truncated": 40,
    }
    with pytest.raises(BadPayload, match="truncatedAlerts: must be a non-negative integer"):
        parse_alertmanager(am_payload([am_alert()]) | {"truncatedAlerts": "many"})


def test_generic_payload_refuses_unknown_fields() -> None:
    with pytest.raises(BadPayload, match="colour: unknown field"):
        parse_generic({"key": "k", "status": "firing", "colour": "red"})


def test_deploys_and_action_items(store: IncidentStore) -> None:
    store.add_deploy("shop", "1.2.3", actor="ci", at=T0)
    store.add_deploy("shop", "1.2.4", at=T0 + 10)
    assert [d.version for d in store.deploys(since=T0 + 1)] == ["1.2.4"]
    [o] = store.ingest([parse_generic({"key": "k", "status": "firing"})])
    item = store.add_action_item(o.incident or 0, "add a replica", owner="dba", risk="db")
    assert [i.id for i in store.action_items(open_only=True)] == [item.id]
    store.close_action_item(item.id)
    assert store.action_items(open_only=True) == []
