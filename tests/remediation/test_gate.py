"""Cooldowns, limits and holds under streams of signals (hypothesis, fake clock)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.remediation import Remediator, Rule, RuleOptions, Signal
from buttress.remediation.core import RuleGate
from buttress.testing import FakeClock

gaps = st.lists(st.floats(0.0, 30.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(gaps=gaps, cooldown=st.floats(0.0, 20.0), limit=st.integers(1, 5), per=st.floats(0.5, 100.0))
def test_the_gate_keeps_cooldown_and_limit_and_refuses_only_with_a_reason(
    gaps: list[float], cooldown: float, limit: int, per: float
) -> None:
    gate = RuleGate(RuleOptions(cooldown=cooldown, limit=limit, per=per))
    now, acted = 0.0, []
    for gap in gaps:
        now += gap
        refusal = gate.refusal(now)
        recent = [t for t in acted if t > now - per]
        if refusal is None:
            gate.acted(now)
            acted.append(now)
        elif refusal == "cooldown":
            assert now - acted[-1] < cooldown
        else:
            assert "limit" == refusal and len(recent) >= limit
    # safety: never two actions closer than the cooldown, never more than `limit` per window
    assert all(b - a >= cooldown for a, b in itertools.pairwise(acted))
    for i, t in enumerate(acted):
        assert len([u for u in acted[: i + 1] if u > t - per]) <= limit


@settings(max_examples=200, deadline=None)
@given(
    stream=st.lists(
        st.tuples(st.floats(0.0, 20.0), st.booleans(), st.sampled_from(["a", "b"])), max_size=80
    ),
    cooldown=st.floats(0.0, 30.0),
    hold=st.floats(0.0, 10.0),
    repeat=st.booleans(),
)
def test_a_remediator_under_a_stream_of_signals(
    stream: list[tuple[float, bool, str]], cooldown: float, hold: float, repeat: bool
) -> None:
    clock = FakeClock()
    calls: list[tuple[float, str]] = []

    def act(sig: Signal) -> str:
        calls.append((clock.monotonic(), sig.subject))
        return "ok"

    options = RuleOptions(cooldown=cooldown, limit=1000, per=3600.0, hold=hold, repeat=repeat)
    rem = Remediator([Rule("r", "burn", act, "act", options=options)], clock=clock)
    active_since: dict[str, float | None] = {"a": None, "b": None}
    for gap, active, subject in stream:
        clock.advance(gap)
        now = clock.monotonic()
        if active and active_since[subject] is None:
            active_since[subject] = now
        if not active:
            active_since[subject] = None
        before = len(calls)
        rem.signal(Signal("burn", subject, active))
        for t, s in calls[before:]:
            since = active_since[s]
            assert since is not None and t - since >= hold  # it held long enough
    times = [t for t, _ in calls]
    assert all(b - a >= cooldown for a, b in itertools.pairwise(times))
    assert len(rem.journal.entries) == len(calls)
    assert all("done" == e.outcome for e in rem.journal.entries)


def test_a_failing_action_escalates_instead_of_retrying() -> None:
    clock = FakeClock()
    escalations = []

    def broken(sig: Signal) -> str:
        raise OSError("hook unreachable")

    rule = Rule(
        "page", "gave_up", broken, "POST hook", options=RuleOptions(cooldown=0.0, repeat=True)
    )
    rem = Remediator([rule], clock=clock, on_escalate=lambda r, e: escalations.append(e))
    (entry,) = rem.signal(Signal("gave_up", "workers", figures={"restarts": 4}))
    assert entry.failed and "OSError: hook unreachable" in entry.outcome
    assert {"restarts": 4} == entry.figures
    for _ in range(5):
        clock.advance(10)
        assert [] == rem.signal(Signal("gave_up", "workers"))
    assert 1 == len(escalations) and 1 == len(rem.journal.entries)
    rem.reset("page")
    clock.advance(1)
    assert 1 == len(rem.tick())


def test_dry_run_journals_and_does_nothing() -> None:
    done: list[Signal] = []
    rule = Rule(
        "r", "burn", lambda s: done.append(s) or "x", "switch", options=RuleOptions(dry_run=True)
    )
    rem = Remediator([rule], clock=FakeClock())
    (entry,) = rem.signal(Signal("burn", "checkout", figures={"burn": 14.4}))
    assert [] == done
    assert entry.dry_run and "dry run" == entry.outcome and {"burn": 14.4} == entry.figures


def test_clear_means_recovered_not_never_active() -> None:
    clock = FakeClock()
    seen: list[str] = []
    rule = Rule(
        "recover",
        "burn",
        lambda s: seen.append(s.subject) or "",
        "clear",
        state="clear",
        options=RuleOptions(hold=5.0),
    )
    rem = Remediator([rule], clock=clock)
    rem.signal(Signal("burn", "checkout", active=False))
    clock.advance(10)
    assert [] == rem.tick()  # clear from the start is not a recovery
    rem.signal(Signal("burn", "checkout", active=True))
    rem.signal(Signal("burn", "checkout", active=False))
    clock.advance(4)
    assert [] == rem.tick()
    clock.advance(1)
    assert 1 == len(rem.tick()) and ["checkout"] == seen
