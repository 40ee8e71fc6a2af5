"""httpx transports that spread requests over an endpoint pool and apply a pipeline per request.

::

    import httpx
    from buttress.integrations.http import ResilientTransport

    transport = ResilientTransport(
        [{"url": "http://10.0.0.1:8080"}, {"url": "http://10.0.1.1:8080", "priority": 1}],
    )
    with httpx.Client(transport=transport, base_url="http://orders") as client:
        client.get("/orders/42")      # to 10.0.0.1, or to 10.0.1.1 when the first one fails

:class:`ResilientTransport` wraps :class:`httpx.HTTPTransport`; :class:`AsyncResilientTransport`
wraps :class:`httpx.AsyncHTTPTransport`.  The two share their configuration and every decision
(:class:`_Shared`: which endpoint, what to send, what an answer or an error says, whether to retry)
and differ only in how they send and wait.  Their thin bodies sit side by side at the end of this
module; ``tests/transport/test_http_twins.py`` checks that they match line for line (``await`` and
the ``a``-prefixed names aside), and ``tests/transport/test_http_transport.py`` runs both on the
same cases.

**Per request**, through the pipeline (a :class:`~buttress.Retry` plus the ``policies`` you add, in
the default pipeline order: a total :class:`~buttress.Timeout` outside the retry, a
:class:`~buttress.CircuitBreaker` or :class:`~buttress.Bulkhead` around each attempt)::

    attempt:  deadline passed?           -> DeadlineExceeded (nothing sent)
              endpoint = pool.acquire(exclude=endpoints already tried by this request)
              rewrite the URL onto the endpoint's base URL (Host header too, unless preserve_host)
              X-Buttress-Deadline-Ms: remaining deadline, socket timeouts capped by it
              send
              5xx or 429              -> failure (the body is read; Retry-After parsed)
              transport error         -> failure
              anything else           -> success

**What is retried** (by default 3 attempts in all, exponential backoff with full jitter, a retry
budget):

* a failed *connection* (refused, connect timeout): always, any method, since nothing was sent;
* a 5xx/429 response or an error after sending: only for idempotent methods (``GET HEAD OPTIONS PUT
  DELETE TRACE``; ``retry_methods`` changes the set);
* a ``Retry-After`` (seconds or an HTTP date) replaces the backoff's delay; one longer than
  ``max_retry_after`` (30 s) is not waited for: the response is returned;
* a request whose body cannot be replayed (a generator) is never retried;
* a ``POST`` or ``PATCH`` that carries an ``Idempotency-Key`` (the IETF draft's header, see
  :mod:`buttress.integrations.idempotency`) is retried like an idempotent request: every retry and
  every hedge sends the same key, so a server that honours keys runs it at most once.  The key is
  the caller's own, or, with ``idempotency_keys=True`` (for servers known to honour keys), one the
  transport makes (a random UUID) once per logical request.  A 409 answer to a keyed request (the
  server is still running an earlier copy) is a failure to retry after its ``Retry-After``, or,
  under a hedge, to wait out while the other copy finishes.

When the retries run out on a 5xx/429 the last response is returned, as plain httpx would return
it; errors are raised.  A retry goes to an endpoint this request has not tried yet when there is
one, so a dead primary costs one connection attempt, not a failed request.  Rejections
(:class:`~buttress.CircuitOpen`, :class:`~buttress.BulkheadFull`...) are raised as they are.

**Deadline header.** With a deadline in force (:func:`buttress.deadline`, a total
:class:`~buttress.Timeout`), every attempt carries ``X-Buttress-Deadline-Ms``: the milliseconds left
(rounded down), which :class:`buttress.integrations.asgi.ResilienceMiddleware` turns back into a
deadline on the server.  ``deadline_header=None`` turns it off.

**Outcomes fed to the pool** (outlier detection, least-request counts): 502/503/504 are gateway
errors, other 5xx server errors, everything else (429 included: an overloaded endpoint is not a
broken one) a success.  Without an answer: a **timed-out attempt** is a gateway error, as Envoy
counts an upstream timeout as a 504, whether httpx's read/write timeout fired or a
:class:`~buttress.Timeout` (attempt or total) cancelled the attempt at its deadline, so a
slow-but-alive endpoint is ejected like a failing one; refused or reset connections and connect
timeouts are local failures (counted as a 503); an attempt the *caller* cancelled before the
deadline, one never sent (the deadline had passed) and a wait for a connection of the local pool
(``PoolTimeout``) are not counted.  A response stays "in flight" on its endpoint until its body is
closed.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import current_deadline
from buttress.errors import ConfigError, DeadlineExceeded, MissingExtra
from buttress.failover.active import HealthCheck
from buttress.failover.driver import HealthCheckDriver
from buttress.failover.pool import Endpoint, EndpointPool
from buttress.options import check_flag
from buttress.pipeline import Pipeline
from buttress.policies.backoff import Backoff
from buttress.policies.base import Policy
from buttress.policies.retry import Retry

try:
    import httpx
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("buttress.integrations.http", "http", "httpx") from None

from .cancel_safe import cancel_safe
from .http_endpoints import (
    HTTPStatusFailure,
    Target,
    error_outcome,
    parse_retry_after,
    status_outcome,
)

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_FAILURE_STATUSES",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "KEYED_METHODS",
    "AsyncResilientTransport",
    "HTTPStatusFailure",
    "ResilientTransport",
    "parse_retry_after",
]


def _as_is(transport: Any) -> Any:
    return transport


DEADLINE_HEADER = "X-Buttress-Deadline-Ms"
IDEMPOTENCY_HEADER = "Idempotency-Key"
KEYED_METHODS = frozenset({"POST", "PATCH"})
_KEYED = "keyed"
"""What :data:`_METHOD` holds for a request carrying an idempotency key: retried as idempotent."""
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
DEFAULT_FAILURE_STATUSES = frozenset({429, *range(500, 600)})
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")
_DEADLINE_SLACK = 0.001
"""A cancellation this close to the deadline is the deadline's: timers may fire a hair early."""
_DEFAULT = object()

