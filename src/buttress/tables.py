"""Plain-text tables for the command line: the one renderer every ``buttress`` table uses.

Standard library only, so that importing it costs nothing at start-up.  A table is a header row, a
rule of dashes under it and the rows; columns are two spaces apart, padded to their widest cell,
and trailing blanks are stripped.  Numbers line up on the right: a column is right-aligned when
every cell in it (header aside) looks like a number, optionally with a unit (``97.5%``, ``1.07x``,
``250 ms``, ``12.4``, ``-``), unless the caller says which columns to right-align.

The same rows as Markdown: :func:`markdown_table`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

__all__ = ["markdown_table", "render_table"]

_NUMBER = re.compile(r"[-+]?(\d[\d,]*)?\.?\d+(e[-+]?\d+)?\s?(%|x|ms|s|m|h|d|min|/s)?")
_BLANK = {"", "-", "n/a"}


def _is_number(cell: str) -> bool:
    return cell in _BLANK or _NUMBER.fullmatch(cell) is not None


def _numeric_columns(rows: Sequence[Sequence[str]], n: int) -> set[int]:
    return {
        i
        for i in range(n)
        if any(r[i] not in _BLANK for r in rows) and all(_is_number(r[i]) for r in rows)
    }


def render_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Collection[int] | None = None,
    rule: bool = True,
    indent: str = "",
) -> str:
    """The table as text, without a final newline.

    :param headers: one per column.
    :param rows: each with one cell per column; a cell is shown with ``str()``, ``None`` as ``-``.
    :param right: the indexes of the columns to right-align (default: the numeric ones).
    :param rule: draw the line of dashes under the header.
    :param indent: put in front of every line.
    """
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    n = len(headers)
    for row in cells:
        if len(row) != n:
            raise ValueError(f"a row has {len(row)} cells for {n} columns: {row!r}")
    aligned = _numeric_columns(cells, n) if right is None else set(right)
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in aligned else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return (indent + "  ".join(padded)).rstrip()

    out = [line(headers)]
    if rule:
        out.append(indent + "  ".join("-" * w for w in widths))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The same table as GitHub-flavoured Markdown (``|`` in cells escaped)."""
    body = [["-" if c is None else str(c).replace("|", "\\|") for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)
