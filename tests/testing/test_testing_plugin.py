"""The pytest plugin, as its users meet it: fixtures in a separate pytest run (``pytester``).

The plugin is found through the ``pytest11`` entry point of the installed package, exactly as in a
user's project; nothing here registers it by hand.
"""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as a user's test file in a fresh pytest session.

    Hypothesis's plugin is left out of these inner sessions: it costs ~0.8 s per session and plays
    no part here.
    """
    pytester.makeini(INI)
    pytester.makepyfile(test_user=source)
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args)


def test_fixtures_are_registered_by_the_entry_point(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_nothing():\n    pass\n", "--fixtures")
    assert 0 == result.ret
    result.stdout.fnmatch_lines(
        [
            "*fake_clock*",
            "*A fresh FakeClock at monotonic 1000.0*",
            "*no_waits*",
            "*Skip the system clock's real sleeps*",
            "*captured_events*",
            "*Every Buttress event emitted during the test*",
        ]
    )


def test_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_uses(fake_clock):\n    pass\n", "-p", "no:buttress")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'fake_clock' not found*"])


def test_fake_clock_is_fresh_per_test_and_drives_pipelines(pytester: pytest.Pytester) -> None:
    source = """
import pytest
from buttress import Backoff, Pipeline, Retry
from buttress.testing import FakeClock

def test_first(fake_clock):
    assert isinstance(fake_clock, FakeClock)
    assert 1000.0 == fake_clock.monotonic()
    fake_clock.advance(50)

def test_second_gets_a_new_clock(fake_clock):
    assert 1000.0 == fake_clock.monotonic()

async def test_async_pipeline_waits_on_it(fake_clock):
    p = Pipeline([Retry(attempts=3, backoff=Backoff.constant(60.0), budget=None,
                        clock=fake_clock)], clock=fake_clock)
    async def fails():
        raise ConnectionError("down")
    with pytest.raises(ConnectionError):
        await p.call_async(fails)
    assert [60.0, 60.0] == fake_clock.sleeps
    assert 1120.0 == fake_clock.monotonic()
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=3)
    assert result.duration < 5.0  # two minutes of backoff on the fake clock, no real waiting


def test_no_waits_skips_real_sleeps_for_one_test_only(pytester: pytest.Pytester) -> None:
    source = """
import time
from buttress import Backoff, Pipeline, Retry
from buttress.clock import waits_enabled

def test_retry_on_the_system_clock(no_waits):
    assert not waits_enabled()
    calls = []
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"
    p = Pipeline([Retry(attempts=3, backoff=Backoff.constant(30.0), budget=None)])
    t0 = time.perf_counter()
    assert "ok" == p.call(flaky)
    assert time.perf_counter() - t0 < 1.0

def test_waits_are_back_on_afterwards():
    assert waits_enabled()
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=2)


def test_captured_events_sees_the_tests_events_only(pytester: pytest.Pytester) -> None:
    source = """
from buttress import Backoff, Pipeline, Retry
from buttress.events import RetryScheduled

def test_collects(captured_events, fake_clock):
    p = Pipeline([Retry(attempts=2, backoff=Backoff.constant(1.0), budget=None,
                        clock=fake_clock)], name="svc", clock=fake_clock)
    n = []
    def flaky():
        n.append(1)
        if len(n) == 1:
            raise ConnectionError("down")
        return 7
    assert 7 == p.call(flaky)
    assert [
        "buttress_retry_attempt_failed",
        "buttress_retry_scheduled",
        "buttress_retry_attempt_succeeded",
        "buttress_pipeline_call_succeeded",
    ] == [e.name for e in captured_events]
    (scheduled,) = [e for e in captured_events if isinstance(e, RetryScheduled)]
    assert ("svc", "retry", 1.0) == (scheduled.pipeline, scheduled.policy, scheduled.delay)

def test_next_test_starts_empty_and_the_listener_is_gone(captured_events, fake_clock):
    assert [] == captured_events
    p = Pipeline([Retry(attempts=1, budget=None, clock=fake_clock)], clock=fake_clock)
    assert p.emitter.active  # this test's own listener

def test_without_the_fixture_nothing_listens(fake_clock):
    p = Pipeline([Retry(attempts=1, budget=None, clock=fake_clock)], clock=fake_clock)
    assert not p.emitter.active
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=3)


def test_a_failing_user_test_is_reported_as_failing(pytester: pytest.Pytester) -> None:
    """The fixtures do not swallow failures (the plugin's teardown runs, the failure stays)."""
    source = """
def test_fails(captured_events, no_waits, fake_clock):
    fake_clock.advance(1)
    assert 1002.0 == fake_clock.monotonic()

def test_after_the_failure_waits_are_restored():
    from buttress.clock import waits_enabled
    assert waits_enabled()
"""
    result = run(pytester, source)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert 1002.0 == 1001.0*"])
