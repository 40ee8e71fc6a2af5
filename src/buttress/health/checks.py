"""One health check: a function, its timeout, a TTL cache and single-flight coalescing.

A check function takes no argument and returns a :class:`Result` (or ``None``, meaning *pass*);
it may be ``def`` or ``async def``.  Raising is a failure.  :meth:`Check.run` wraps it so that
probes never stampede the dependency:

* **TTL cache.**  A report is reused while ``now < recorded_at + ttl`` (monotonic clock), failures
  included, so a failing dependency is asked at most once per ``ttl`` too.
* **Single flight.**  While one run is in flight, every other caller (any task, any thread, any
  event loop) awaits that same run: 100 concurrent probes cause one call.
* **Timeout.**  A run that takes longer than ``timeout`` seconds is reported as ``fail`` with output
  ``"timed out after <timeout>s"``; the probe answers in time even when the dependency hangs.
* **Blocking functions** (``def``, unless ``in_thread=False``) run in a worker thread; while a
  timed-out thread is still stuck, no second thread is started for the same check (the run fails
  with ``"previous run still in progress"``), so a hung dependency cannot exhaust the thread pool.

The run itself is a task of its own: a probe that disconnects (its task is cancelled) does not
cancel the run the other waiters share.

Exception text never reaches a report's ``output``: a raised error is reported as its type name
only (``"check raised ConnectionRefusedError"``); the exception object is kept on the report
(:attr:`CheckReport.error`) for logs, and rendered only when the registry is configured with
``expose_errors=True``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import inspect
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypedDict

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError

__all__ = [
    "COMPONENT_TYPES",
    "DEFAULT_TTL",
    "Check",
    "CheckFunction",
    "CheckOptions",
    "CheckReport",
    "Result",
    "Status",
]

JSONValue: TypeAlias = "str | int | float | bool | list[Any] | dict[str, Any] | None"

DEFAULT_TTL = 1.0
"""Seconds a check's report is reused (default).  Kubernetes probes every 10 s by default; a 1 s
cache collapses bursts (many probers, many replicas of a sidecar) without hiding a change for
long."""

COMPONENT_TYPES = ("component", "datastore", "system")
"""The draft's pre-defined ``componentType`` values (a URI is also allowed)."""