# The method of the request in progress ("" when its body cannot be replayed): the retry predicate
# reads it, since exceptions do not carry their request at the transport level.
_METHOD: contextvars.ContextVar[str] = contextvars.ContextVar("buttress_http_method", default="")


_T = TypeVar("_T", bound=httpx.BaseTransport | httpx.AsyncBaseTransport)


class _Shared(Generic[_T]):
    """Configuration and every decision both transports make; the transports only send and wait.

    The parameters are those of :class:`ResilientTransport`.
    """

    _sends: ClassVar[type[Any]]
    """The transports this flavour can drive."""
    _sends_what: ClassVar[str]
    """That type in words, for :class:`~buttress.errors.ConfigError`."""
    _default_transport: ClassVar[type[Any]]
    """The transport made when none is given."""
    _guard: ClassVar[staticmethod[[Any], Any]]
    """Wraps the transport that sends: as it is (sync), or behind a
    :class:`~buttress.integrations.cancel_safe.CancelSafeTransport` (async: an attempt a timeout
    cancels must not cancel a request inside httpcore's connection pool)."""

    pool: EndpointPool
    pipeline: Pipeline
    transport: _T

    def __init__(
        self,
        endpoints: EndpointPool | Iterable[str | Endpoint | Mapping[str, Any]],
        *,
        attempts: int = 3,
        backoff: Backoff | None = None,
        budget: Any = _DEFAULT,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        failure_statuses: Iterable[int] = DEFAULT_FAILURE_STATUSES,
        max_retry_after: float = 30.0,
        policies: Iterable[Policy] = (),
        deadline_header: str | None = DEADLINE_HEADER,
        health_check: HealthCheck | None = None,
        preserve_host: bool = False,
        idempotency_keys: bool = False,
        read_body: bool = False,
        transport: _T | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "http",
    ) -> None:
        if isinstance(endpoints, EndpointPool):
            pool = endpoints
            if health_check is not None and pool.health_check is None:
                pool.health_check = health_check
        else:
            pool = EndpointPool(endpoints, health_check=health_check, clock=clock, name=name)
        for i, ep in enumerate(pool.endpoints):
            if not ep.url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"endpoints[{i}].url", ep.url, "an HTTP transport needs http:// or https://"
                )
        methods = frozenset(m.upper() for m in retry_methods) if retry_methods else frozenset()
        if isinstance(retry_methods, str):
            raise ConfigError("retry_methods", retry_methods, "must be a collection of methods")
        statuses = frozenset(failure_statuses)
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in statuses):
            raise ConfigError("failure_statuses", failure_statuses, "must be HTTP statuses")
        if (
            isinstance(max_retry_after, bool)
            or not isinstance(max_retry_after, int | float)
            or not max_retry_after >= 0
        ):
            raise ConfigError("max_retry_after", max_retry_after, "must be seconds >= 0")
        if deadline_header is not None and (
            not isinstance(deadline_header, str) or not deadline_header.strip()
        ):
            raise ConfigError("deadline_header", deadline_header, "must be a header name or None")
        extra = list(policies)
        for i, p in enumerate(extra):
            if not isinstance(p, Policy):
                raise ConfigError(f"policies[{i}]", p, "is not a buttress policy")
            if isinstance(p, Retry):
                raise ConfigError(
                    f"policies[{i}]", p, "the transport adds its own Retry; set attempts= instead"
                )
        self.pool = pool
        self.retry_methods = methods
        self.idempotency_keys = check_flag("idempotency_keys", idempotency_keys)
        self._keyed_methods = KEYED_METHODS - methods  # those retried anyway need no key
        self._retryable = methods | {_KEYED}
        self.failure_statuses = statuses
        self.max_retry_after = float(max_retry_after)
        self.deadline_header = deadline_header.strip() if deadline_header else None
        self.preserve_host = check_flag("preserve_host", preserve_host)
        self.read_body = check_flag("read_body", read_body)
        self.clock = clock
        self.name = name
        self._targets = {ep: Target(ep) for ep in pool.endpoints}
        retry_kw: dict[str, Any] = {
            "attempts": attempts,
            "backoff": backoff,
            "retry_if": self._retry_if,
            "clock": clock,
            "name": f"{name}_retry",
        }
        if budget is not _DEFAULT:
            retry_kw["budget"] = budget
        self.retry = Retry(**retry_kw)
        self.pipeline = Pipeline([self.retry, *extra], name=name, clock=clock)
        self.driver = HealthCheckDriver(pool) if pool.health_check is not None else None
        if transport is not None and not isinstance(transport, self._sends):
            raise ConfigError("transport", transport, f"must be {self._sends_what}")
        self.transport = self._guard(
            transport if transport is not None else self._default_transport()
        )
        self._checks_started = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pool!r}, {self.pipeline!r})"

    # -- decisions ---------------------------------------------------------------------------------

    def _retry_if(self, exc: BaseException) -> bool | float | None:
        method = _METHOD.get()
        if not method:
            return False
        if isinstance(exc, HTTPStatusFailure):
            if method not in self._retryable:
                return False
            ra = exc.retry_after
            if ra is None:
                return True
            return ra if ra <= self.max_retry_after else False
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return True  # nothing was sent: safe for every method
        if isinstance(exc, httpx.TransportError | TimeoutError):
            return method in self._retryable
        return False

    def _prepare(self, request: httpx.Request, endpoint: Endpoint) -> httpx.Request:
        t = self._targets[endpoint]
        headers = request.headers.copy()
        if not self.preserve_host:
            headers["Host"] = t.netloc
        extensions = request.extensions
        d = current_deadline()
        if d is not None:
            left = d - self.clock.monotonic()
            if left <= 0:
                raise DeadlineExceeded("deadline passed before the request was sent", policy="http")
            if self.deadline_header is not None:
                headers[self.deadline_header] = str(int(left * 1000))
            timeouts = extensions.get("timeout") or dict.fromkeys(_TIMEOUT_KEYS)
            capped = {k: left if v is None else min(v, left) for k, v in timeouts.items()}
            extensions = {**extensions, "timeout": capped}
        # A shallow copy of the request (same body stream), cheaper than httpx.Request(...), which
        # re-validates everything the client already validated.
        out = object.__new__(httpx.Request)
        out.__dict__.update(request.__dict__)
        out.url = t.url(request.url)
        out.headers = headers
        out.extensions = extensions
        return out

    def _interrupted(self) -> str | None:
        """The outcome of an attempt interrupted before it had an answer (an asyncio cancellation,
        a ``KeyboardInterrupt``): ``gateway_error`` when the deadline in force has passed (a
        :class:`~buttress.Timeout` cut it short: the endpoint was too slow, as a 504), else
        ``None`` (the caller gave up; nothing is learnt about the endpoint)."""
        d = current_deadline()
        if d is not None and self.clock.monotonic() >= d - _DEADLINE_SLACK:
            return "gateway_error"
        return None

    def _failure(self, response: httpx.Response, endpoint: Endpoint) -> HTTPStatusFailure:
        ra = parse_retry_after(response.headers.get("retry-after"), self.clock.wall())
        return HTTPStatusFailure(response, endpoint, ra)

    @staticmethod
    def _buffered(response: httpx.Response, raw: list[bytes]) -> httpx.Response:
        """The answer again, its body the raw (still encoded) bytes read inside the attempt: a
        fresh response, so the client decodes, reads and times it as one it had streamed."""
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(b"".join(raw)),
            extensions=response.extensions,
        )

    @staticmethod
    def _replayable(request: httpx.Request) -> bool:
        return isinstance(request.stream, httpx.ByteStream)

    # -- one request, one attempt: every step but the sending and the waiting ----------------------

    def _begin(self, request: httpx.Request) -> contextvars.Token[str]:
        """Start a request: its method, for :meth:`_retry_if` ("" when the body cannot be replayed).
        The caller resets the token when the request is over."""
        method = request.method if self._replayable(request) else ""
        if method in self._keyed_methods:
            headers = request.headers
            if IDEMPOTENCY_HEADER in headers:
                method = _KEYED
            elif self.idempotency_keys:  # one key for every attempt and hedge of this request
                headers[IDEMPOTENCY_HEADER] = f'"{uuid.uuid4()}"'
                method = _KEYED
        return _METHOD.set(method)

    def start_health_checks(self) -> None:
        """Start the active health checks now (they start with the first request anyway): a
        thread for :class:`ResilientTransport`, a task in the running loop for
        :class:`AsyncResilientTransport`."""
        driver = self.driver
        if driver is None or self._checks_started:
            return
        self._checks_started = True
        if isinstance(self, httpx.AsyncBaseTransport):
            driver.start_async()
        else:
            driver.start()

    def _pick(
        self, request: httpx.Request, tried: list[Endpoint]
    ) -> tuple[Endpoint, httpx.Request]:
        """This attempt's endpoint (in flight from now on) and the request to send it."""
        pool = self.pool
        endpoint = pool.acquire(tried)
        tried.append(endpoint)
        try:
            return endpoint, self._prepare(request, endpoint)
        except BaseException:  # nothing was sent (the deadline had passed): not its fault
            pool.release(endpoint, None)
            raise

    def _abandon(self, endpoint: Endpoint, exc: BaseException) -> None:
        """Release ``endpoint`` after an attempt that ended in ``exc`` instead of an answer
        (while sending, or reading a failure's body).  A transport error says what it says about
        the endpoint (:func:`error_outcome`); an interruption counts only when the deadline cut it
        short (:meth:`_interrupted`)."""
        if isinstance(exc, httpx.TransportError):
            self.pool.release(endpoint, error_outcome(exc))
        else:
            self.pool.release(endpoint, self._interrupted())

    def _settle(self, response: httpx.Response, endpoint: Endpoint) -> httpx.Response:
        """What an answer means.  A failure status (its body already read and closed) is released
        and raised as :class:`HTTPStatusFailure`; another 5xx is released and returned; anything
        else keeps the endpoint in flight until the response's body is closed (a body read inside
        the attempt, with ``read_body``, is released at once)."""
        status = response.status_code
        pool = self.pool
        if status in self.failure_statuses or (status == 409 and _METHOD.get() is _KEYED):
            pool.release(endpoint, status_outcome(status))
            raise self._failure(response, endpoint)
        if status >= 500 or self.read_body:  # a read body: the request is over
            pool.release(endpoint, status_outcome(status))
            return response
        response.stream = _ReleasingStream(response.stream, _releaser(pool, endpoint))
        return response


