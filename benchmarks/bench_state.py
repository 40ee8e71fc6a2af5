"""Shared state on Redis: the cost of a decision, and how exactly a fleet keeps one rate limit.

Starts its own ``redis-server`` (no persistence) on a free 127.0.0.1 port and stops it.

Groups:

* ``state-redis-ratelimit``: decisions per second from one process.  Baseline: bare redis-py
  calling the same script with the same arguments (``evalsha``, one round trip each, the round trip
  our store makes without our code around it); row: :class:`RateLimiter` on a
  :class:`RedisBucketStore` (``try_acquire``: one ``EVALSHA`` of the GCRA script, never refused:
  the rate is huge); a bare ``INCR`` for reference; the limits library's ``RedisStorage`` with
  its three strategies (the peers a user would pick), each with what it guarantees.
* ``state-redis-breaker``: decisions (a whole guarded call) per second.  Since issue 20 a call on
  the success path is one round trip: its success travels with the next decision.  Baseline: bare
  redis-py making that same ``evalsha`` per decision; row: a :class:`CircuitBreaker` on a
  :class:`RedisBreakerStore` in a pipeline, calling a function that returns at once; two bare
  ``INCR`` per decision for reference; pybreaker's Redis storage (the
  peer a user would pick), with what it guarantees.  Every Redis row says how many round trips a
  call costs (the server's own command counter).
* ``state-memory``: the default in-memory stores, ns per call (the path that must not get slower).
* ``state-fleet-accuracy``: 4 processes saturate one shared limit of 500 calls/s (burst 5) for
  10 s (2 s with ``--quick``); baseline the limit, row the observed fleet-wide rate.

**Method, for a noisy machine.**  The contenders of a group run in interleaved rounds (41 of 500
calls; 21 of 150 with ``--quick``): each round runs every contender once, in an order rotated from
round to round, so a burst of load from elsewhere hits one round of each rather than every round of
one, and rounds are short, so the rounds paired below see the same machine.  A rate is the median
round's; the share of bare redis-py is the median over rounds of the *paired* ratio
``t_bare / t_ours`` of rounds run next to each other, so drift between rounds cancels.  The note on
each Redis row says whether the issue's target (at least 80%) is met, and the fleet row whether the
observed rate is within 2% of the limit.  The in-memory rows are CPU time (median round), since
there is no I/O in them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

from _timing import dist_version
from buttress import CircuitBreaker, Pipeline, RateLimiter
from buttress.state import RedisState

RUNS, QUICK_RUNS = 41, 21
N, QUICK_N = 500, 150
TARGET_SHARE = 0.80
"""Issue 8: decisions per second at least 80% of bare redis-py making the same round trips."""


class _Server:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        c = redis.Redis(port=self.port)
        for _ in range(500):
            try:
                c.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.01)
        c.close()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


Sample = tuple[float, float]
"""One contender's round: (wall seconds, this process's CPU seconds) per call."""


def _interleaved(fns: list[Callable[[], Any]], n: int, runs: int) -> list[list[Sample]]:
    """``runs`` rounds; each runs every function ``n`` times, in an order rotated from round to
    round (none always goes first or always follows the same one), so a noisy moment hits one
    round of each rather than every round of one."""
    out: list[list[Sample]] = [[] for _ in fns]
    order = list(range(len(fns)))
    for r in range(runs):
        k = r % len(order)
        for i in order[k:] + order[:k]:
            fn = fns[i]
            c0, t0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                fn()
            t1, c1 = time.perf_counter(), time.process_time()
            out[i].append(((t1 - t0) / n, (c1 - c0) / n))
    return out


def _rate(samples: list[Sample]) -> float:
    """Calls per second: the median round's."""
    return 1.0 / statistics.median(w for w, _ in samples)


def _paired(ours: list[Sample], base: list[Sample]) -> float:
    """Our rate as a fraction of the baseline's: the median over rounds of ``t_base / t_ours``,
    each pair from rounds run next to each other (the machine's drift between rounds cancels)."""
    return statistics.median(b[0] / o[0] for o, b in zip(ours, base, strict=True))


def _verdict(share: float) -> str:
    met = "met" if share >= TARGET_SHARE else "NOT met"
    return f"{share:.0%} of bare redis-py (paired rounds); target >= {TARGET_SHARE:.0%}: {met}"


def _ns(fn: Callable[[], Any], n: int, runs: int) -> float:
    """ns per call: the median round's CPU time (all in this process, no I/O)."""
    (samples,) = _interleaved([fn], n, runs)
    return statistics.median(c for _, c in samples) * 1e9


