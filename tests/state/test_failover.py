"""The master is SIGKILLed under load, with Redis Sentinel and with Redis Cluster.

Four processes make breaker, rate-limiter and retry-budget decisions through one shared state while
the test kills the master its keys live on.  Each test checks that:

* no exception ever reaches the callers (the policies decide by ``on_unavailable`` meanwhile);
* every process decides through Redis again within the failover time (measured by the test as
  kill -> a promoted replica that takes writes) plus one ``retry_interval``, and well under 10 s;
* the promoted replica, which had none of the scripts, has them all afterwards (``NOSCRIPT`` was
  answered by sending each once) and holds the fleet's state;
* after the failover the fleet-wide rate limit holds within 2% over a 3 s window: never above
  the limit, and within 2% of what one in-process limiter would admit for the same requests;
* during the outage the processes' local buckets (``local_share`` 1/4) keep the fleet to it too.

Run alone (``-m serial``): the bounds are about a failover's timing.  ``-s`` prints the figures.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from buttress import Pipeline
from buttress.errors import CircuitOpen
from buttress.events import Event, add_listener
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.ratelimit import RateLimiter
from buttress.state import RedisState, StateRestored, StateUnavailable
from buttress.state.redis.clients import MASTER_CHECK_INTERVAL
from buttress.testing import FakeClock

from .conftest import LIVE_TIMEOUT
from .ha import MASTER_NAME, ClusterSetup, SentinelSetup, wait_for

PROCS = 4
CTX = mp.get_context("fork")
RATE = 200.0
BURST = 5
RETRY_INTERVAL = 0.2
BEFORE_KILL = 1.0
"""Seconds of shared decisions before the kill."""
WINDOW = 3.0
"""The window after the failover over which the fleet's admissions are counted."""
SETTLE = 0.5
"""Seconds after the last process resumed before that window opens."""
KINDS = {"circuit_breaker", "rate_limiter", "retry_budget"}


def _keys(service: str) -> list[str]:
    """The Redis keys of the workers' breaker, rate limiter and retry budget."""
    return [
        f"buttress:{{{service}/api/cb}}:b",
        f"buttress:{service}/api/rl:rl",
        f"buttress:{{{service}/api/retry}}:rb",
    ]


BYSTANDER = "other/rl"
"""A rate limiter each worker also asks through a state of its own (its own connection, its own
outage bookkeeping); on a cluster its key is on a master that survives."""


@dataclass
class Run:
    """What one worker saw: one row per decision round."""

    rows: list[tuple[float, float, bool, bool]] = field(default_factory=list)
    """(wall time before, wall time after, admitted by the rate limiter, every store shared)."""
    unexpected: list[str] = field(default_factory=list)
    events: set[str] = field(default_factory=set)
    retries: int = 0
    requests: int = 0
    bystander_slowest: float = 0.0
    bystander_down: list[float] = field(default_factory=list)
    """The wall times of the bystander's decisions made without Redis."""
    bystander_shared_at_end: bool = False


def _worker(
    connect: dict[str, Any], service: str, index: int, start: Any, stop: Any, back: Any, out: Any
) -> None:
    state = RedisState(
        **connect, service=service, timeout=LIVE_TIMEOUT, retry_interval=RETRY_INTERVAL
    )
    rl = RateLimiter(RATE, burst=BURST, store=state.bucket_store("api/rl", local_share=0.25))
    breaker = CircuitBreaker(store=state.breaker_store("api/cb"), minimum_calls=50)
    budget = state.retry_budget("api/retry", ratio=0.2)
    pipe = Pipeline([breaker], name="api")
    stores = (rl.store, breaker.machine.store, budget)
    apart = RedisState(
        **connect, service=service, timeout=LIVE_TIMEOUT, retry_interval=RETRY_INTERVAL
    )
    bystander = RateLimiter(1e6, store=apart.bucket_store(BYSTANDER))
    run = Run()

    def listen(e: Event) -> None:
        if isinstance(e, StateUnavailable | StateRestored):
            run.events.add(f"{e.policy}:{e.kind}")

    add_listener(listen)
    # connected before the clock starts (a cluster client reads its maps)
    assert state.ping() and apart.ping()
    start.wait()
    i = 0
    fell_back = False
    while not stop.is_set():
        t0 = time.time()
        admitted = False
        try:
            admitted = rl.try_acquire()
            pipe.call(lambda: None)
            budget.on_request(time.monotonic())
            run.requests += 1
            if i % 5 == 0:
                run.retries += budget.try_withdraw(time.monotonic())
        except CircuitOpen:
            run.unexpected.append("CircuitOpen (only successes were recorded)")
        except BaseException as exc:  # anything at all reaching the caller fails the test
            run.unexpected.append(repr(exc))
        _ask_bystander(bystander, run)
        shared = not any(s.degraded for s in stores)  # type: ignore[attr-defined]
        run.rows.append((t0, time.time(), admitted, shared))
        fell_back = fell_back or not shared
        if fell_back and shared and not back[index]:
            back[index] = time.time()  # tells the test this process is on Redis again
        i += 1
        time.sleep(0.0005)
    run.bystander_shared_at_end = not bystander.store.degraded  # type: ignore[attr-defined]
    state.close()
    apart.close()
    out.put(run)