class _ReleasingStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body (sync or async) that tells the pool the request is over when it is closed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, release: Callable[[], None]
    ) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        stream = self._stream
        assert isinstance(stream, httpx.SyncByteStream)
        return iter(stream)

    def __aiter__(self) -> AsyncIterator[bytes]:
        stream = self._stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return stream.__aiter__()

    def close(self) -> None:
        try:
            if isinstance(self._stream, httpx.SyncByteStream):
                self._stream.close()
        finally:
            self._released()

    async def aclose(self) -> None:
        try:
            if isinstance(self._stream, httpx.AsyncByteStream):
                await self._stream.aclose()
        finally:
            self._released()

    def _released(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


def _releaser(pool: EndpointPool, endpoint: Endpoint) -> Callable[[], None]:
    def release() -> None:
        pool.release(endpoint, "success")

    return release


# -- the twins: keep their bodies the same but for `await` and the async names ---------------------
# (tests/transport/test_http_twins.py compares them).


class ResilientTransport(_Shared[httpx.BaseTransport], httpx.BaseTransport):
    """A sync httpx transport over an endpoint pool (wraps :class:`httpx.HTTPTransport`).

    :param endpoints: an :class:`~buttress.failover.EndpointPool`, or base URLs / endpoint
        mappings to build one from (``url``, ``priority``, ``weight``, ``name``).
    :param attempts: attempts per request, the first included (default 3).
    :param backoff: the retry backoff (default exponential, 0.1 s base, full jitter).
    :param budget: the retry budget (default a fresh :class:`~buttress.RetryBudget`; ``None``:
        none).
    :param retry_methods: methods whose failures are retried (default the idempotent ones).
    :param failure_statuses: statuses that are failures (default 429 and 500-599).
    :param max_retry_after: longest ``Retry-After`` waited for, in seconds (default 30).
    :param policies: more policies for the pipeline (breaker, bulkhead, timeout...).
    :param deadline_header: the header carrying the remaining deadline in milliseconds (default
        ``X-Buttress-Deadline-Ms``; ``None``: not sent).
    :param health_check: active health checking; a thread probes the endpoints from the first
        request (or :meth:`start_health_checks`) until :meth:`close`.
    :param preserve_host: keep the request's ``Host`` header instead of the endpoint's.
    :param idempotency_keys: give every ``POST`` and ``PATCH`` without an ``Idempotency-Key`` one
        (the same for all its retries and hedges), making it retryable (default ``False``: only
        requests that carry a key are).
    :param read_body: read each answer's whole body inside the attempt (default ``False``: the
        attempt ends at the response headers and the body streams afterwards).  Then attempt
        timeouts, hedges and retries cover a body that stalls or breaks off, and outlier ejection
        counts it against its endpoint; the body is held in memory (suits API answers, not
        downloads).
    :param transport: the transport that sends (default a fresh :class:`httpx.HTTPTransport`).
    :param clock: where time is read.
    :param name: the pipeline's and the pool's name (default ``"http"``).
    """

    _sends = httpx.BaseTransport
    _sends_what = "a sync httpx transport"
    _default_transport = httpx.HTTPTransport
    _guard = staticmethod(_as_is)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.driver is not None and not self._checks_started:
            self.start_health_checks()
        token = self._begin(request)
        try:
            response: httpx.Response = self.pipeline.call(self._attempt, request, [])
            return response
        except HTTPStatusFailure as e:
            return e.response
        finally:
            _METHOD.reset(token)

    def _attempt(self, request: httpx.Request, tried: list[Endpoint]) -> httpx.Response:
        endpoint, outgoing = self._pick(request, tried)
        try:
            response = self.transport.handle_request(outgoing)
            status = response.status_code
            # A 409 to a keyed request: the server still runs an earlier copy (see _settle).
            if status in self.failure_statuses or (status == 409 and _METHOD.get() is _KEYED):
                try:
                    response.read()
                finally:
                    response.close()
            elif self.read_body:  # the whole body inside the attempt (its timeouts and hedges)
                try:
                    raw = [c for c in response.iter_raw()]  # noqa: C416 (the async twin's form)
                finally:
                    response.close()
                response = self._buffered(response, raw)
        except BaseException as exc:
            self._abandon(endpoint, exc)
            raise
        return self._settle(response, endpoint)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.stop()
            self._checks_started = False
        self.transport.close()


class AsyncResilientTransport(_Shared[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport):
    """The asyncio twin of :class:`ResilientTransport` (wraps :class:`httpx.AsyncHTTPTransport`);
    the same parameters.  Health checks run in a task of the loop of the first request, until
    :meth:`aclose`."""

    _sends = httpx.AsyncBaseTransport
    _sends_what = "an async httpx transport"
    _default_transport = httpx.AsyncHTTPTransport
    _guard = staticmethod(cancel_safe)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.driver is not None and not self._checks_started:
            self.start_health_checks()
        token = self._begin(request)
        try:
            response: httpx.Response = await self.pipeline.call_async(self._attempt, request, [])
            return response
        except HTTPStatusFailure as e:
            return e.response
        finally:
            _METHOD.reset(token)

    async def _attempt(self, request: httpx.Request, tried: list[Endpoint]) -> httpx.Response:
        endpoint, outgoing = self._pick(request, tried)
        try:
            response = await self.transport.handle_async_request(outgoing)
            status = response.status_code
            # A 409 to a keyed request: the server still runs an earlier copy (see _settle).
            if status in self.failure_statuses or (status == 409 and _METHOD.get() is _KEYED):
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            elif self.read_body:  # the whole body inside the attempt (its timeouts and hedges)
                try:
                    raw = [c async for c in response.aiter_raw()]
                finally:
                    await response.aclose()
                response = self._buffered(response, raw)
        except BaseException as exc:
            self._abandon(endpoint, exc)
            raise
        return self._settle(response, endpoint)

    async def aclose(self) -> None:
        if self.driver is not None:
            await self.driver.stop_async()
            self._checks_started = False
        await self.transport.aclose()
