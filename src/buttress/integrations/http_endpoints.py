"""What the resilient transports know of an endpoint and its answers: the outcome a status or a
transport error reports to the pool, the failure raised for a failure status (with its
``Retry-After``), and a pool endpoint as httpx addresses it."""

from __future__ import annotations

import email.utils

from buttress.errors import ButtressError, MissingExtra
from buttress.failover.pool import Endpoint

try:
    import httpx
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("buttress.integrations.http", "http", "httpx") from None

__all__ = [
    "GATEWAY_STATUSES",
    "HTTPStatusFailure",
    "Target",
    "error_outcome",
    "parse_retry_after",
    "status_outcome",
]

GATEWAY_STATUSES = frozenset({502, 503, 504})


class HTTPStatusFailure(ButtressError):
    """A response with a failure status (5xx or 429 by default), raised inside the pipeline so that
    retries and breakers see it.  The transport returns ``response`` when the retries run out.

    ``retry_after``: seconds from its ``Retry-After`` header, or ``None``.
    """

    def __init__(
        self, response: httpx.Response, endpoint: Endpoint, retry_after: float | None
    ) -> None:
        self.response = response
        self.endpoint = endpoint
        self.status_code = response.status_code
        self.retry_after = retry_after
        super().__init__(f"{endpoint.label} answered {response.status_code}")


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date (``None`` if
    absent or unparsable; never negative)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


def status_outcome(status: int) -> str:
    if status >= 500:
        return "gateway_error" if status in GATEWAY_STATUSES else "server_error"
    return "success"


def error_outcome(exc: httpx.TransportError) -> str | None:
    """What a transport error says about the endpoint: a read or write timeout is a gateway failure
    (Envoy counts an upstream timeout as a 504); waiting for a connection from *our* pool says
    nothing about it (``None``); anything else (refused, reset, connect timeout) is a local
    failure, counted as a 503."""
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return "gateway_error"
    if isinstance(exc, httpx.PoolTimeout):
        return None
    return "local_failure"


class Target:
    """A pool endpoint as httpx needs it: URL parts (normalized by httpx once, at build time) and
    the Host header value."""

    __slots__ = ("base", "host", "netloc", "port", "ref", "scheme")

    def __init__(self, endpoint: Endpoint) -> None:
        url = httpx.URL(endpoint.url)
        self.scheme = url.scheme
        self.host = url.host
        self.port = url.port
        self.base = url.raw_path.rstrip(b"/")
        self.netloc = url.netloc.decode("ascii")
        # httpx keeps a URL's parts in a named tuple; replacing fields of it costs ~2 us where
        # URL.copy_with re-parses and re-validates the whole URL (~45 us).  Fall back to
        # copy_with if a future httpx drops it.
        self.ref = getattr(url, "_uri_reference", None)

    def url(self, original: httpx.URL) -> httpx.URL:
        ref = getattr(original, "_uri_reference", None)
        mine = self.ref
        if ref is not None and mine is not None and hasattr(ref, "_replace"):
            out = httpx.URL.__new__(httpx.URL)
            out._uri_reference = ref._replace(
                scheme=mine.scheme,
                host=mine.host,
                port=mine.port,
                path=mine.path.rstrip("/") + ref.path,
            )
            return out
        return original.copy_with(
            scheme=self.scheme,
            host=self.host,
            port=self.port,
            raw_path=self.base + original.raw_path,
        )
