"""The test servers are found where the machine has them, not at one hard-coded version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .servers import find_postgres_bin, find_redis_server


def _fake_install(root: Path, version: str, *, complete: bool = True) -> Path:
    d = root / version / "bin"
    d.mkdir(parents=True)
    for tool in ("initdb", "pg_ctl") if complete else ("initdb",):
        (d / tool).write_text("#!/bin/sh\n")
        (d / tool).chmod(0o755)
    return d


def test_postgres_bin_is_the_newest_version_by_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # nothing on PATH: the glob decides
    _fake_install(tmp_path, "9.6")
    _fake_install(tmp_path, "15")
    newest = _fake_install(tmp_path, "16")
    _fake_install(tmp_path, "17", complete=False)  # no pg_ctl: not a usable install
    assert newest == find_postgres_bin(tmp_path)


def test_postgres_bin_prefers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _fake_install(tmp_path / "custom", "x")
    _fake_install(tmp_path / "lib", "16")
    monkeypatch.setenv("PATH", str(on_path))
    assert on_path == find_postgres_bin(tmp_path / "lib")


def test_missing_servers_are_one_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        find_postgres_bin(tmp_path / "nothing")
    with pytest.raises(RuntimeError, match="apt-get install redis-server"):
        find_redis_server()


def test_this_machine_has_both() -> None:
    redis = find_redis_server()
    assert redis == shutil.which("redis-server")
    assert os.access(find_postgres_bin() / "initdb", os.X_OK)
