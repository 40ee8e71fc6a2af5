"""buttress.lab.service: how a service reads what `buttress lab PATH` tells it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from buttress.lab import service as lab_env
from buttress.lab.service import LabService


def test_the_lab_s_variables_are_read_and_defaults_sit_next_to_the_code(tmp_path: Path) -> None:
    env = {
        lab_env.SPEC: "/x/reliability.yaml",
        lab_env.POLICIES: "OFF",
        lab_env.UPSTREAMS: '{"payments": ["http://127.0.0.1:1", "http://127.0.0.1:2"]}',
        lab_env.STORE: str(tmp_path / "store.db"),
        lab_env.DATA: str(tmp_path / "data" / "api"),
        lab_env.INSTANCE: "api-1",
        lab_env.MODE_STATE: str(tmp_path / "mode.json"),
        lab_env.CONTROL: str(tmp_path / "api-1.control"),
    }
    s = LabService.from_env("api", home=tmp_path, env=env)
    assert (s.mode, s.policies, s.instance) == ("off", False, "api-1")
    assert s.spec_path == Path("/x/reliability.yaml") and s.data.is_dir()
    assert ["http://127.0.0.1:1", "http://127.0.0.1:2"] == s.upstream("payments")
    assert "http://127.0.0.1:1" == s.url("payments")
    assert (s.store, s.mode_file, s.control) == (
        env[lab_env.STORE],
        env[lab_env.MODE_STATE],
        env[lab_env.CONTROL],
    )
    by_hand = LabService.from_env("api", home=tmp_path, env={})
    assert (by_hand.mode, by_hand.instance, by_hand.store) == ("on", "api", None)
    assert by_hand.spec_path == tmp_path / "reliability.yaml"
    assert by_hand.data == tmp_path / ".data" and by_hand.data.is_dir()


def test_bad_values_stop_the_service_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    cases = {
        lab_env.POLICIES: (
            "typical",
            "BUTTRESS_LAB_POLICIES must be one of on, off, not 'typical' (no typical run here)",
        ),
        lab_env.UPSTREAMS: ("{", "BUTTRESS_LAB_UPSTREAMS is not JSON: Expecting property name"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(SystemExit, match=message.replace("(", r"\(").replace(")", r"\)")):
            LabService.from_env(
                "api", home=tmp_path, refused="no typical run here", env={name: value}
            )
    with pytest.raises(SystemExit, match="must be a JSON object"):
        LabService.from_env("api", home=tmp_path, env={lab_env.UPSTREAMS: "[1]"})
    with pytest.raises(SystemExit, match="no upstream for 'inventory' in BUTTRESS_LAB_UPSTREAMS"):
        LabService.from_env("api", home=tmp_path, env={}).upstream("inventory")


def test_an_example_s_settings_add_fields_of_their_own(tmp_path: Path) -> None:
    @dataclass(frozen=True, kw_only=True)
    class Settings(LabService):
        skew: float = 0.0

    s = Settings.from_env("desk", home=tmp_path, data=tmp_path / "desk", env={}, skew=2.5)
    assert isinstance(s, Settings) and (s.skew, s.data) == (2.5, tmp_path / "desk")
