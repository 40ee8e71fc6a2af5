"""The web app on a real uvicorn (127.0.0.1, free port): pages, static files, JSON, SSE."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from buttress.dashboard.feed import FeedWriter, Update
from buttress.dashboard.sse import format_event
from buttress.dashboard.state import DashboardConfig
from buttress.errors import ButtressError
from buttress.slo.store import SLIStore

from .conftest import SPEC


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """Parse a text/event-stream into (event, data) pairs."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    with SLIStore(db) as s:
        now = int(time.time() // 60)
        s.add([("checkout-availability", now - k, 99, 100) for k in range(1, 30)])
        s.add([("orphan-sli", now - 1, 5, 10)])
    return db


def test_page_static_files_and_snapshot(
    store: Path, journals_dir: Path, served_factory: Any
) -> None:
    s = served_factory(DashboardConfig(store=store, spec=SPEC, journals=journals_dir))
    with httpx.Client(base_url=s.url, timeout=10) as c:
        page = c.get("/")
        assert 200 == page.status_code
        assert '<script src="/static/vendor/uPlot.iife.min.js"></script>' in page.text
        assert "https://" not in page.text  # nothing from a CDN
        js = c.get("/static/vendor/uPlot.iife.min.js")
        assert 200 == js.status_code
        assert "javascript" in js.headers["content-type"]
        assert js.text.startswith("/*! https://github.com/leeoniya/uPlot")
        for f in ("/static/charts.js", "/static/dashboard.js", "/static/vendor/uPlot.min.css"):
            assert 200 == c.get(f).status_code, f
        snap = c.get("/api/snapshot").json()
        names = [e["name"] for e in snap["slos"]["slos"]]
        assert ["checkout-availability", "checkout-latency"] == names
        assert ["orphan-sli"] == [u["name"] for u in snap["slos"]["unmeasured"]]
        assert "checkout" == snap["assessment"]["summary"]["journeys"][0]["name"]
        verdicts = sorted(r["verdict"] for r in snap["journals"]["runs"])
        assert ["deviated", "passed", "unreadable"] == verdicts
        j = c.get("/api/journals/steady.json")
        assert "completed" == j.json()["status"]
        assert 404 == c.get("/api/journals/../s.db").status_code
        assert 404 == c.get("/api/journals/%2e%2e/shop.json").status_code
        assert 404 == c.get("/api/journals/nope.json").status_code
        assert "pass" == c.get("/healthz").json()["status"]


def test_sse_streams_a_state_change_within_a_second(store: Path, served_factory: Any) -> None:
    s = served_factory(DashboardConfig(store=store, spec=SPEC, poll=0.05))
    writer = FeedWriter(store, source="svc")
    got: dict[str, Any] = {}
    seen = threading.Event()
    first = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", s.url + "/api/stream", timeout=20) as r:
            got["type"] = r.headers["content-type"]
            for ev, data in sse_events(r.iter_lines()):
                got.setdefault("kinds", []).append(ev)
                if ev == "states":
                    first.set()
                    opened = [x for x in data["states"] if x["state"] == "open"]
                    if opened:
                        got["opened"] = opened[0]
                        got["t"] = time.monotonic()
                        seen.set()
                        return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    assert first.wait(10)
    t0 = time.monotonic()
    writer.write(
        [
            Update(
                "circuit_breaker", "payments", "brk", "open", "bad", {"rejected": 3}, 1.0, "opened"
            )
        ]
    )
    assert seen.wait(5), got
    assert got["t"] - t0 < 1.0
    assert got["type"].startswith("text/event-stream")
    assert {"assessment", "states", "slos"} <= set(got["kinds"])
    assert ("payments", "brk", 3) == (
        got["opened"]["scope"],
        got["opened"]["name"],
        got["opened"]["fields"]["rejected"],
    )
    t.join(5)
    writer.close()


def test_format_event() -> None:
    assert b'id: 7\nevent: states\ndata: {"a":[1,null]}\n\n' == format_event(
        "states", {"a": [1, None]}, id=7
    )
    with pytest.raises(ValueError, match="line break"):
        format_event("a\nb", {})
    with pytest.raises(ValueError):
        format_event("x", {"a": float("nan")})


def test_bad_configuration_is_refused_at_start(tmp_path: Path, store: Path) -> None:
    from buttress.dashboard.app import create_app
    from buttress.errors import SpecError

    with pytest.raises(ButtressError, match="no such store"):
        create_app(DashboardConfig(store=tmp_path / "missing.db"))
    with pytest.raises(ButtressError, match="is a directory"):
        create_app(DashboardConfig(store=tmp_path))
    with pytest.raises(ButtressError, match=r"--journals .*no such directory"):
        create_app(DashboardConfig(store=store, journals=tmp_path / "nope"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nservice: s\nslos:\n  - name: x\n    objective: 100\n"
        "    sli: {kind: ratio, pipeline: p}\n"
    )
    with pytest.raises(SpecError) as e:
        create_app(DashboardConfig(store=store, spec=bad))
    assert (str(bad), 5, "slos[0].objective") == (e.value.file, e.value.line, e.value.field)
