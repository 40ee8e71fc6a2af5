"""Dashboard benchmarks: what publishing costs the guarded call, and how fast the page's data is.

Groups:

* ``dashboard.call``: one successful call through a pipeline with a closed circuit breaker and a
  bulkhead, with nobody listening (baseline) and with a :class:`~buttress.dashboard.Publisher`
  watching it (its listener makes the pipeline take the observed path; the store is never touched
  on the call path).
* ``dashboard.publish``: one :meth:`Publisher.publish_now` of 5 watched policies, with no change
  (nothing written) and with every figure changed (one SQLite transaction).
* ``dashboard.payload``: building the states payload (50 components, 1,000 events) and the SLO
  board (2 SLOs, 30 days of per-minute data), fully evaluated and reused within a settled minute --
  what one SSE refresh costs the server.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buttress import Pipeline
from buttress.dashboard.feed import FeedWriter, Update
from buttress.dashboard.publish import Publisher
from buttress.dashboard.state import DashboardConfig, DashboardData
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.bulkhead import Bulkhead
from buttress.slo.store import SLIStore


def _best(fn: Callable[[], Any], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def _pipeline(name: str) -> Pipeline:
    return Pipeline([CircuitBreaker(name="brk"), Bulkhead(8, name="bh")], name=name)


SPEC = """version: 1
service: shop
slos:
  - name: a
    objective: 99.9
    window: 30d
    sli: {kind: ratio, pipeline: a}
  - name: b
    objective: 99
    window: 30d
    sli: {kind: latency, pipeline: b, threshold: 100ms}
"""


def run(quick: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    n, rep = (20_000, 3) if quick else (100_000, 5)

    def ok() -> int:
        return 1

    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "s.db"
        bare = _pipeline("bare")
        watched = _pipeline("watched")
        pub = Publisher(db, source="bench")
        pub.watch(watched)
        t_bare = _best(lambda: bare.call(ok), n, rep)
        t_watched = _best(lambda: watched.call(ok), n, rep)
        rows += [
            {
                "group": "dashboard.call",
                "name": "breaker+bulkhead, no listener",
                "value": t_bare * 1e9,
                "unit": "ns/call",
                "baseline": True,
                "lower_is_better": True,
            },
            {
                "group": "dashboard.call",
                "name": "breaker+bulkhead, Publisher watching",
                "value": t_watched * 1e9,
                "unit": "ns/call",
                "baseline": False,
                "lower_is_better": True,
                "note": "observed path: outcome events built; no I/O on the call path",
            },
        ]
        for i in range(3):
            pub.watch(_pipeline(f"p{i}"))
        pub.publish_now()
        t_idle = _best(pub.publish_now, 200 if quick else 1000, rep)
        bhs = [p for p in watched.policies if isinstance(p, Bulkhead)]

        def changed() -> None:
            bhs[0].try_acquire()
            pub.publish_now()
            bhs[0].release()

        t_changed = _best(changed, 100 if quick else 400, rep)
        pub.close()
        rows += [
            {
                "group": "dashboard.publish",
                "name": "publish_now, nothing changed",
                "value": t_idle * 1e6,
                "unit": "us",
                "baseline": True,
                "lower_is_better": True,
            },
            {
                "group": "dashboard.publish",
                "name": "publish_now, a figure changed (one write)",
                "value": t_changed * 1e6,
                "unit": "us",
                "baseline": False,
                "lower_is_better": True,
            },
        ]

        db2 = Path(d) / "board.db"
        now = time.time()
        with FeedWriter(db2, source="bench") as w:
            w.write(
                [
                    Update("bulkhead", "p", f"bh{i}", "ok", "ok", {"inflight": i}, now, "state")
                    for i in range(50)
                ]
            )
            for i in range(1000):
                w.write([Update("circuit_breaker", "p", "brk", "open", "bad", {}, now - i, "x")])
        minute = int(now // 60)
        with SLIStore(db2) as s:
            for name in ("a", "b"):
                s.add([(name, minute - k, 999, 1000) for k in range(1, 30 * 1440)])
        spec = Path(d) / "r.yaml"
        spec.write_text(SPEC)
        data = DashboardData(DashboardConfig(store=db2, spec=spec, settle=0.0))
        t_states = _best(data.states_payload, 20 if quick else 100, rep)
        t_slos = _best(lambda: data.slos_payload(time.time()), 3 if quick else 10, rep)
        data.slos_payload()
        t_cached = _best(data.slos_payload, 20 if quick else 100, rep)
        data.close()
        rows += [
            {
                "group": "dashboard.payload",
                "name": "states payload (50 components, 1,000 events)",
                "value": t_states * 1e3,
                "unit": "ms",
                "baseline": True,
                "lower_is_better": True,
            },
            {
                "group": "dashboard.payload",
                "name": "SLO board (2 SLOs x 30 days of minutes)",
                "value": t_slos * 1e3,
                "unit": "ms",
                "baseline": False,
                "lower_is_better": True,
                "note": "full evaluation: at a minute boundary and while the minute settles",
            },
            {
                "group": "dashboard.payload",
                "name": "SLO board, rest of the minute (filling minute only)",
                "value": t_cached * 1e3,
                "unit": "ms",
                "baseline": False,
                "lower_is_better": True,
            },
        ]
    return rows


if __name__ == "__main__":
    for r in run(quick=True):
        print(f"{r['group']:20} {r['name']:48} {r['value']:10.2f} {r['unit']}")