def _round_trips(bare: redis.Redis, fn: Callable[[], Any], n: int = 200) -> float:
    """Requests the server read per call of ``fn`` (its own ``total_reads_processed`` counter,
    less the ``INFO`` that reads it; commands run inside a script are not requests): the round
    trips a decision costs."""

    def count() -> int:
        return int(bare.info("stats")["total_reads_processed"])

    c0 = count()
    for _ in range(n):
        fn()
    return (count() - c0 - 1) / n


def _limits_peers(url: str) -> list[tuple[str, Callable[[], Any], str]]:
    """The limits library's Redis storage, as a user would pick it: ``(name, call, guarantee)``."""
    try:
        from limits import RateLimitItemPerSecond, storage, strategies
    except ImportError:
        return []
    item = RateLimitItemPerSecond(10**9)
    v = dist_version("limits")
    out = []
    for label, cls, what in (
        (
            "moving window",
            strategies.MovingWindowRateLimiter,
            "exact sliding log (a Lua script, atomic); O(limit) memory per key",
        ),
        (
            "fixed window",
            strategies.FixedWindowRateLimiter,
            "atomic INCR+EXPIRE script; up to 2x the limit across a window edge",
        ),
        (
            "sliding window counter",
            strategies.SlidingWindowCounterRateLimiter,
            "two fixed windows weighted (a Lua script, atomic); approximate",
        ),
    ):
        hit = cls(storage.RedisStorage(url)).hit

        def call(hit: Callable[..., bool] = hit, key: str = f"bench-limits-{label}") -> None:
            hit(item, key)

        out.append((f"limits {v} {label} (RedisStorage)", call, what))
    return out


def _pybreaker_peer(client: redis.Redis) -> Callable[[], Any] | None:
    """pybreaker's breaker on its Redis storage, guarding the same instant call."""
    try:
        import pybreaker
    except ImportError:
        return None
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, client, namespace="bench-pyb")
    breaker = pybreaker.CircuitBreaker(fail_max=10**6, state_storage=storage)

    def call() -> None:
        breaker.call(int)

    return call


PYBREAKER_GUARANTEES = (
    "consecutive-failure count, no rate window, no slow calls; state read and counters written "
    "as separate commands (no script, no transaction), so concurrent processes can race past "
    "fail_max and every process may probe at once in half-open"
)


def _fleet_worker(url: str, seconds: float, start: Any, out: Any) -> None:
    rl = RateLimiter(500, burst=5, store=RedisState(url, service="fleet").bucket_store("rl"))
    start.wait()
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += rl.try_acquire()
    out.put(n)


