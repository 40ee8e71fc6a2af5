"""The registry: checks in groups, evaluated into one status per group.

Groups: ``liveness``, ``readiness`` and ``startup`` exist from the start; :meth:`HealthRegistry.
add_group` adds your own (``"batch"``, ``"admin"``).  ``"*"`` evaluates every check.

A group's status is the worst of its checks' *effective* statuses::

    effective(check) = check status                      if the check is critical
                     = warn   if check status is fail    if it is not critical
    group status     = max(effective) over its checks, with fail > warn > pass; pass if empty

So a non-critical check (a circuit breaker's state, a cache) can only make a group warn, and a
warn answers HTTP 200: it never takes the instance out of the load balancer.

While the registry is *draining* (:meth:`HealthRegistry.set_draining`, done by
:mod:`buttress.health.drain` on SIGTERM), every group in ``drain_groups`` (default: readiness)
carries one extra failing entry, ``server:draining``, so the instance is taken out of rotation
before it stops.

Each check's timeout must fit in the probe's own timeout (``probe_timeout`` of every group it is
in, default 1 s, the kubelet's default ``timeoutSeconds``): a longer one is refused when the check
is added.  A check added without a timeout gets ``0.8 x`` the smallest probe timeout of its groups.
"""

from __future__ import annotations

import asyncio
import difflib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Unpack

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Emitter, Event

from .checks import Check, CheckFunction, CheckOptions, CheckReport, Status
from .healthjson import encode, to_health_json
from .report import Entry, HealthReport

__all__ = [
    "ALL",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_TIMEOUT_SHARE",
    "LIVENESS",
    "READINESS",
    "STARTUP",
    "CheckStatusChanged",
    "Entry",
    "HealthRegistry",
    "HealthReport",
]

LIVENESS = "liveness"
READINESS = "readiness"
STARTUP = "startup"
ALL = "*"

DEFAULT_PROBE_TIMEOUT = 1.0
"""The kubelet's default probe ``timeoutSeconds``."""

DEFAULT_TIMEOUT_SHARE = 0.8
"""A check without a timeout gets this share of its groups' smallest probe timeout, leaving the
rest for the response to travel back before the prober gives up."""


@dataclass(frozen=True, slots=True)
class CheckStatusChanged(Event, policy_type="health", kind="status_changed"):
    """A check's status changed (``buttress_health_status_changed``); ``previous`` is None on the
    first run.  ``pipeline`` is the registry's name, ``policy`` the check's key."""

    previous: str | None
    status: str
    critical: bool


def _effective(check: Check, status: Status) -> Status:
    if status is Status.FAIL and not check.critical:
        return Status.WARN
    return status


def _draining_fn() -> None:  # the draining entry is never run; its report is made directly
    return None