def _ask_bystander(bystander: RateLimiter, run: Run) -> None:
    t0 = time.time()
    try:
        bystander.try_acquire()
    except BaseException as exc:
        run.unexpected.append(f"bystander: {exc!r}")
    run.bystander_slowest = max(run.bystander_slowest, time.time() - t0)
    if bystander.store.degraded:  # type: ignore[attr-defined]
        run.bystander_down.append(t0)


@dataclass
class Figures:
    failover: float
    resumed: list[float]
    worst_decision: float
    admitted: int
    ideal: int
    """What one in-process limiter would have admitted in the window, asked at the same times."""
    outage: tuple[float, int]
    """While every process decided locally: how long, and how many the fleet admitted."""

    @property
    def limit(self) -> float:
        return RATE * WINDOW

    @property
    def limit_error(self) -> float:
        """Against the limit itself (the bound that must hold)."""
        return (self.admitted - self.limit) / self.limit

    @property
    def ideal_error(self) -> float:
        """Against one limiter asked the same (shows the fleet got its rate: one shared limit)."""
        return (self.admitted - self.ideal) / self.limit


def _fleet_under_failover(
    connect: dict[str, Any], service: str, kill: Callable[[], Callable[[], bool]]
) -> tuple[list[Run], float, float]:
    """Run the workers, kill the master after ``BEFORE_KILL`` s (``kill`` returns the check
    that the failover is done), stop ``SETTLE + WINDOW`` s after it is; the runs, the kill's wall
    time and the failover's duration."""
    start, stop, out = CTX.Barrier(PROCS + 1), CTX.Event(), CTX.Queue()
    back = CTX.Array("d", PROCS)
    procs = [
        CTX.Process(target=_worker, args=(connect, service, i, start, stop, back, out), daemon=True)
        for i in range(PROCS)
    ]
    for p in procs:
        p.start()
    try:
        start.wait(timeout=20)
        time.sleep(BEFORE_KILL)
        killed_at = time.time()
        done = kill()
        wait_for("the failover", done, timeout=15)
        failover = time.time() - killed_at
        wait_for("every process back on Redis", lambda: all(back[:]), timeout=15)
        time.sleep(SETTLE + WINDOW + 0.3)
        stop.set()
        runs = [out.get(timeout=30) for _ in procs]
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    return runs, killed_at, failover


def _figures(runs: list[Run], killed_at: float, failover: float) -> Figures:
    resumed: list[float] = []
    went_down: list[float] = []
    for run in runs:
        assert [] == run.unexpected  # nothing ever reached a caller
        assert KINDS == {e.split(":")[0] for e in run.events}
        assert {"unavailable", "restored"} == {e.split(":")[1] for e in run.events}
        after = [r for r in run.rows if r[0] >= killed_at]
        first_down = next(i for i, r in enumerate(after) if not r[3])
        back = next(i for i in range(first_down, len(after)) if after[i][3])
        # once back, shared for good: every later round decided through Redis
        assert all(r[3] for r in after[back:]), "fell back again after the failover"
        resumed.append(after[back][0] - killed_at)
        went_down.append(after[first_down][0] - killed_at)
        assert after[-1][0] - after[back][0] > SETTLE + WINDOW  # and it kept deciding
        assert 0 < run.retries <= run.requests
    worst = max(r[1] - r[0] for run in runs for r in run.rows)
    lo = killed_at + max(resumed) + SETTLE
    hi = lo + WINDOW
    admitted = sum(1 for run in runs for r in run.rows if r[2] and lo <= r[0] < hi)
    # What one in-process limiter would have admitted for the same requests: on a busy 2-core
    # machine all four processes are sometimes off the CPU together, and a bucket nobody asks
    # loses what it cannot hold.  That is the machine's doing, not the limiter's.
    asks = sorted(r[0] for run in runs for r in run.rows if r[0] >= killed_at + max(resumed))
    clock = FakeClock(asks[0])
    reference = RateLimiter(RATE, burst=BURST, clock=clock)
    ideal = 0
    for t in asks:
        clock.set(t)
        ideal += reference.try_acquire() and lo <= t < hi
    # During the outage each process decides alone at local_share = 1/4 of the rate.
    down_lo, down_hi = killed_at + max(went_down), killed_at + min(resumed)
    local = sum(1 for run in runs for r in run.rows if r[2] and down_lo < r[0] < down_hi)
    outage = (down_hi - down_lo, local)
    return Figures(failover, resumed, worst, admitted, ideal, outage)