def _fleet(url: str, seconds: float) -> float:
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_fleet_worker, args=(url, seconds, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 30) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def run(quick: bool = False) -> list[dict[str, Any]]:
    runs, n = (QUICK_RUNS, QUICK_N) if quick else (RUNS, N)
    server = _Server()
    rows: list[dict[str, Any]] = []
    try:
        bare = redis.Redis.from_url(server.url)
        state = RedisState(server.url, service="bench")

        def incr() -> None:
            bare.incr("bench:bare")

        def incr2() -> None:
            bare.incr("bench:bare")
            bare.incr("bench:bare")

        # The same scripts with the same arguments, called straight through redis-py: the round
        # trips our stores make, without our code around them.
        rl_store = state.bucket_store("rl")
        rl_sha = state._link.scripts["ratelimit"].sha
        rl_key = rl_store.redis_key(None)
        inc, tol = 1e-9, 1.0

        def bare_gcra() -> None:
            bare.evalsha(rl_sha, 1, rl_key, b"", inc, tol, 0.0)

        rl = RateLimiter(1e9, burst=10**9, store=rl_store)
        rl.try_acquire()  # loads the script
        peers = _limits_peers(server.url)
        for _, call, _ in peers:
            call()  # loads its scripts
        base1, ours1, trivial1, *peer1 = _interleaved(
            [bare_gcra, rl.try_acquire, incr, *(c for _, c, _ in peers)], n, runs
        )
        g = "state-redis-ratelimit"
        rt_ours = _round_trips(bare, rl.try_acquire)
        rows += [
            _row(
                g,
                "redis-py evalsha, same script (1 round trip)",
                _rate(base1),
                "calls/s",
                True,
                f"median of {runs} interleaved rounds",
            ),
            _row(
                g,
                "RateLimiter on RedisBucketStore",
                _rate(ours1),
                "calls/s",
                False,
                _verdict(_paired(ours1, base1))
                + f"; {rt_ours:.2f} round trips per call; GCRA in one script (atomic, exact)",
            ),
            _row(g, "redis-py INCR (1 round trip, trivial)", _rate(trivial1), "calls/s", False),
        ]
        for (name, call, what), samples in zip(peers, peer1, strict=True):
            rt = _round_trips(bare, call)
            rows.append(
                _row(g, name, _rate(samples), "calls/s", False, f"{rt:.2f} round trips; {what}")
            )
        br = CircuitBreaker(store=state.breaker_store("cb"), minimum_calls=10**6)
        pipe = Pipeline([br], name="bench")
        store = br.machine.store
        pipe.call(int)  # loads the script
        bkeys = store._keys  # type: ignore[attr-defined]
        bargs = store._args  # type: ignore[attr-defined]
        bsha = state._link.scripts["breaker"].sha

        last = [b""]

        def bare_breaker() -> None:
            # The decision, carrying the previous call's success (as the store sends it).
            r = bare.evalsha(bsha, 2, *bkeys, b"acquire", b"", *bargs, last[0])
            last[0] = b"%d:1" % r[1]

        def guarded() -> None:
            pipe.call(int)

        pyb = _pybreaker_peer(bare)
        extra = [] if pyb is None else [pyb]
        for fn in extra:
            fn()
        base2, ours2, trivial2, *peer2 = _interleaved(
            [bare_breaker, guarded, incr2, *extra], n, runs
        )
        g = "state-redis-breaker"
        rt_guarded = _round_trips(bare, guarded)
        rows += [
            _row(
                g,
                "redis-py evalsha, same script: decision + previous success (1 round trip)",
                _rate(base2),
                "decisions/s",
                True,
                f"median of {runs} interleaved rounds",
            ),
            _row(
                g,
                "CircuitBreaker on RedisBreakerStore",
                _rate(ours2),
                "decisions/s",
                False,
                _verdict(_paired(ours2, base2))
                + f"; {rt_guarded:.2f} round trips per call"
                + (
                    f"; paired {_paired(ours2, peer2[0]):.2f}x pybreaker's rate"
                    f" (target >= 1: {'met' if _paired(ours2, peer2[0]) >= 1 else 'NOT met'})"
                    if peer2
                    else ""
                )
                + "; failure and slow-call rates over a shared window, exact half-open probe "
                "count fleet-wide, every step one script (atomic)",
            ),
            _row(
                g,
                "redis-py 2 x INCR (2 round trips, trivial)",
                _rate(trivial2),
                "decisions/s",
                False,
            ),
        ]
        if pyb is not None:
            rt = _round_trips(bare, pyb)
            name = f"pybreaker {dist_version('pybreaker')} on CircuitRedisStorage"
            note = f"{rt:.2f} round trips per call; {PYBREAKER_GUARANTEES}"
            rows.append(_row(g, name, _rate(peer2[0]), "decisions/s", False, note))
        g = "state-memory"
        mem_pipe = Pipeline([CircuitBreaker()], name="mem")
        mem_rl = RateLimiter(1e12, burst=10**9)
        rows += [
            _row(g, "bare call", _ns(int, n * 25, runs), "ns/call", True, lower=True),
            _row(
                g,
                "CircuitBreaker (memory) in a pipeline",
                _ns(lambda: mem_pipe.call(int), n * 25, runs),
                "ns/call",
                False,
                lower=True,
            ),
            _row(
                g,
                "RateLimiter.try_acquire (memory)",
                _ns(mem_rl.try_acquire, n * 25, runs),
                "ns/call",
                False,
                lower=True,
            ),
        ]
        seconds = 2.0 if quick else 10.0
        observed = _fleet(server.url, seconds)
        g = "state-fleet-accuracy"
        rows += [
            _row(g, "limit (500/s, burst 5)", 500.0, "calls/s", True),
            _row(
                g,
                f"observed, 4 processes, {seconds:g} s",
                observed,
                "calls/s",
                False,
                f"{(observed - 500) / 500:+.2%} from the limit; target within 2%: "
                + ("met" if abs(observed - 500) <= 0.02 * 500 else "NOT met"),
            ),
        ]
        bare.close()
        state.close()
    finally:
        server.stop()
    return rows


def _row(
    group: str,
    name: str,
    value: float,
    unit: str,
    baseline: bool,
    note: str = "",
    *,
    lower: bool = False,
) -> dict[str, Any]:
    return {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "lower_is_better": lower,
        "note": note,
    }


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(f"{r['group']:24} {r['name']:44} {r['value']:>12.1f} {r['unit']:12} {r['note']}")
    os._exit(0)