class HealthRegistry:
    """Checks in groups; evaluates a group, renders ``application/health+json``.

    :param service_id: ``serviceId`` in responses (omitted when None).
    :param version: ``version`` in responses (omitted when None).
    :param release_id: ``releaseId`` in responses (omitted when None).
    :param description: ``description`` in responses (omitted when None).
    :param probe_timeouts: probe timeout in seconds per built-in group (default 1 s each).
    :param drain_groups: the groups that fail while draining.  Default ``("readiness",)``.
    :param expose_errors: render exception text in ``output`` (default False: never, as exception
        messages may carry hostnames, connection strings and passwords).
    :param name: labels events (``pipeline=<name>``).  Default ``"health"``.
    :param clock: time for drain entries (checks carry their own clock).
    """

    def __init__(
        self,
        *,
        service_id: str | None = None,
        version: str | None = None,
        release_id: str | None = None,
        description: str | None = None,
        probe_timeouts: Mapping[str, float] | None = None,
        drain_groups: Iterable[str] = (READINESS,),
        expose_errors: bool = False,
        name: str = "health",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.service_id = service_id
        self.version = version
        self.release_id = release_id
        self.description = description
        self.expose_errors = bool(expose_errors)
        self.name = name
        self.clock = clock
        self.emitter = Emitter(name)
        self._lock = threading.Lock()
        self._probe_timeouts: dict[str, float] = {}
        self._checks: dict[str, Check] = {}
        self._by_group: dict[str, tuple[Check, ...]] = {}
        for g in (LIVENESS, READINESS, STARTUP):
            self.add_group(g, probe_timeout=DEFAULT_PROBE_TIMEOUT)
        for g, t in (probe_timeouts or {}).items():
            self.check_group("probe_timeouts", g)
            self._probe_timeouts[g] = _positive("probe_timeouts", t)
        if isinstance(drain_groups, str):
            raise ConfigError("drain_groups", drain_groups, "must be a list of group names")
        self.drain_groups = tuple(drain_groups)
        for g in self.drain_groups:
            self.check_group("drain_groups", g)
        self._draining_check = Check(
            "server", _draining_fn, measurement="draining", component_type="system", clock=clock
        )
        self._draining_entry: Entry | None = None
        self._render_cache: dict[str, tuple[list[CheckReport], Entry | None, int, bytes]] = {}
        self._seen: dict[str, CheckReport] = {}
        self._refresh_tasks: list[asyncio.Task[None]] = []
        self._refresh_loop: asyncio.AbstractEventLoop | None = None
        self._needs_refresher = False
        self._bg_loop: asyncio.AbstractEventLoop | None = None
        self._bg_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        groups = {g: len(self._by_group[g]) for g in self._probe_timeouts}
        return f"HealthRegistry(name={self.name!r}, checks_per_group={groups})"

    # -- building ----------------------------------------------------------------------------------

    @property
    def groups(self) -> tuple[str, ...]:
        """The known group names (``"*"`` is always accepted too)."""
        return tuple(self._probe_timeouts)

    def probe_timeout(self, group: str) -> float:
        """The probe timeout of ``group`` (seconds)."""
        return self._probe_timeouts[self.check_group("group", group)]

    def add_group(self, name: str, *, probe_timeout: float = DEFAULT_PROBE_TIMEOUT) -> None:
        """Add a user group (``probe_timeout``: the timeout of whatever probes it, > 0)."""
        if not isinstance(name, str) or not name or name == ALL:
            raise ConfigError("name", name, "must be a non-empty group name other than '*'")
        if name in self._probe_timeouts:
            raise ConfigError("name", name, "a group with this name exists")
        self._probe_timeouts[name] = _positive("probe_timeout", probe_timeout)
        self._by_group[name] = ()

    def check_group(self, parameter: str, group: str, *, allow_all: bool = False) -> str:
        """``group`` if this registry has it (``"*"`` too with ``allow_all``), else
        :class:`~buttress.errors.ConfigError` naming ``parameter``, the known groups and the
        closest one."""
        if group in self._probe_timeouts or (allow_all and group == ALL):
            return group
        known = list(self._probe_timeouts) + ([ALL] if allow_all else [])
        close = difflib.get_close_matches(str(group), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            parameter,
            group,
            f"unknown group (known: {', '.join(known)}){hint} - add it with add_group()",
        )

    def add(self, check: Check) -> Check:
        """Register ``check`` in its groups; returns it.

        Raises :class:`~buttress.errors.ConfigError` for an unknown group, a duplicate key, or a
        timeout longer than a group's probe timeout.
        """
        if not isinstance(check, Check):
            raise ConfigError("check", check, "must be a buttress.health.Check")
        for g in check.groups:
            self.check_group("groups", g)
        if check.key in self._checks:
            raise ConfigError("name", check.key, "a check with this name:measurement exists")
        limit = min(self._probe_timeouts[g] for g in check.groups)
        if check.timeout is None:
            check.timeout = DEFAULT_TIMEOUT_SHARE * limit
        else:
            for g in check.groups:
                pt = self._probe_timeouts[g]
                if check.timeout > pt:
                    raise ConfigError(
                        "timeout",
                        check.timeout,
                        f"check {check.key!r} would outlast the {g!r} probe timeout of {pt:g}s "
                        "(the prober gives up first); lower the check's timeout or raise the "
                        "group's probe_timeout",
                    )
        with self._lock:
            self._checks[check.key] = check
            for g in check.groups:
                self._by_group[g] = (*self._by_group[g], check)
            if check.refresh is not None:
                self._needs_refresher = True
        self._render_cache.clear()
        return check

    def check(
        self, name: str, **options: Unpack[CheckOptions]
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Decorator: register the decorated function as a check named ``name``::

        @health.check("db", measurement="connections", timeout=0.5)
        async def db() -> Result | None: ...
        """

        def register(fn: CheckFunction) -> CheckFunction:
            self.add(Check(name, fn, **options))
            return fn

        return register

    def checks(self, group: str = ALL) -> tuple[Check, ...]:
        """The checks of ``group`` (every check for ``"*"``)."""
        if group == ALL:
            return tuple(self._checks.values())
        return self._by_group[self.check_group("group", group)]

    # -- draining ----------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """True while the drain groups fail on purpose (the server is about to stop)."""
        return self._draining_entry is not None

    def set_draining(self, draining: bool = True) -> None:
        """Make the drain groups fail (True) or stop doing so (False).  Safe from signal handlers
        and other threads (one attribute write)."""
        if draining:
            now = self.clock.monotonic()
            report = CheckReport(
                Status.FAIL,
                True,
                None,
                "draining: the server is shutting down",
                self.clock.wall(),
                now,
                0.0,
            )
            self._draining_entry = Entry(self._draining_check, report, Status.FAIL)
        else:
            self._draining_entry = None

    # -- evaluating --------------------------------------------------------------------------------

    def _checks_of(self, group: str) -> tuple[Check, ...]:
        checks = self._by_group.get(group)
        if checks is not None:
            return checks
        if group == ALL:
            return tuple(self._checks.values())
        return self._by_group[self.check_group("group", group)]

    async def evaluate(self, group: str = READINESS) -> HealthReport:
        """Run (or read from cache) every check of ``group`` concurrently and aggregate."""
        checks = self._checks_of(group)
        if self._needs_refresher:
            self.ensure_refreshing()
        reports: list[CheckReport | None] = [c.cached() for c in checks]
        missing = [i for i, r in enumerate(reports) if r is None]
        if missing:
            ran = await asyncio.gather(*(checks[i].run() for i in missing))
            for i, r in zip(missing, ran, strict=True):
                reports[i] = r
                self._observe(checks[i], r)
        status = Status.PASS
        entries: list[Entry] = []
        for c, rep in zip(checks, reports, strict=True):
            assert rep is not None
            eff = _effective(c, rep.status)
            if eff is not Status.PASS and (status is Status.PASS or eff is Status.FAIL):
                status = eff
            entries.append(Entry(c, rep, eff))
        drain = self._draining_entry
        draining = drain is not None
        if drain is not None and (group == ALL or group in self.drain_groups):
            entries.append(drain)
            status = Status.FAIL
        return HealthReport(group, status, tuple(entries), draining)

    def _observe(self, check: Check, report: CheckReport) -> None:
        prev = self._seen.get(check.key)
        if prev is report:
            return
        self._seen[check.key] = report
        if self.emitter.active and (prev is None or prev.status is not report.status):
            self.emitter.emit(
                CheckStatusChanged(
                    self.name,
                    check.key,
                    self.clock.monotonic(),
                    None if prev is None else prev.status.value,
                    report.status.value,
                    check.critical,
                )
            )

    def to_json(self, report: HealthReport) -> dict[str, Any]:
        """``report`` as a health+json document (see :mod:`buttress.health.healthjson`)."""
        return to_health_json(
            report,
            service_id=self.service_id,
            version=self.version,
            release_id=self.release_id,
            description=self.description,
            expose_errors=self.expose_errors,
        )

    async def respond(self, group: str = READINESS) -> tuple[int, bytes]:
        """Evaluate ``group`` and return ``(http status, health+json body)``.

        The body is rendered again only when a report changed: with cached checks, a probe costs
        the cache look-ups and one comparison.
        """
        if self._needs_refresher:
            self.ensure_refreshing()
        hit = self._render_cache.get(group)
        if hit is not None:
            # Fast path: every check's fresh report is the one last rendered (list equality
            # compares by identity first), and draining has not changed since.
            checks = self._checks_of(group)
            if hit[0] == [c.cached() for c in checks] and hit[1] is self._draining_entry:
                return hit[2], hit[3]
        drain = self._draining_entry
        report = await self.evaluate(group)
        key = [e.report for e in report.entries if e is not drain]
        body = encode(self.to_json(report))
        status = report.http_status
        self._render_cache[group] = (key, drain, status, body)
        return status, body

    # -- synchronous callers (WSGI, threads) -------------------------------------------------------

    def evaluate_sync(self, group: str = READINESS) -> HealthReport:
        """:meth:`evaluate` from synchronous code, on the registry's own event-loop thread."""
        return asyncio.run_coroutine_threadsafe(self.evaluate(group), self._loop_thread()).result()

    def respond_sync(self, group: str = READINESS) -> tuple[int, bytes]:
        """:meth:`respond` from synchronous code, on the registry's own event-loop thread."""
        return asyncio.run_coroutine_threadsafe(self.respond(group), self._loop_thread()).result()

    def _loop_thread(self) -> asyncio.AbstractEventLoop:
        loop = self._bg_loop
        if loop is not None:
            return loop
        with self._lock:
            if self._bg_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"buttress-health-{self.name}", daemon=True
                )
                thread.start()
                self._bg_thread = thread
                self._bg_loop = loop
            return self._bg_loop

    def close(self) -> None:
        """Stop background refresh and the registry's own event-loop thread (if started)."""
        loop, thread = self._bg_loop, self._bg_thread
        if loop is not None and thread is not None:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()
            self._bg_loop = self._bg_thread = None

    # -- background refresh ------------------------------------------------------------------------

    def ensure_refreshing(self) -> None:
        """Start the background refresh of checks with ``refresh`` set, in the running loop, unless
        it runs there already.  Called by :meth:`evaluate`; call :meth:`start` to begin earlier."""
        loop = asyncio.get_running_loop()
        if self._refresh_loop is loop and not loop.is_closed():
            return
        self._refresh_tasks = [
            loop.create_task(self._refresh(c))
            for c in self._checks.values()
            if c.refresh is not None
        ]
        self._refresh_loop = loop

    async def start(self) -> None:
        """Start background refresh now (for example in the app's lifespan startup)."""
        self.ensure_refreshing()

    async def stop(self) -> None:
        """Cancel background refresh (for example in the app's lifespan shutdown)."""
        tasks, self._refresh_tasks = self._refresh_tasks, []
        self._refresh_loop = None
        for t in tasks:
            t.cancel()
        here = asyncio.get_running_loop()
        await asyncio.gather(*(t for t in tasks if t.get_loop() is here), return_exceptions=True)

    async def _refresh(self, check: Check) -> None:
        assert check.refresh is not None
        while True:
            report = await check.run(force=True)
            self._observe(check, report)
            await check.clock.sleep_async(check.refresh)


def _positive(parameter: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(parameter, value, "must be a number of seconds > 0")
    if value == float("inf"):
        raise ConfigError(parameter, value, "must be finite")
    return float(value)