def _check(fig: Figures, label: str) -> None:
    print(
        f"\n{label}: failover {fig.failover:.2f} s; decisions through Redis again after "
        f"{min(fig.resumed):.2f}-{max(fig.resumed):.2f} s; slowest decision round "
        f"{fig.worst_decision * 1000:.0f} ms; {fig.admitted} admitted in {WINDOW:g} s after it "
        f"at {RATE:g}/s (limit {fig.limit:.0f}: {fig.limit_error:+.2%}; one limiter asked the "
        f"same: {fig.ideal}, {fig.ideal_error:+.2%}); during the outage {fig.outage[1]} "
        f"admitted in {fig.outage[0]:.2f} s locally at local_share 1/{PROCS}"
    )
    # Back on Redis within the failover time and one retry interval (plus scheduling slack on a
    # loaded 2-core machine), and well under 10 s whatever the machine.
    assert max(fig.resumed) <= fig.failover + RETRY_INTERVAL + 1.0
    assert max(fig.resumed) < 10.0
    # No caller was held up by the failover: a round's decisions meet at most refused connects,
    # a slot-map refresh or redis-py's 0.25 s CLUSTERDOWN wait; the rest is the machine (rounds of
    # several hundred ms are seen on a busy 2-core machine with no failover at all).
    assert fig.worst_decision < 3.0
    # The fleet-wide limit holds within 2% after the failover: never above it (GCRA: at most
    # burst + rate * window), and the fleet was admitted what one limiter would have admitted
    # for the same requests, within 2% of the limit.
    assert fig.admitted <= fig.limit + BURST <= 1.02 * fig.limit
    assert abs(fig.ideal_error) <= 0.02
    # While deciding locally the fleet still keeps to the limit: each process at a quarter of it,
    # with a burst of its own, and one decision each at the window's edges (a row's time is read
    # on the wall clock before its decision, the limiter's on the monotonic clock during it; CI
    # once counted 387 against 386.8).
    span, local = fig.outage
    assert local <= RATE * span + PROCS * (BURST + 1)


def _scripts_on(client: redis.Redis) -> list[bool]:
    from buttress.state.redis.link import Script

    shas = [Script(f"{n}.lua").sha for n in ("breaker", "ratelimit", "budget")]
    return [bool(x) for x in client.script_exists(*shas)]


@pytest.mark.serial
def test_sentinel_failover_under_load() -> None:
    service = f"s{uuid.uuid4().hex[:10]}"
    with SentinelSetup() as ha:
        replica = redis.Redis(host="127.0.0.1", port=ha.replica_port, socket_timeout=2)
        try:
            assert [False] * 3 == _scripts_on(replica)  # a replica gets no scripts

            def kill() -> Callable[[], bool]:
                old = ha.kill_master()
                return lambda: ha.promoted(old)

            connect = {"sentinels": ha.sentinels, "master": MASTER_NAME}
            runs, killed_at, failover = _fleet_under_failover(connect, service, kill)
            assert ("127.0.0.1", ha.replica_port) == ha.master_address()
            assert [True] * 3 == _scripts_on(replica)  # NOSCRIPT answered: sent once each
            assert replica.exists(_keys(service)[0])  # the breaker lives on the new master
        finally:
            replica.close()
    _check(_figures(runs, killed_at, failover), "sentinel")


def _service_on_one_master(ha: ClusterSetup) -> tuple[str, int]:
    """A service name whose three keys all live on one master (the rate limiter's key has no
    hash tag, so it is placed by its own hash), and that master's port; the bystander's key is
    on another master."""
    by_slot: dict[int, int] = {}
    for n in ha.nodes():
        for lo, hi in n["slots"]:
            for s in range(lo, hi + 1):
                by_slot[s] = n["port"]
    while True:
        service = f"c{uuid.uuid4().hex[:10]}"
        ports = {by_slot[key_slot(k.encode())] for k in _keys(service)}
        other = by_slot[key_slot(f"buttress:{service}/{BYSTANDER}:rl".encode())]
        if len(ports) == 1 and other not in ports:
            return service, ports.pop()


