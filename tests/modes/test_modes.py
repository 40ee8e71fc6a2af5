"""Degraded modes: the section, the switch (API, state file, CLI), the OpenFeature provider."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import ConfigError, SpecError
from buttress.events import add_listener
from buttress.modes import ModeChanged, ModeSwitch
from buttress.spec import load_spec_text
from buttress.testing import FakeClock

SPEC = """
modes:
  - name: essential-only
    description: Checkout stays up.
    keeps: [checkout, payments]
    off: [recommendations, reviews]
    shed: [sheddable]
    flags: {search-limit: 10, pricing-source: cached, ratio: 0.5}
  - name: read-only
    off: [checkout]
"""


def test_the_switch_answers_by_mode_and_reports_changes() -> None:
    events: list[ModeChanged] = []
    remove = add_listener(lambda e: events.append(e) if isinstance(e, ModeChanged) else None)
    try:
        switch = ModeSwitch.from_spec(load_spec_text(SPEC))
        assert switch.is_on("recommendations") and not switch.sheds("sheddable")
        switch.enter("essential-only", cause="test")
        assert not switch.is_on("recommendations") and switch.is_on("checkout")
        assert switch.sheds("sheddable") and not switch.sheds("critical")
        assert (10, "essential-only") == switch.flag("search-limit")
        switch.leave(cause="recovered")
        assert switch.current is None
    finally:
        remove()
    assert [("essential-only", None, "test"), (None, "essential-only", "recovered")] == [
        (e.mode, e.previous, e.cause) for e in events
    ]
    with pytest.raises(ConfigError, match="is not a declared mode"):
        switch.enter("nope")


def test_bad_modes_are_refused_at_their_line() -> None:
    with pytest.raises(SpecError, match=r"r.yaml:4:11: modes\[0\].off\[0\]: 'checkout' is kept"):
        load_spec_text(
            "modes:\n  - name: m\n    keeps: [checkout]\n    off: [checkout]\n", "r.yaml"
        )
    with pytest.raises(
        SpecError, match=r"modes\[0\].shed\[1\]: unknown criticality; expected one of"
    ):
        load_spec_text("modes:\n  - name: m\n    shed: [low, lowish]\n", "r.yaml")
    with pytest.raises(SpecError, match=r"modes\[1\].name: duplicate mode name 'm'"):
        load_spec_text("modes:\n  - {name: m}\n  - {name: m}\n", "r.yaml")


def test_the_cli_switches_a_running_process_through_the_state_file(tmp_path: Path) -> None:
    file = tmp_path / "reliability.yaml"
    file.write_text(SPEC)
    state = tmp_path / "mode.json"
    clock = FakeClock()
    switch = ModeSwitch.from_spec(load_spec_text(SPEC), state_file=state, poll=1.0, clock=clock)
    runner = CliRunner()
    result = runner.invoke(
        main, ["modes", "set", "read-only", "-f", str(file), "--state", str(state)]
    )
    assert 0 == result.exit_code, result.output
    assert switch.current is None  # not polled yet
    clock.advance(1.0)
    assert switch.current is not None and "read-only" == switch.current.name
    assert "cli" == switch.cause
    status = runner.invoke(main, ["modes", "status", "--state", str(state)])
    assert status.output.startswith("mode read-only on for")
    runner.invoke(main, ["modes", "clear", "--state", str(state)])
    clock.advance(1.0)
    assert switch.current is None
    bad = runner.invoke(main, ["modes", "set", "nope", "-f", str(file), "--state", str(state)])
    assert 2 == bad.exit_code
    assert "is not a declared mode (known: essential-only, read-only)" in bad.output
    listed = runner.invoke(main, ["modes", "list", str(file)])
    assert "essential-only: keeps checkout, payments; off recommendations, reviews" in listed.output


def test_openfeature_reads_the_mode() -> None:
    api = pytest.importorskip("openfeature.api")
    from openfeature.flag_evaluation import Reason

    from buttress.modes.openfeature import ModesProvider

    switch = ModeSwitch.from_spec(load_spec_text(SPEC))
    api.set_provider(ModesProvider(switch))
    try:
        client = api.get_client()
        assert client.get_boolean_value("recommendations", True)
        assert "normal" == client.get_string_value("buttress.mode", "?")
        switch.enter("essential-only")
        details = client.get_boolean_details("recommendations", True)
        assert (False, "essential-only", Reason.TARGETING_MATCH) == (
            details.value,
            details.variant,
            details.reason,
        )
        assert client.get_boolean_value("checkout", False)
        assert 10 == client.get_integer_value("search-limit", 50)
        assert 0.5 == client.get_float_value("ratio", 1.0)
        assert "cached" == client.get_string_value("pricing-source", "live")
        assert client.get_boolean_value("buttress.shed.sheddable", False)
        assert "essential-only" == client.get_string_value("buttress.mode", "?")
        mismatch = client.get_integer_details("pricing-source", 7)
        assert 7 == mismatch.value and "TYPE_MISMATCH" == str(mismatch.error_code)
        assert 3 == client.get_integer_value("unknown-flag", 3)
    finally:
        api.clear_providers()
