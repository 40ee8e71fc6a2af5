"""What a competent Python team protects its calls with today, without Buttress (mode ``typical``).

The lab's third run (``BUTTRESS_LAB_POLICIES=typical``) uses this module instead of the pipelines
of reliability.yaml.  It is written the way the popular libraries' documentation shows, so that a
reader can judge the comparison fair:

* **per-call timeouts on the HTTP client**: httpx's ``Timeout``, 1 s per call (connect, read,
  write and pool), well inside the users' 2 s;
* **tenacity retries with exponential backoff and jitter**: ``wait_random_exponential`` is the
  "full jitter" backoff tenacity's documentation recommends for contention; 3 attempts in all, on
  transport errors, timeouts and 5xx (``Unavailable``), 0.1 s multiplier capped at 1 s so a retry
  still fits in the users' 2 s (the documentation's example uses 1 s and 60 s, sized for batch
  jobs, not for a request with a user waiting);
* **a pybreaker breaker per dependency**: ``fail_max=5`` (pybreaker's default and its
  documentation's example) and ``reset_timeout=10`` s (the example's 60 s would keep a dependency
  cut off for the whole rest of a one-minute run after any fault: shorter favours this baseline);
  the breaker is inside the retry, so each attempt counts, and an open breaker is not retried;
* the same business fallback as the Buttress run where the business allows one: stock is
  plentiful, so an order whose reservation fails is accepted as ``reserve_pending``.

What such a team does *not* have (the issue's list): no retry budget, no load shedding, no
bulkhead, no adaptive concurrency limit, no hedging, no endpoint pool with outlier ejection (the
payments instances are taken round-robin, a retry going to the next one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import pybreaker
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

__all__ = ["CALL_TIMEOUT", "Protected", "client"]

T = TypeVar("T")

CALL_TIMEOUT = httpx.Timeout(1.0)
"""Per call: connect, read, write and pool each at most 1 s."""

RETRYABLE = (httpx.TransportError, ConnectionError)
"""httpx's transport errors (timeouts among them) and 5xx answers (``Unavailable`` is a
``ConnectionError``); a 4xx or an open breaker is not retried."""


def client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The team's HTTP client: per-call timeouts, a connection pool."""
    return httpx.AsyncClient(
        timeout=CALL_TIMEOUT, limits=httpx.Limits(max_connections=200), transport=transport
    )


class Protected:
    """One dependency behind a pybreaker breaker, called with tenacity retries."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=10, name=name)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.1, max=1.0),
            retry=retry_if_exception_type(RETRYABLE),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt, self.breaker.calling():
                return await fn()
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
