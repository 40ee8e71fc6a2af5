"""A small real service loop for the dashboard tests, run as a separate process.

It calls a dependency through a real pipeline (circuit breaker, bulkhead, adaptive limit, rate
limiter) from several threads, records the SLIs of the spec's SLOs into the store with the real
SLIRecorder, and publishes the policy states with the real Publisher.  The dependency fails while
the file ``<control>`` exists, so a test can break it and watch the breaker open.

    python writer.py STORE SPEC CONTROL [--seconds N] [--history MINUTES]

``--history`` first records that many past minutes of traffic (about 0.3% errors) through the
recorder's ``record(..., at=...)`` API, so the burn-down charts have a past.  The process prints
``ready`` once it publishes, and stops cleanly on SIGTERM or after ``--seconds``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from buttress import Pipeline
from buttress.dashboard.publish import Publisher
from buttress.errors import Rejected
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import AIMD, AdaptiveLimit
from buttress.policies.ratelimit import RateLimiter
from buttress.slo.load import load_slos
from buttress.slo.recorder import SLIRecorder
from buttress.slo.store import SLIStore


class DependencyDown(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("spec")
    ap.add_argument("control")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--history", type=int, default=0)
    ap.add_argument("--threads", type=int, default=3)
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    slos = load_slos(args.spec)
    store = SLIStore(args.store)
    recorder = SLIRecorder(store, slos, flush_every=0.5)
    now = time.time()
    for k in range(args.history, 0, -1):
        for slo in slos:
            recorder.record(slo.name, good=998 if k % 7 else 990, total=1000, at=now - k * 60)
    recorder.flush()

    breaker = CircuitBreaker(
        name="payments-breaker",
        minimum_calls=10,
        window_size=20,
        failure_rate_threshold=0.5,
        break_duration=3.0,
        permitted_calls_in_half_open=2,
    )
    pipeline = (
        Pipeline.builder("payments")
        .add(breaker)
        .add(RateLimiter(5000, name="payments-rate"))
        .add(AdaptiveLimit(AIMD(initial_limit=8, min_limit=2, max_limit=16), name="payments-limit"))
        .add(Bulkhead(4, max_queue=0, name="payments-bulkhead"))
        .build()
    )
    publisher = Publisher(args.store, interval=0.1, source=f"writer-{os.getpid()}")
    publisher.watch(pipeline)
    recorder.attach()
    recorder.start()
    publisher.start()
    print("ready", flush=True)

    def dependency() -> str:
        time.sleep(0.002)
        if os.path.exists(args.control):
            raise DependencyDown("payments is down")
        return "ok"

    def worker() -> None:
        while not stop.is_set():
            try:
                pipeline.call(dependency)
            except (DependencyDown, Rejected):
                time.sleep(0.005)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.threads)]
    for t in threads:
        t.start()
    stop.wait(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    publisher.close()
    recorder.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
