"""Experiment journals written by a real ``chaos run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.dashboard.journals import find_journals, load_journal, summarise
from buttress.errors import ButtressError


def test_real_journals_are_summarised(journals_dir: Path) -> None:
    runs = {s.file: s for s in find_journals(journals_dir)}
    assert {"steady.json", "deviating.json", "broken.json"} == set(runs)
    steady, dev, broken = runs["steady.json"], runs["deviating.json"], runs["broken.json"]
    assert ("passed", "completed", True, True) == (
        steady.verdict,
        steady.status,
        steady.hypothesis_before,
        steady.hypothesis_after,
    )
    assert ("deviated", True, False) == (dev.verdict, dev.hypothesis_before, dev.hypothesis_after)
    assert [("remove-the-file", "action", "succeeded")] == [
        (a["name"], a["type"], a["status"]) for a in dev.activities
    ]
    assert "deviating keeps its file" == dev.title
    assert dev.duration is not None and dev.duration >= 0
    assert "unreadable" == broken.verdict
    assert broken.error is not None and "broken.json:1:" in broken.error
    assert "invalid JSON" in broken.error


def test_newest_first(journals_dir: Path) -> None:
    readable = [s for s in find_journals(journals_dir) if s.error is None]
    assert ["deviating.json", "steady.json"] == [s.file for s in readable]


def test_not_a_journal(tmp_path: Path) -> None:
    assert "not a Chaos Toolkit journal" in (summarise({"a": 1}, "x.json").error or "")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ButtressError, match="top level must be a JSON object"):
        load_journal(tmp_path / "list.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ButtressError, match="not UTF-8"):
        load_journal(tmp_path / "bin.json")
    with pytest.raises(ButtressError, match="no such directory"):
        find_journals(tmp_path / "nope")


def test_cache_rereads_only_changed_files(journals_dir: Path, tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "j"
    shutil.copytree(journals_dir, d)
    cache: dict[str, object] = {}
    first = {s.file: s for s in find_journals(d, cache=cache)}  # type: ignore[arg-type]
    again = {s.file: s for s in find_journals(d, cache=cache)}  # type: ignore[arg-type]
    assert all(first[k] is again[k] for k in first)  # served from the cache
    (d / "broken.json").write_text((d / "steady.json").read_text())
    third = {s.file: s for s in find_journals(d, cache=cache)}  # type: ignore[arg-type]
    assert "passed" == third["broken.json"].verdict
    assert third["steady.json"] is first["steady.json"]


def test_journal_of_buttress_own_runner(journals_dir: Path, tmp_path: Path) -> None:
    """The chaos package's runner writes the same format; its journal reads the same way."""
    from buttress.chaos.experiment import run_experiment

    exp = tmp_path / "exp.yaml"
    exp.write_text((journals_dir / "deviating.experiment.yaml").read_text())
    (journals_dir / "deviating.target").write_text("x")  # the probe's file, back in place
    run_experiment(exp, journal_path=tmp_path / "run.json")
    (s,) = find_journals(tmp_path)
    assert ("deviated", True, False) == (s.verdict, s.hypothesis_before, s.hypothesis_after)
    assert ["remove-the-file"] == [a["name"] for a in s.activities]
