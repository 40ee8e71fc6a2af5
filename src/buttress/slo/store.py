"""The embedded SLI store: good/total event counts per SLI per minute, in SQLite.

Counts are kept in *day blocks*: one row per ``(sli, day)`` (``day = minute // 1440``, UTC) holding
that day's 1,440 good counts and 1,440 total counts as one little-endian array of the narrowest
integers that hold them (16, 32 or 64 bits: ``width`` bytes), plus the day's sums in plain integer
columns::

    sli_minutes(sli TEXT, day INTEGER, good INTEGER, total INTEGER, width INTEGER, counts BLOB,
               seen BLOB)                             -- a bit per minute that was recorded
    index sli_minutes_sums(sli, day, good, total)      -- covers the per-day sums

Why blocks: the evaluator reads 30 days of per-minute data for many SLOs.  Rows of
``(sli, minute, good, total)`` cost Python one tuple per minute (43,200 per SLO and month) and were
as slow to read as the plain-Python computation itself; a block is one ``bytes`` object that numpy
views without copying (:meth:`SLIStore.series_many`), and the period's sums come from the covering
index plus the two partial days at the ends (:meth:`SLIStore.totals`), so the evaluator reads
per-minute blocks only for the span of its longest alert window.

Writes add to the counts (a read-modify-write of each touched block), so any number of processes
can record into the same file: the database runs in WAL mode (readers never block the writer),
every write is one ``BEGIN IMMEDIATE`` transaction, and a busy database is waited for
(``busy_timeout``, default 10 s) instead of failing.  A store written by an earlier version (one row
per minute in ``sli_minutes``) is converted to blocks when first opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError
from buttress.sqlite import Database, connect, migrate

from .blocks import DAY, add_rows, put, span_sums, unpack, widen, width_for
from .schema import MIGRATIONS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DAY", "SLIStore"]

_CHUNK = 500  # SQL variables per IN (...) list


class SLIStore(Database):
    """A SQLite file of per-minute good/total counts, kept in day blocks.

    :param path: the database file (created if missing).
    :param busy_timeout: seconds a writer waits for another process's transaction (default 10).

    Thread-safe: one connection per store, guarded by a lock.  Open one store per process.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        if busy_timeout < 0:
            raise ConfigError("busy_timeout", busy_timeout, "must be >= 0")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # A new file gets 16 KiB pages, so that a day block (11.5 KiB) sits in one page instead of a
        # chain of overflow pages; an existing file keeps its page size.
        conn = connect(self.path, busy_timeout=busy_timeout, page_size=16384)
        self._open(conn, lambda c: migrate(c, MIGRATIONS, self.path))

    # -- writing -----------------------------------------------------------------------------------

    def add(self, rows: Iterable[tuple[str, int, int, int]]) -> None:
        """Add ``(sli, minute, good, total)`` rows in one transaction (counts add up)."""
        batch = list(rows)
        if not batch:
            return
        with self._lock:
            self._write(lambda c: add_rows(c, batch))

    def add_series(self, sli: str, start_minute: int, good: Any, total: Any) -> None:
        """Add dense per-minute counts (sequences or numpy arrays of equal length) for minutes
        ``start_minute, start_minute + 1, ...`` of ``sli``, in one transaction: a bulk import
        (history, backfills) that writes each day block once."""
        from ._np import numpy

        np_ = numpy()
        g = np_.asarray(good, dtype=np_.int64)
        t = np_.asarray(total, dtype=np_.int64)
        if g.shape != t.shape or g.ndim != 1:
            raise ConfigError("good/total", (g.shape, t.shape), "need two 1-D arrays of one length")
        if not len(g):
            return
        end = start_minute + len(g)

        def write(c: sqlite3.Connection) -> None:
            for day in range(start_minute // DAY, (end - 1) // DAY + 1):
                base = day * DAY
                lo, hi = max(start_minute - base, 0), min(end - base, DAY)
                src = slice(base + lo - start_minute, base + hi - start_minute)
                row = c.execute(
                    "SELECT width, counts, seen FROM sli_minutes WHERE sli = ? AND day = ?",
                    (sli, day),
                ).fetchone()
                block = np_.zeros((2, DAY), dtype=np_.int64)
                if row is not None:
                    block += np_.frombuffer(row[1], dtype=f"<i{row[0]}").reshape(2, DAY)
                block[0, lo:hi] += g[src]
                block[1, lo:hi] += t[src]
                dg, dt = int(g[src].sum()), int(t[src].sum())
                width = width_for(int(block.min()), int(block.max()))
                seen = int.from_bytes(row[2], "little") if row else 0
                seen |= ((1 << (hi - lo)) - 1) << lo
                blob = block.astype(f"<i{width}").tobytes()
                put(c, sli, day, new=row is None, added=(dg, dt), packed=(width, blob), seen=seen)

        with self._lock:
            self._write(write)

    def add_counts(self, counts: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Add ``{(sli, minute): (good, total)}`` in one transaction."""
        self.add((k[0], k[1], v[0], v[1]) for k, v in counts.items())

    # -- reading -----------------------------------------------------------------------------------

    def slis(self) -> list[str]:
        """Names of every SLI with data."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT sli FROM sli_minutes ORDER BY sli")
            return [r[0] for r in rows]

    def blocks(self, slis: Sequence[str], first_day: int, last_day: int) -> list[Any]:
        """``(sli, day, width, counts)`` of the blocks of ``slis`` for days in ``[first, last]``."""
        out: list[Any] = []
        unique = list(dict.fromkeys(slis))
        with self._lock:
            for i in range(0, len(unique), _CHUNK):
                part = unique[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                out.extend(
                    self._conn.execute(
                        "SELECT sli, day, width, counts FROM sli_minutes "
                        f"WHERE sli IN ({marks}) AND day >= ? AND day <= ?",
                        (*part, first_day, last_day),
                    )
                )
        return out

    def rows(self, sli: str, start_minute: int, end_minute: int) -> list[tuple[int, int, int]]:
        """``(minute, good, total)`` of the recorded minutes in ``[start_minute, end_minute)``, in
        order (a minute recorded with zero counts included)."""
        if end_minute <= start_minute:
            return []
        out = []
        with self._lock:
            blocks = self._conn.execute(
                "SELECT day, width, counts, seen FROM sli_minutes WHERE sli = ? AND day >= ? "
                "AND day <= ? ORDER BY day",
                (sli, start_minute // DAY, (end_minute - 1) // DAY),
            ).fetchall()
        for day, width, blob, seen_bits in blocks:
            arr = unpack(width, blob)
            seen = int.from_bytes(seen_bits, "little")
            base = day * DAY
            for off in range(max(start_minute - base, 0), min(end_minute - base, DAY)):
                if seen >> off & 1:
                    out.append((base + off, arr[off], arr[DAY + off]))
        return out

    def series_many(
        self, slis: Sequence[str], start_minute: int, end_minute: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Dense ``(good, total)`` arrays of shape ``(len(slis), end - start)``: row ``i`` holds
        ``slis[i]``'s counts for minutes ``[start_minute, end_minute)`` (zeros without data).

        One query per 500 SLIs; the blocks are joined into one buffer that numpy views and
        reshapes, so the cost per block is a ``bytes`` object, not a Python loop.
        """
        return self._series_many(slis, start_minute, end_minute, narrow=False)

    def series_many_narrow(
        self, slis: Sequence[str], start_minute: int, end_minute: int
    ) -> tuple[Any, Any]:
        """:meth:`series_many` in the blocks' widest integer type (16 or 32 bits are enough for
        sums: numpy sums small integers in 64 bits), for a reader that only sums."""
        return self._series_many(slis, start_minute, end_minute, narrow=True)

    def _series_many(
        self, slis: Sequence[str], start_minute: int, end_minute: int, *, narrow: bool
    ) -> tuple[Any, Any]:
        """:meth:`series_many`; with ``narrow``, arrays of the blocks' widest integer type (16 or
        32 bits are enough for sums: numpy sums small integers in 64 bits)."""
        from ._np import numpy

        np_ = numpy()
        n = max(0, end_minute - start_minute)
        if n == 0 or not slis:
            empty = np_.zeros((len(slis), n), dtype=np_.int64)
            return empty, empty.copy()
        unique = list(dict.fromkeys(slis))
        pos = {s: i for i, s in enumerate(unique)}
        d0, d1 = start_minute // DAY, (end_minute - 1) // DAY
        nd = d1 - d0 + 1
        found = self.blocks(unique, d0, d1)
        size = max((w for _, _, w, _ in found), default=2)
        # Join the blocks found into one buffer, view it, and scatter it into zeroed arrays (one
        # vectorised assignment; np.zeros only touches the memory the blocks fill).
        buf = b"".join(widen(blob, size, np_) for _, _, _, blob in found)
        blocks = np_.frombuffer(buf, dtype=f"<i{size}").reshape(len(found), 2, DAY)
        rows = np_.fromiter((pos[r[0]] for r in found), dtype=np_.intp, count=len(found))
        days = np_.fromiter((r[1] - d0 for r in found), dtype=np_.intp, count=len(found))
        dtype = np_.dtype(f"i{size}") if narrow else np_.int64
        good = np_.zeros((len(unique), nd, DAY), dtype=dtype)
        total = np_.zeros((len(unique), nd, DAY), dtype=dtype)
        good[rows, days] = blocks[:, 0, :]
        total[rows, days] = blocks[:, 1, :]
        lo = start_minute - d0 * DAY
        good = good.reshape(len(unique), nd * DAY)[:, lo : lo + n]
        total = total.reshape(len(unique), nd * DAY)[:, lo : lo + n]
        if len(unique) != len(slis):  # a name asked for twice
            rows = [pos[s] for s in slis]
            good, total = good[rows], total[rows]
        return good, total

    def series(
        self, sli: str, start_minute: int, end_minute: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Dense ``(good, total)`` arrays for minutes ``[start_minute, end_minute)`` (zeros if no
        data)."""
        good, total = self.series_many([sli], start_minute, end_minute)
        return good[0], total[0]

    def totals(
        self, slis: Sequence[str], start_minute: int, end_minute: int
    ) -> tuple[list[int], list[int]]:
        """Exact ``(good, total)`` sums of each SLI over minutes ``[start_minute, end_minute)``.

        Whole days come from the per-day sums (the covering index, no block is read); only the
        partial days at either end are read and summed.
        """
        good = dict.fromkeys(slis, 0)
        total = dict.fromkeys(slis, 0)
        if end_minute <= start_minute or not slis:
            return [0] * len(slis), [0] * len(slis)
        first_full = -(-start_minute // DAY)
        end_full = end_minute // DAY  # days [first_full, end_full) lie wholly inside
        edges: list[tuple[int, int]] = []
        if first_full > end_full:  # inside one day
            edges.append((start_minute, end_minute))
        else:
            if start_minute < first_full * DAY:
                edges.append((start_minute, first_full * DAY))
            if end_full * DAY < end_minute:
                edges.append((end_full * DAY, end_minute))
            if end_full > first_full:
                unique = list(good)
                with self._lock:
                    for i in range(0, len(unique), _CHUNK):
                        part = unique[i : i + _CHUNK]
                        marks = ",".join("?" * len(part))
                        for sli, g, t in self._conn.execute(
                            "SELECT sli, SUM(good), SUM(total) FROM sli_minutes "
                            f"INDEXED BY sli_minutes_sums WHERE sli IN ({marks}) "
                            "AND day >= ? AND day < ? GROUP BY sli",
                            (*part, first_full, end_full),
                        ):
                            good[sli] += int(g)
                            total[sli] += int(t)
        for lo, hi in edges:
            day = lo // DAY
            a, b = lo - day * DAY, hi - day * DAY
            for sli, _, width, blob in self.blocks(slis, day, day):
                g_part, t_part = span_sums(width, blob, a, b)
                good[sli] += g_part
                total[sli] += t_part
        return [good[s] for s in slis], [total[s] for s in slis]

    def bounds(self, sli: str) -> tuple[int, int] | None:
        """First and last recorded minute of ``sli``."""
        with self._lock:
            first = self._conn.execute(
                "SELECT day, seen FROM sli_minutes WHERE sli = ? ORDER BY day LIMIT 1", (sli,)
            ).fetchone()
            last = self._conn.execute(
                "SELECT day, seen FROM sli_minutes WHERE sli = ? ORDER BY day DESC LIMIT 1", (sli,)
            ).fetchone()
        if first is None:
            return None
        lo = int.from_bytes(first[1], "little")
        hi = int.from_bytes(last[1], "little")
        return first[0] * DAY + (lo & -lo).bit_length() - 1, last[0] * DAY + hi.bit_length() - 1

    def __repr__(self) -> str:
        return f"SLIStore({self.path!r})"
