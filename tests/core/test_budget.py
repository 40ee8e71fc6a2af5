"""Retry budgets: Finagle's ratio budget and gRPC's retryThrottling token bucket."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import Backoff, Retry, RetryBudget
from buttress.policies.budget import TokenBucketBudget
from buttress.testing import FakeClock

# -- Finagle ratio budget --------------------------------------------------------------------------


def test_defaults_are_finagles() -> None:
    b = RetryBudget()
    assert (0.2, 10.0, 10.0) == (b.ratio, b.min_per_second, b.ttl)
    assert 100.0 == b.reserve


def test_reserve_alone_grants_min_per_second_times_ttl() -> None:
    b = RetryBudget(ratio=0.2, min_per_second=2, ttl=5)
    grants = sum(b.try_withdraw(100.0) for _ in range(50))
    assert 10 == grants


def test_ratio_of_recent_requests_then_expiry() -> None:
    b = RetryBudget(ratio=0.2, min_per_second=0, ttl=10, slices=10)
    for _ in range(100):
        b.on_request(0.5)
    assert 20.0 == b.balance(0.5)
    assert 20 == sum(b.try_withdraw(0.5) for _ in range(30))
    # The window moves on: the deposits (and the withdrawals) leave it together.
    assert 0.0 == b.balance(10.6)
    assert not b.try_withdraw(10.6)


def test_withdrawals_stay_counted_while_in_the_window() -> None:
    b = RetryBudget(ratio=0.5, min_per_second=0, ttl=10, slices=10)
    for _ in range(10):
        b.on_request(1.0)
    assert 5 == sum(b.try_withdraw(1.0) for _ in range(10))
    for _ in range(4):
        b.on_request(5.0)
    # 14 requests in the window -> 7 retries, 5 already taken.
    assert 2 == sum(b.try_withdraw(5.0) for _ in range(10))


def test_requests_older_than_the_window_are_never_counted() -> None:
    """A slice that straddles the window's start holds requests from before the window: they must
    not earn retries (the window is judged pessimistically)."""
    b = RetryBudget(ratio=1.0, min_per_second=0, ttl=10, slices=10)
    for _ in range(20):
        b.on_request(0.5)  # slice [0, 1)
    assert not b.try_withdraw(10.7)  # window [0.7, 10.7]: none of those requests is in it
    assert 0.0 == b.balance(10.7)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.integers(1, 20)),
        st.tuples(st.just("withdraw"), st.integers(1, 20)),
        # in fractions of ttl, often just past one ttl: the window's start then falls inside the
        # slice where earlier requests were counted
        st.tuples(st.just("advance"), st.floats(0.0, 1.2) | st.floats(1.0, 1.05)),
    ),
    max_size=60,
)


@settings(max_examples=250, deadline=None)
@given(
    ratio=st.floats(0.0, 1.0),
    min_per_second=st.just(0.0) | st.floats(0.0, 3.0),
    ttl=st.floats(0.1, 20.0),
    slices=st.integers(1, 20),
    start=st.floats(0.0, 1e6),
    ops=_ops,
)
def test_never_grants_more_than_ratio_and_floor_allow_over_any_window(
    ratio: float,
    min_per_second: float,
    ttl: float,
    slices: int,
    start: float,
    ops: list[tuple[str, float]],
) -> None:
    """At every grant at time t: grants in [t - ttl, t] <= ratio * requests in it + floor * ttl."""
    b = RetryBudget(ratio=ratio, min_per_second=min_per_second, ttl=ttl, slices=slices)
    now = start
    requests: list[float] = []
    grants: list[float] = []
    for op, arg in ops:
        if op == "advance":
            now += arg * ttl
        elif op == "request":
            for _ in range(int(arg)):
                b.on_request(now)
                requests.append(now)
        else:
            for _ in range(int(arg)):
                if b.try_withdraw(now):
                    grants.append(now)
                    lo = now - ttl
                    in_window_g = bisect_right(grants, now) - bisect_left(grants, lo)
                    in_window_r = bisect_right(requests, now) - bisect_left(requests, lo)
                    allowed = ratio * in_window_r + min_per_second * ttl
                    assert in_window_g <= allowed + 1e-6


@settings(max_examples=100, deadline=None)
@given(ratio=st.floats(0.05, 1.0), n=st.integers(1, 200), slices=st.integers(1, 20))
def test_grants_what_a_full_window_of_requests_earns(ratio: float, n: int, slices: int) -> None:
    """Liveness: requests made in the same slice as the grants are never left out."""
    b = RetryBudget(ratio=ratio, min_per_second=0, ttl=10, slices=slices)
    for _ in range(n):
        b.on_request(50.0)
    granted = sum(b.try_withdraw(50.0) for _ in range(n + 1))
    assert int(ratio * n + 1e-9) == granted


# -- gRPC token bucket -----------------------------------------------------------------------------


def test_grpc_published_sequence() -> None:
    """gRPC core's own test sequence (max 4 tokens, ratio 1.6: threshold 2)."""
    b = TokenBucketBudget(max_tokens=4, token_ratio=1.6)

    def failure() -> bool:
        b.on_failure()
        return b.try_withdraw(0.0)

    assert failure()  # 3
    b.on_success()  # 4, capped
    assert failure()  # 3
    assert not failure()  # 2: at the threshold
    assert not failure()  # 1
    assert not failure()  # 0
    assert not failure()  # stays 0
    b.on_success()  # 1.6
    b.on_success()  # 3.2
    assert failure()  # 2.2
    assert not failure()  # 1.2
    b.on_success()  # 2.8
    assert not failure()  # 1.8
    b.on_success()  # 3.4
    assert failure()  # 2.4
    assert 2.4 == b.tokens


