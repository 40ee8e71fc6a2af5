"""Fixtures of the DR tests: small SQLite application databases with a sentinel table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from buttress.sqlite import connect


def make_app_db(path: Path, rows: int = 500) -> Path:
    """A WAL database with an ``orders`` table of text payloads and a sentinel table."""
    conn = connect(path)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    conn.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER) WITHOUT ROWID")
    conn.execute("CREATE TABLE buttress_sentinel (seq INTEGER PRIMARY KEY, at REAL NOT NULL)")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO orders (note) VALUES (?)", [(f"payload-{i:06d}",) for i in range(rows)]
    )
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [("a", 1000), ("b", 1000)])
    conn.execute("INSERT INTO buttress_sentinel VALUES (1, 1000.0)")
    conn.execute("COMMIT")
    conn.close()
    return path


@pytest.fixture
def app_db(tmp_path: Path) -> Path:
    return make_app_db(tmp_path / "app.db")


@pytest.fixture
def target(tmp_path: Path) -> Path:
    d = tmp_path / "backups"
    d.mkdir()
    return d


def read_all(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()
