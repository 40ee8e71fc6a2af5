"""Fixtures: the shop lab's lock (one lab at a time across the suite; tests/_lab_lock.py)."""

from __future__ import annotations

from _lab_lock import lab_lock

__all__ = ["lab_lock"]