class GrpcThrottleModel:
    """A reference model of gRPC retryThrottling, in integer thousandths of a token."""

    def __init__(self, max_tokens: float, token_ratio: float) -> None:
        self.max = round(max_tokens * 1000)
        self.ratio = int(round(token_ratio * 1000, 6))  # three decimals kept
        self.tokens = self.max

    def success(self) -> None:
        self.tokens = min(self.max, self.tokens + self.ratio)

    def failure(self) -> bool:
        self.tokens = max(0, self.tokens - 1000)
        return self.tokens > self.max // 2


@settings(max_examples=250, deadline=None)
@given(
    max_tokens=st.integers(1, 1000),
    ratio_milli=st.integers(1, 2000),
    outcomes=st.lists(st.booleans(), max_size=300),
)
def test_token_bucket_matches_grpc_model(
    max_tokens: int, ratio_milli: int, outcomes: list[bool]
) -> None:
    b = TokenBucketBudget(max_tokens=max_tokens, token_ratio=ratio_milli / 1000)
    model = GrpcThrottleModel(max_tokens, ratio_milli / 1000)
    for ok in outcomes:
        if ok:
            b.on_success()
            model.success()
        else:
            b.on_failure()
            assert model.failure() == b.try_withdraw(0.0)
        assert model.tokens / 1000 == b.tokens


def test_token_ratio_keeps_three_decimals() -> None:
    b = TokenBucketBudget(max_tokens=10, token_ratio=0.12345)
    assert 0.123 == b.token_ratio


class Scripted:
    """Succeeds or fails as scripted (True: success), then succeeds."""

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = iter(outcomes)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if next(self.outcomes, True):
            return "ok"
        raise ConnectionError("down")


@settings(max_examples=60, deadline=None)
@given(
    max_tokens=st.integers(2, 20),
    script=st.lists(st.lists(st.booleans(), min_size=1, max_size=6), max_size=25),
)
def test_retry_with_token_bucket_follows_the_model(
    max_tokens: int, script: list[list[bool]]
) -> None:
    """The executor drives the bucket as gRPC does: every retryable failure is recorded (even the
    last attempt's), then the retry asks; every success pays back ``token_ratio``."""
    clock = FakeClock()
    budget = TokenBucketBudget(max_tokens=max_tokens, token_ratio=0.5)
    model = GrpcThrottleModel(max_tokens, 0.5)
    retry = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=budget, clock=clock)
    for outcomes in script:
        expected = 0
        for ok in [*outcomes, True]:
            expected += 1
            if ok:
                model.success()
                break
            allowed = model.failure()
            if expected == 4 or not allowed:
                break
        op = Scripted(outcomes)
        try:
            retry(op)()
        except ConnectionError:
            pass
        assert expected == op.calls
        assert model.tokens / 1000 == budget.tokens
