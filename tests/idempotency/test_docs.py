"""docs/idempotency.md stays true: its options table matches :class:`IdempotencyOptions` (its
Python example runs in ``tests/testing/test_docs_examples.py``)."""

from __future__ import annotations

import re
from pathlib import Path

from buttress.integrations.idempotency import IdempotencyOptions
from buttress.options import shown_default

PAGE = Path(__file__).resolve().parents[2] / "docs" / "idempotency.md"


def test_options_table_matches_the_options_type() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", PAGE.read_text(), re.M)
    expected = []
    for f, opt in IdempotencyOptions.describe():
        shown = shown_default(f, opt)
        if isinstance(f.default, frozenset):
            shown = f"frozenset({sorted(f.default)!r})".replace("[", "{").replace("]", "}")
        expected.append((f.name, shown))
    assert expected == rows
