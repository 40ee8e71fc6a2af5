"""docs/outbox.md stays true: its Python examples run (in order, in one namespace: they build on
each other) and its options table matches :class:`RelayOptions`."""

from __future__ import annotations

import re
from pathlib import Path

from buttress.options import shown_default
from buttress.outbox import RelayOptions

PAGE = Path(__file__).resolve().parents[2] / "docs" / "outbox.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def test_python_examples_run() -> None:
    text = PAGE.read_text()
    namespace: dict[str, object] = {"__name__": "docs_example"}
    blocks = [m.group(2) for m in FENCE.finditer(text) if m.group(1) == "python"]
    assert len(blocks) >= 3
    for code in blocks:
        exec(compile(code, str(PAGE), "exec"), namespace)


def test_options_table_matches_the_options_type() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", PAGE.read_text(), re.M)
    expected = [(f.name, shown_default(f, opt)) for f, opt in RelayOptions.describe()]
    assert expected == rows