class Status(enum.StrEnum):
    """A check's or a group's status, as spelled in ``application/health+json``."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


_RANK = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def worst(a: Status, b: Status) -> Status:
    """The worse of two statuses (``fail`` > ``warn`` > ``pass``)."""
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class Result:
    """What a check function returns: a status and, optionally, what it observed.

    :param status: default ``pass``; a :class:`Status` or its string (``"pass"``, ``"warn"``,
        ``"fail"``).  Anything else raises :class:`~buttress.errors.ConfigError` for ``status``.
    :param observed_value: any JSON value (a latency, a count, a state name).
    :param observed_unit: the unit of ``observed_value`` (``"ms"``, ``"percent"``, ``"bytes"``).
    :param output: a short, safe message for people (never a secret; shown in the response).
    """

    status: Status = Status.PASS
    observed_value: JSONValue = None
    observed_unit: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        # A plain string spelled as a Status ("warn") becomes one; anything else ("ok", True) is
        # refused here, inside the check function, so the run fails (and is cached) like any other
        # error instead of failing later, outside it.
        status = self.status
        if type(status) is not Status:
            try:
                object.__setattr__(self, "status", Status(status))
            except (ValueError, TypeError):
                raise ConfigError(
                    "status", status, "must be a Status: 'pass', 'warn' or 'fail'"
                ) from None


@dataclass(frozen=True, slots=True)
class CheckReport:
    """One run of one check.

    ``time`` is the wall-clock time (seconds since the epoch) the run started, ``recorded`` the
    monotonic reading when it finished (the TTL counts from there), ``duration`` how long it took.
    ``error`` is the exception a failed run raised (kept for logs; not rendered by default).
    """

    status: Status
    observed_value: JSONValue
    observed_unit: str | None
    output: str | None
    time: float
    recorded: float
    duration: float
    error: BaseException | None = None


CheckFunction: TypeAlias = Callable[[], "Result | Awaitable[Result | None] | None"]


class CheckOptions(TypedDict, total=False):
    """Keyword options every check factory accepts (see :class:`Check`)."""

    measurement: str | None
    groups: tuple[str, ...] | list[str]
    critical: bool
    timeout: float | None
    ttl: float
    refresh: float | None
    component_type: str
    component_id: str | None
    clock: Clock


def _name(parameter: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(parameter, value, "must be a non-empty string")
    if ":" in value:
        raise ConfigError(parameter, value, "must not contain ':' (it separates name:measurement)")
    return value


def _seconds(parameter: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(parameter, value, "must be a number of seconds")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(
            parameter, value, "must be finite and " + (">= 0" if allow_zero else "> 0")
        )
    return v


class Check:
    """A named check, run with a timeout, cached for ``ttl`` seconds, with single-flight runs.

    :param name: the component name (``componentName`` in health+json; no ``:``).
    :param fn: ``() -> Result | None`` or ``async () -> Result | None``; raising means fail.
    :param measurement: the measurement name (``measurementName``; no ``:``).  The check's key in
        the response is ``"name:measurement"`` (just ``"name"`` without one).
    :param groups: the groups it belongs to.  Default ``("readiness",)``: dependencies belong in
        readiness, not liveness (see ``docs/health.md``).
    :param critical: when ``False`` a failing run makes its groups *warn*, not fail.  Default True.
    :param timeout: seconds a run may take (> 0).  Default ``None``: 0.8 x the smallest probe
        timeout of its groups, set when the check is added to a registry.
    :param ttl: seconds a report is reused (>= 0; 0 disables the cache but keeps single flight).
        Default :data:`DEFAULT_TTL` (1 s).
    :param refresh: when set, seconds between background runs (> 0) while the registry's refresher
        runs, so probes read a fresh cache and never wait.  Default ``None`` (runs on demand).
    :param component_type: ``componentType``: ``"component"`` (default), ``"datastore"``,
        ``"system"`` or a URI.
    :param component_id: ``componentId``, when there is a meaningful instance id (omitted if None).
    :param in_thread: run a ``def`` function in a worker thread (default True; builtin checks that
        never block pass False).  Ignored for ``async def``.
    :param clock: monotonic and wall time (default the system clock).
    """

    __slots__ = (
        "_busy_thread",
        "_expires",
        "_inflight",
        "_is_async",
        "_lock",
        "_report",
        "_task",
        "clock",
        "component_id",
        "component_type",
        "critical",
        "fn",
        "groups",
        "in_thread",
        "key",
        "measurement",
        "name",
        "refresh",
        "timeout",
        "ttl",
    )

    def __init__(
        self,
        name: str,
        fn: CheckFunction,
        *,
        measurement: str | None = None,
        groups: tuple[str, ...] | list[str] = ("readiness",),
        critical: bool = True,
        timeout: float | None = None,
        ttl: float = DEFAULT_TTL,
        refresh: float | None = None,
        component_type: str = "component",
        component_id: str | None = None,
        in_thread: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = _name("name", name)
        self.measurement = None if measurement is None else _name("measurement", measurement)
        self.key = self.name if self.measurement is None else f"{self.name}:{self.measurement}"
        if not callable(fn):
            raise ConfigError("fn", fn, "must be callable: () -> Result | None (def or async def)")
        self.fn = fn
        # ``async def`` functions, partials of them, and objects with an ``async def __call__``.
        call = getattr(type(fn), "__call__", None)  # noqa: B004 - the method, not callability
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)
        groups_any: object = groups
        if isinstance(groups_any, str) or not isinstance(groups_any, tuple | list) or not groups:
            raise ConfigError("groups", groups, "must be a non-empty list of group names")
        for g in groups:
            if not isinstance(g, str) or not g:
                raise ConfigError("groups", groups, "group names must be non-empty strings")
        self.groups: tuple[str, ...] = tuple(dict.fromkeys(groups))
        self.critical = bool(critical)
        self.timeout = None if timeout is None else _seconds("timeout", timeout, allow_zero=False)
        self.ttl = _seconds("ttl", ttl, allow_zero=True)
        self.refresh = None if refresh is None else _seconds("refresh", refresh, allow_zero=False)
        if not isinstance(component_type, str) or not component_type:
            raise ConfigError(
                "component_type", component_type, f"must be one of {COMPONENT_TYPES} or a URI"
            )
        self.component_type = component_type
        if component_id is not None and not isinstance(component_id, str):
            raise ConfigError("component_id", component_id, "must be a string or None")
        self.component_id = component_id
        self.in_thread = bool(in_thread)
        self.clock = clock
        self._lock = threading.Lock()
        self._report: CheckReport | None = None
        self._expires = -math.inf
        self._inflight: concurrent.futures.Future[CheckReport] | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy_thread = False

    def __repr__(self) -> str:
        return (
            f"Check({self.key!r}, groups={list(self.groups)}, critical={self.critical}, "
            f"timeout={self.timeout}, ttl={self.ttl:g})"
        )

    @property
    def last(self) -> CheckReport | None:
        """The most recent report (cached or stale), or None before the first run."""
        return self._report

    def cached(self) -> CheckReport | None:
        """The report if it is still fresh (``now < recorded + ttl``), else None.  Never runs."""
        r = self._report
        if r is not None and self.clock.monotonic() < self._expires:
            return r
        return None

    async def run(self, *, force: bool = False) -> CheckReport:
        """The fresh cached report, or the result of a run (joining one already in flight).

        ``force=True`` ignores the cache (background refresh) but still joins a run in flight.
        Never raises (except cancellation of the caller).
        """
        if not force:
            r = self._report
            if r is not None and self.clock.monotonic() < self._expires:
                return r
        with self._lock:
            fut = self._inflight
            task = self._task
            if fut is not None and task is not None and task.get_loop().is_closed():
                fut = None  # the run's event loop was closed under it: it will never finish
            if fut is None:
                fut = self._inflight = concurrent.futures.Future()
                # The run is a task of its own so a cancelled caller does not cancel it.
                self._task = asyncio.get_running_loop().create_task(self._run_and_store(fut))
        return await asyncio.shield(asyncio.wrap_future(fut))

    async def _run_and_store(self, fut: concurrent.futures.Future[CheckReport]) -> None:
        try:
            report = await self._execute()
        except Exception as e:  # a bug past _execute's own guards: still a cached failure
            now = self.clock.monotonic()
            report = self._failed(self.clock.wall(), now, 0.0, e, None)
        except BaseException as e:  # cancellation of the loop: release the waiters
            report = self._failed(self.clock.wall(), self.clock.monotonic(), 0.0, e, None)
            with self._lock:
                if self._inflight is fut:
                    self._inflight = None
            fut.set_result(report)
            raise
        with self._lock:
            self._report = report
            self._expires = report.recorded + self.ttl
            if self._inflight is fut:
                self._inflight = None
        fut.set_result(report)

    def _failed(
        self, wall: float, now: float, duration: float, error: BaseException | None, out: str | None
    ) -> CheckReport:
        output = out if out is not None else f"check raised {type(error).__name__}"
        return CheckReport(Status.FAIL, None, None, output, wall, now, duration, error)

    async def _execute(self) -> CheckReport:
        clock = self.clock
        wall = clock.wall()
        t0 = clock.monotonic()
        timeout = self.timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                if self._is_async:
                    out = await self.fn()  # type: ignore[misc]
                elif self.in_thread:
                    if self._busy_thread:
                        now = clock.monotonic()
                        return self._failed(
                            wall, now, now - t0, None, "previous run still in progress"
                        )
                    self._busy_thread = True
                    out = await asyncio.to_thread(self._call_in_thread)
                else:
                    out = self.fn()
                    if inspect.isawaitable(out):
                        out = await out
        except TimeoutError as e:
            now = clock.monotonic()
            if scope.expired():
                return self._failed(wall, now, now - t0, e, f"timed out after {timeout:g}s")
            return self._failed(wall, now, now - t0, e, None)
        except Exception as e:
            now = clock.monotonic()
            return self._failed(wall, now, now - t0, e, None)
        now = clock.monotonic()
        if out is None:
            return CheckReport(Status.PASS, None, None, None, wall, now, now - t0)
        if not isinstance(out, Result):
            return self._failed(
                wall, now, now - t0, None, f"check returned {type(out).__name__}, not a Result"
            )
        status = out.status
        if type(status) is not Status:  # Result validates; a subclass or a hack may not
            try:
                status = Status(status)
            except (ValueError, TypeError) as e:
                return self._failed(
                    wall, now, now - t0, e, "check returned a Result with an invalid status"
                )
        return CheckReport(
            status, out.observed_value, out.observed_unit, out.output, wall, now, now - t0
        )

    def _call_in_thread(self) -> Result | Awaitable[Result | None] | None:
        try:
            out = self.fn()
            if inspect.isawaitable(out):  # a def returning an awaitable: run it here
                return asyncio.run(_await(out))
            return out
        finally:
            self._busy_thread = False


async def _await(aw: Awaitable[Result | None]) -> Result | None:
    return await aw
