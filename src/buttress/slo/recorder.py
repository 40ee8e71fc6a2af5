"""The SLI recorder: counts good and total events per minute and writes them to the store.

Two ways in:

- :meth:`SLIRecorder.record` -- the direct API:
  ``record("checkout-availability", good=98, total=100)``.
- :meth:`SLIRecorder.attach` -- a telemetry listener on pipeline outcomes: for every SLO whose SLI
  names a ``pipeline``, a :class:`~buttress.events.CallSucceeded` is a good event (for a latency SLI
  only if its duration is within the threshold) and a :class:`~buttress.events.CallFailed` a bad
  one.

Counts are summed in memory per ``(sli, minute)`` and written in one transaction when
``flush_every`` seconds have passed or ``max_pending`` keys are waiting (and on :meth:`flush` /
:meth:`close`), so the cost per event is a dictionary update.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import CallFailed, CallSucceeded, Event, add_listener

from .spec import LatencySLI, SLOSpec, WindowSLI
from .store import SLIStore

__all__ = ["SLIRecorder"]


class SLIRecorder:
    """Buffers per-minute good/total counts and flushes them into an :class:`SLIStore`.

    :param store: where counts go.
    :param slos: SLOs whose ``sli.pipeline`` the listener maps pipeline events to.
    :param clock: wall time of events (default: the system clock).
    :param flush_every: seconds between automatic flushes (default 5).
    :param max_pending: flush once this many ``(sli, minute)`` keys wait (default 10,000).
    """

    def __init__(
        self,
        store: SLIStore,
        slos: Iterable[SLOSpec] = (),
        *,
        clock: Clock = SYSTEM_CLOCK,
        flush_every: float = 5.0,
        max_pending: int = 10_000,
    ) -> None:
        if flush_every < 0:
            raise ConfigError("flush_every", flush_every, "must be >= 0")
        if max_pending < 1:
            raise ConfigError("max_pending", max_pending, "must be >= 1")
        self.store = store
        self.clock = clock
        self.flush_every = flush_every
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], list[int]] = {}
        self._last_flush = clock.wall()
        self._routes: dict[str, list[tuple[str, float | None]]] = {}
        for slo in slos:
            sli = slo.sli.of if isinstance(slo.sli, WindowSLI) else slo.sli
            if sli.pipeline:
                thr = sli.threshold if isinstance(sli, LatencySLI) else None
                self._routes.setdefault(sli.pipeline, []).append((slo.name, thr))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- direct API --------------------------------------------------------------------------------

    def record(self, sli: str, good: int, total: int, at: float | datetime | None = None) -> None:
        """Count ``good`` of ``total`` events for ``sli`` at ``at`` (epoch seconds or an aware
        datetime; default now).  Raises :class:`~buttress.errors.ConfigError` for impossible
        counts."""
        if total < 0 or good < 0 or good > total:
            raise ConfigError("good/total", (good, total), "need 0 <= good <= total")
        now = self.clock.wall()
        if at is None:
            t = now
        elif isinstance(at, datetime):
            if at.tzinfo is None:
                raise ConfigError("at", at, "a datetime must carry a time zone")
            t = at.timestamp()
        else:
            t = float(at)
        key = (sli, int(t // 60))
        with self._lock:
            cell = self._pending.get(key)
            if cell is None:
                self._pending[key] = [good, total]
            else:
                cell[0] += good
                cell[1] += total
            due = (
                len(self._pending) >= self.max_pending or now - self._last_flush >= self.flush_every
            )
        if due:
            self.flush()

    # -- listener ----------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The telemetry listener: pipeline outcomes become SLI events."""
        routes = self._routes.get(event.pipeline)
        if routes is None:
            return
        if isinstance(event, CallSucceeded):
            for name, thr in routes:
                self.record(name, 1 if thr is None or event.duration <= thr else 0, 1)
        elif isinstance(event, CallFailed):
            for name, _ in routes:
                self.record(name, 0, 1)

    def attach(self) -> Callable[[], None]:
        """Listen to every pipeline's outcomes; returns a function that stops listening."""
        return add_listener(self.on_event)

    # -- flushing ----------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered; returns the number of ``(sli, minute)`` rows written."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._last_flush = self.clock.wall()
        if pending:
            self.store.add((k[0], k[1], v[0], v[1]) for k, v in pending.items())
        return len(pending)

    def start(self) -> None:
        """Flush every ``flush_every`` seconds from a daemon thread (stopped by :meth:`close`)."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.flush_every or 1.0):
                self.flush()

        self._thread = threading.Thread(target=loop, name="buttress-sli-recorder", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the flusher thread (if any) and flush."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.flush()

    def __enter__(self) -> SLIRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
