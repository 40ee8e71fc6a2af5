"""docs/outbox.md stays true: its options table matches :class:`RelayOptions` (its Python
examples run in ``tests/testing/test_docs_examples.py``, each on its own)."""

from __future__ import annotations

import re
from pathlib import Path

from buttress.options import shown_default
from buttress.outbox import RelayOptions

PAGE = Path(__file__).resolve().parents[2] / "docs" / "outbox.md"


def test_options_table_matches_the_options_type() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", PAGE.read_text(), re.M)
    expected = [(f.name, shown_default(f, opt)) for f, opt in RelayOptions.describe()]
    assert expected == rows