@pytest.mark.serial
def test_cluster_failover_under_load() -> None:
    with ClusterSetup() as ha:
        service, master = _service_on_one_master(ha)
        (replica_port,) = [
            n["port"]
            for n in ha.nodes()
            if n["master"] == next(m["id"] for m in ha.nodes() if m["port"] == master)
        ]
        replica = redis.Redis(host="127.0.0.1", port=replica_port, socket_timeout=2)
        try:
            assert [False] * 3 == _scripts_on(replica)
            key = _keys(service)[0]

            def kill() -> Callable[[], bool]:
                ha.kill(master)
                return lambda: ha.promoted(key, master)

            runs, killed_at, failover = _fleet_under_failover(
                {"url": _seed(ha, master), "cluster": True}, service, kill
            )
            assert replica_port == ha.master_of(key)
            assert [True] * 3 == _scripts_on(replica)
            assert replica.exists(key)
        finally:
            replica.close()
    _check(_figures(runs, killed_at, failover), "cluster")
    # A limiter on a master that lived, through a state of its own: with
    # cluster-require-full-coverage (the default) every node answers CLUSTERDOWN from the moment
    # the cluster marks the master failed until a replica is elected, so it fell back too for
    # that while (not the whole failover), and the decision that met it waited for redis-py's
    # 0.25 s pause; it never raised and it is back on Redis.
    down = sorted(t for run in runs for t in run.bystander_down)
    slowest = max(run.bystander_slowest for run in runs)
    span = down[-1] - down[0] if down else 0.0
    print(
        f"cluster, a limiter on a surviving master: {len(down)} local decisions over "
        f"{span:.2f} s; slowest decision {slowest * 1000:.0f} ms"
    )
    assert all(run.bystander_shared_at_end for run in runs)
    assert slowest < 1.0
    assert span < failover


def _seed(ha: ClusterSetup, avoid: int) -> str:
    """A seed URL on a node other than ``avoid``, the master to be killed (any node serves the
    slot map; this one also would after the kill)."""
    return f"redis://127.0.0.1:{next(p for p in ha.ports if p != avoid)}/0"


@pytest.mark.parametrize("how", ["sentinels", "client"])
def test_sentinel_switchover_with_the_old_master_alive(how: str) -> None:
    """``SENTINEL FAILOVER``: the old master is not killed, and it keeps answering as a master
    until the sentinels demote it (some 10 s later).  A pooled connection to it is not told, so
    the store asks the sentinels where the master is every ``MASTER_CHECK_INTERVAL``: within that
    (plus the sentinels' own switch) every decision is made on the new master, nothing raised."""
    service = f"w{uuid.uuid4().hex[:10]}"
    key = _keys(service)[0]
    with SentinelSetup() as ha:
        if how == "sentinels":
            state = RedisState(
                sentinels=ha.sentinels,
                master=MASTER_NAME,
                service=service,
                timeout=LIVE_TIMEOUT,
                retry_interval=RETRY_INTERVAL,
            )
        else:  # a Sentinel client of the user's own
            from redis.sentinel import Sentinel

            own = Sentinel(ha.sentinels, socket_timeout=LIVE_TIMEOUT)
            client = own.master_for(MASTER_NAME, socket_timeout=LIVE_TIMEOUT)
            state = RedisState(client=client, service=service, retry_interval=RETRY_INTERVAL)
        breaker = CircuitBreaker(store=state.breaker_store("api/cb"), window_size=1000)
        pipe = Pipeline([breaker], name="api")
        pipe.call(lambda: None)
        old = redis.Redis(host="127.0.0.1", port=ha.master_address()[1], socket_timeout=2)
        new = redis.Redis(host="127.0.0.1", port=ha.replica_port, socket_timeout=2)
        sentinel = redis.Redis(host="127.0.0.1", port=ha.sentinel_ports[0], socket_timeout=2)
        unexpected: list[str] = []

        def call() -> None:
            try:
                pipe.call(lambda: None)
            except BaseException as exc:
                unexpected.append(repr(exc))

        def named() -> bool:
            call()
            return ha.master_address()[1] == ha.replica_port

        def calls_on(server: redis.Redis) -> int:
            return int(server.hget(key, "n") or 0)

        try:
            sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
            wait_for("the sentinels to name the new master", named)
            end = time.monotonic() + MASTER_CHECK_INTERVAL + 0.3
            while time.monotonic() < end:
                call()
                time.sleep(0.005)
            still_master = old.info("replication")["role"] == "master"
            before = calls_on(old), calls_on(new)
            for _ in range(20):
                call()
            assert (before[0], before[1] + 20) == (calls_on(old), calls_on(new))
            assert still_master or calls_on(old) == 0  # (demoted: its data was replaced)
            assert [] == unexpected
            assert state.available
        finally:
            for c in (old, new, sentinel):
                c.close()
            state.close()
            if how == "client":
                client.close()
                own.close()
