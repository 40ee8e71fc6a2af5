"""Day blocks: how the SLI store packs a day of per-minute counts into one row.

One row per ``(sli, day)`` (``day = minute // 1440``, UTC) holds that day's 1,440 good counts and
1,440 total counts as one little-endian array of the narrowest integers that hold them (16, 32 or
64 bits: ``width`` bytes), the day's sums, and a bit per minute that was recorded (``seen``).  See
:mod:`buttress.slo.store` for why.
"""

from __future__ import annotations

import sqlite3
import sys
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["DAY", "add_rows", "pack", "put", "span_sums", "unpack", "widen", "width_for"]

DAY = 1440
"""Minutes in a block."""

_CODES = {2: "h", 4: "i", 8: "q"}


def width_for(low: int, high: int) -> int:
    """Bytes per count (2, 4 or 8) that hold every count in ``[low, high]``."""
    for width in (2, 4):
        limit = 2 ** (8 * width - 1) - 1
        if -limit <= low and high <= limit:
            return width
    return 8


_SWAP = sys.byteorder != "little"


def unpack(width: int, blob: bytes) -> array[int]:
    arr = array(_CODES[width])
    arr.frombytes(blob)
    if _SWAP:
        arr.byteswap()
    return arr


def pack(arr: array[int]) -> tuple[int, bytes]:
    """``(width, little-endian bytes)`` of 64-bit ``arr``, narrowed to 16 or 32 bits when every
    count fits."""
    width = width_for(min(arr), max(arr))
    out = arr if width == 8 else array(_CODES[width], arr)
    if _SWAP:
        out = array(out.typecode, out)
        out.byteswap()
    return out.itemsize, out.tobytes()


def span_sums(width: int, blob: bytes, a: int, b: int) -> tuple[int, int]:
    """Sums of a block's good and total counts over offsets ``[a, b)`` (numpy when installed)."""
    try:
        import numpy as np_
    except ImportError:
        arr = unpack(width, blob)
        return sum(arr[a:b]), sum(arr[DAY + a : DAY + b])
    block = np_.frombuffer(blob, dtype=f"<i{width}").reshape(2, DAY)
    g, t = block[:, a:b].sum(axis=1, dtype=np_.int64)
    return int(g), int(t)


def widen(blob: bytes, size: int, np_: Any) -> bytes:
    """A block's bytes with ``size`` bytes per count (little-endian)."""
    width = len(blob) // (2 * DAY)
    if width == size:
        return blob
    return bytes(np_.frombuffer(blob, dtype=f"<i{width}").astype(f"<i{size}").tobytes())


def put(
    c: sqlite3.Connection,
    sli: str,
    day: int,
    *,
    new: bool,
    added: tuple[int, int],
    packed: tuple[int, bytes],
    seen: int,
) -> None:
    """Write a block: insert it, or update it adding ``added`` to the day's sums."""
    bits = seen.to_bytes(DAY // 8, "little")
    if new:
        c.execute(
            "INSERT INTO sli_minutes (sli, day, good, total, width, counts, seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (sli, day, *added, *packed, bits),
        )
    else:
        c.execute(
            "UPDATE sli_minutes SET good = good + ?, total = total + ?, width = ?, counts = ?, "
            "seen = ? WHERE sli = ? AND day = ?",
            (*added, *packed, bits, sli, day),
        )


def add_rows(c: sqlite3.Connection, rows: Iterable[Sequence[Any]]) -> None:
    """Add ``(sli, minute, good, total)`` rows to their blocks (counts add up); the caller holds
    the write transaction."""
    deltas: dict[tuple[str, int], dict[int, list[int]]] = {}
    for sli, minute, good, total in rows:
        day, offset = divmod(int(minute), DAY)
        cell = deltas.setdefault((str(sli), day), {}).setdefault(offset, [0, 0])
        cell[0] += int(good)
        cell[1] += int(total)
    for (sli, day), cells in deltas.items():
        row = c.execute(
            "SELECT width, counts, seen FROM sli_minutes WHERE sli = ? AND day = ?", (sli, day)
        ).fetchone()
        arr = array("q", unpack(row[0], row[1]) if row else bytes(16 * DAY))
        seen = int.from_bytes(row[2], "little") if row else 0
        dg = dt = 0
        for offset, (g, t) in cells.items():
            arr[offset] += g
            arr[DAY + offset] += t
            dg += g
            dt += t
            seen |= 1 << offset
        put(c, sli, day, new=row is None, added=(dg, dt), packed=pack(arr), seen=seen)
