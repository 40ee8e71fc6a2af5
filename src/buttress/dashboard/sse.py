"""Server-sent events: one poller per app, fanned out to every connected browser.

The :class:`Hub` runs one asyncio task while at least one client is connected.  Every ``poll``
seconds it reads ``PRAGMA data_version`` (changes when any other connection commits to the store):

* on a change it rebuilds the states payload and, if it differs from the last one sent, sends a
  ``states`` event;
* SLOs are re-evaluated (in a worker thread) at most every ``slo_every`` seconds while data
  changes, and at every minute boundary even without new data (the windows move), and sent as a
  ``slos`` event when they differ;
* the journals directory is rescanned every ``journals_every`` seconds (``journals`` event), and
  so are the lab's result (``lab``) and the incident store (``incidents``: sent when an incident
  opens, moves or resolves, or its impact grows; the page ticks the ages itself).

A new client first receives the latest payload of each kind, so the page is complete at once.
Each client has a small queue; a client too slow to keep up loses the *oldest* undelivered
message (every message is a full payload, so the next one repairs the view).  A comment line is
sent every ``heartbeat`` seconds to keep proxies from closing an idle stream.

Wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html)::

    id: 42
    event: states
    data: {"states": [...]}

"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .state import DashboardData

__all__ = ["Hub", "format_event"]

QUEUE_SIZE = 8


def format_event(event: str, data: Any, *, id: int | None = None) -> bytes:
    """One SSE message: ``data`` serialised as compact JSON on one ``data:`` line."""
    if "\n" in event or "\r" in event:
        raise ValueError("an SSE event name cannot contain a line break")
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


class Hub:
    """Polls the store and broadcasts changes to subscribers (see the module docstring)."""

    def __init__(self, data: DashboardData, *, heartbeat: float = 15.0) -> None:
        self.data = data
        self.heartbeat = heartbeat
        self._subs: set[asyncio.Queue[bytes | None]] = set()
        self._latest: dict[str, bytes] = {}
        self._raw: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._id = 0
        self._closed = False

    @property
    def clients(self) -> int:
        return len(self._subs)

    def _encode(self, event: str, payload: Any) -> bytes:
        self._id += 1
        return format_event(event, payload, id=self._id)

    def _publish(self, event: str, payload: Any) -> bool:
        """Send ``payload`` as ``event`` to everyone, unless it equals the last one sent."""
        if self._raw.get(event) == payload:
            return False
        self._raw[event] = payload
        msg = self._encode(event, payload)
        self._latest[event] = msg
        for q in list(self._subs):
            _put_dropping_oldest(q, msg)
        return True

    async def _refresh(self, what: str) -> None:
        """Rebuild ``what``'s payload; send it when what the page shows of it changed."""
        d = self.data
        builders: dict[str, Callable[[], Any]] = {
            "states": d.states_payload,
            "slos": d.slos_payload,
            "journals": d.journals_payload,
            "incidents": d.incidents_payload,
            "lab": d.lab_payload,
        }
        payload = await asyncio.to_thread(builders[what])
        key = _shown(what, payload)
        if self._raw.get(f"{what}:key") != key:
            self._raw[f"{what}:key"] = key
            self._publish(what, payload)

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # shown on the page; the next client restarts the poller
            logging.getLogger("buttress.dashboard").exception("dashboard poller failed")
            self._publish("error", {"message": f"{type(e).__name__}: {e}"})

    async def _loop(self) -> None:
        cfg = self.data.config
        # Read the version first: a commit landing while the first payloads are built is then
        # seen as a change by the first poll instead of being lost.
        version = await asyncio.to_thread(self.data.reader.version)
        self._publish("assessment", self.data.assessment_payload())
        await self._refresh("states")
        await self._refresh("slos")
        await self._refresh("journals")
        await self._refresh("lab")
        await self._refresh("incidents")
        last_slo = last_journals = time.monotonic()
        slo_dirty = False
        minute = int(time.time() // 60)
        while self._subs:
            await asyncio.sleep(cfg.poll)
            now = time.monotonic()
            v = await asyncio.to_thread(self.data.reader.version)
            if v != version:
                version = v
                slo_dirty = True
                await self._refresh("states")
            m = int(time.time() // 60)
            if m != minute:
                minute = m
                slo_dirty = True
                await self._refresh("states")  # stale flags and timelines move with time
            if slo_dirty and now - last_slo >= cfg.slo_every:
                slo_dirty = False
                last_slo = now
                await self._refresh("slos")
            if now - last_journals >= cfg.journals_every:
                last_journals = now
                if cfg.journals is not None:
                    await self._refresh("journals")
                if cfg.lab is not None:
                    await self._refresh("lab")
                if cfg.incidents is not None:
                    await self._refresh("incidents")

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._raw.clear()
            self._latest.clear()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stream(self) -> AsyncIterator[bytes]:
        """The byte stream of one client: the latest payloads, then every change."""
        q: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        for latest in self._latest.values():
            _put_dropping_oldest(q, latest)
        self._subs.add(q)
        self._ensure_running()
        try:
            yield b"retry: 2000\n\n"
            while not self._closed:
                try:
                    item = await asyncio.wait_for(q.get(), self.heartbeat)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if item is None:
                    break
                yield item
        finally:
            self._subs.discard(q)

    async def close(self) -> None:
        """End every stream and stop polling."""
        self._closed = True
        for q in list(self._subs):
            _put_dropping_oldest(q, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


def _put_dropping_oldest(q: asyncio.Queue[bytes | None], msg: bytes | None) -> None:
    while True:
        try:
            q.put_nowait(msg)
            return
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()


_STAMPED = frozenset({"states", "slos", "incidents"})
"""The payloads that carry their build time ``at``."""


def _shown(what: str, payload: Any) -> Any:
    """What the page shows of ``what``'s payload, to compare with the last one sent: not the
    build time (``at`` changes on every build), nor the states' timelines' two ends (they move
    with the clock)."""
    if what not in _STAMPED:
        return payload
    key = {k: v for k, v in payload.items() if k != "at"}
    if what == "states":
        key["timelines"] = [{**t, "x": t["x"][1:-1]} for t in payload["timelines"]]
    return key
