"""docs/idempotency.md stays true: its Python example runs and its options table matches
:class:`IdempotencyOptions`."""

from __future__ import annotations

import re
from pathlib import Path

from buttress.integrations.idempotency import IdempotencyOptions
from buttress.options import shown_default

PAGE = Path(__file__).resolve().parents[2] / "docs" / "idempotency.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def test_python_examples_run() -> None:
    blocks = [m.group(2) for m in FENCE.finditer(PAGE.read_text()) if m.group(1) == "python"]
    assert blocks
    for code in blocks:
        exec(compile(code, str(PAGE), "exec"), {"__name__": "docs_example"})


def test_options_table_matches_the_options_type() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)` \|", PAGE.read_text(), re.M)
    expected = []
    for f, opt in IdempotencyOptions.describe():
        shown = shown_default(f, opt)
        if isinstance(f.default, frozenset):
            shown = f"frozenset({sorted(f.default)!r})".replace("[", "{").replace("]", "}")
        expected.append((f.name, shown))
    assert expected == rows
