"""The worked systems of ``examples/<context>/``: one lab at a time (``lab_lock``, shared with
tests/shop and tests/dashboard), and every test that starts a lab in the serial pass."""

from __future__ import annotations

from _lab_lock import lab_lock

__all__ = ["lab_lock"]
