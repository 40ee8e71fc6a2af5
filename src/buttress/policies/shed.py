"""Priority load shedding: as utilisation rises, shed the least critical traffic first.

Every request carries a :class:`Criticality`, least to most critical: ``sheddable``, ``low``,
``high``, ``critical``.  Each class has a threshold ``θ`` within ``(0, 1]``; with ``inflight`` calls
running against a limit ``limit``, a call of class ``c`` is admitted iff::

    inflight < θ[c] * limit            (utilisation inflight / limit is below the class's threshold)

Defaults: ``sheddable`` 0.5, ``low`` 0.7, ``high`` 0.9, ``critical`` 1.0.  Thresholds must not
decrease with criticality (checked at build time), so for any utilisation, if a class is admitted
every more critical class is admitted too: critical traffic is never shed while anything else is
served, and it is shed only at 100% (the limit itself).

Where ``limit`` and ``inflight`` come from (``capacity``):

* an integer: the shedder's own limit, counting its own calls (check and count under one lock);
* an :class:`~buttress.policies.limits.AdaptiveLimit` or a
  :class:`~buttress.policies.bulkhead.Bulkhead` (anything with ``limit`` and ``inflight``):
  utilisation of *that* limit, read when the call arrives. Place the shedder just outside it (the
  default order does: shedding 55, adaptive limit 58, bulkhead 60); the limit itself still enforces
  its hard cap.

The class of a call: the :func:`criticality` context (a context variable, so it follows threads and
tasks), else the ``criticality`` property of the call's :class:`~buttress.context.Context`, else the
shedder's ``default`` (``critical``: an unlabelled call is never shed before the limit, so adding a
shedder never hurts traffic nobody has classified).
"""

from __future__ import annotations

import contextvars
import enum
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import CURRENT_CONTEXT
from buttress.errors import ConfigError, LoadShed
from buttress.events import Emitter, Event
from buttress.options import Options, check_number, custom, documented, duration

from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync

__all__ = [
    "LoadShedderOptions",
    "DEFAULT_THRESHOLDS",
    "Criticality",
    "LimitSource",
    "LoadShedder",
    "Shed",
    "criticality",
    "current_criticality",
    "parse_criticality",
]


class Criticality(enum.IntEnum):
    """How much a request matters; a larger value is more critical."""

    SHEDDABLE = 0
    LOW = 1
    HIGH = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        """The lower-case name used in headers, specs and events."""
        return self.name.lower()


_NAMES = {c.label: c for c in Criticality}

DEFAULT_THRESHOLDS: Mapping[Criticality, float] = {
    Criticality.SHEDDABLE: 0.5,
    Criticality.LOW: 0.7,
    Criticality.HIGH: 0.9,
    Criticality.CRITICAL: 1.0,
}
DEFAULT_RETRY_AFTER = 1.0

_CRITICALITY: contextvars.ContextVar[Criticality | None] = contextvars.ContextVar(
    "buttress_criticality", default=None
)


def parse_criticality(value: str | Criticality, parameter: str = "criticality") -> Criticality:
    """``"low"`` (any case) or a :class:`Criticality` to the member; :class:`ConfigError` naming
    ``parameter`` for anything else."""
    if isinstance(value, Criticality):
        return value
    if isinstance(value, str):
        found = _NAMES.get(value.strip().lower())
        if found is not None:
            return found
    raise ConfigError(parameter, value, f"unknown criticality; expected one of {', '.join(_NAMES)}")


class criticality:
    """Mark every call inside the block (sync or async, and tasks it starts) with a criticality."""

    __slots__ = ("_token", "value")

    def __init__(self, value: str | Criticality) -> None:
        self.value = parse_criticality(value)
        self._token: contextvars.Token[Criticality | None] | None = None

    def __enter__(self) -> Criticality:
        self._token = _CRITICALITY.set(self.value)
        return self.value

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _CRITICALITY.reset(self._token)
        self._token = None

    async def __aenter__(self) -> Criticality:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def current_criticality(default: Criticality | None = None) -> Criticality | None:
    """The criticality in force: the :class:`criticality` block, else the call context's
    ``criticality`` property, else ``default``."""
    c = _CRITICALITY.get()
    if c is not None:
        return c
    ctx = CURRENT_CONTEXT.get()
    if ctx is not None:
        prop = ctx.properties.get("criticality")
        if prop is not None:
            return parse_criticality(prop, "context.properties['criticality']")
    return default


@runtime_checkable
class LimitSource(Protocol):
    """Anything whose utilisation can be read: a limit and the calls counted against it."""

    @property
    def limit(self) -> int: ...
    @property
    def inflight(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Shed(Event, policy_type="load_shedder", kind="shed"):
    """A call of class ``criticality`` was shed at ``inflight`` of ``limit``."""

    criticality: str
    inflight: int
    limit: int


def _thresholds(given: Mapping[str | Criticality, float] | None) -> tuple[float, ...]:
    table = dict(DEFAULT_THRESHOLDS)
    if given is not None:
        if not isinstance(given, Mapping):
            raise ConfigError("thresholds", given, "must be a mapping of criticality to a fraction")
        for k, v in given.items():
            c = parse_criticality(k, f"thresholds[{k!r}]")
            table[c] = check_number(f"thresholds[{c.label!r}]", v, gt=0, le=1)
    ordered = tuple(table[c] for c in Criticality)
    for lower, higher in zip(Criticality, list(Criticality)[1:], strict=False):
        if table[lower] > table[higher]:
            raise ConfigError(
                f"thresholds[{lower.label!r}]",
                table[lower],
                f"must not exceed the threshold of the more critical {higher.label!r} "
                f"({table[higher]:g}): less critical traffic is shed first",
            )
    return ordered


def _capacity(name: str, v: object) -> object:
    if isinstance(v, bool):
        raise ConfigError(name, v, "must be an integer >= 1 or a limit source")
    if isinstance(v, int):
        if v < 1:
            raise ConfigError(name, v, "must be an integer >= 1")
        return v
    if isinstance(v, LimitSource):
        return v
    raise ConfigError(name, v, "must be an integer >= 1 or have `limit` and `inflight`")


def _threshold_table(name: str, v: object) -> object:
    if v is None:
        return None
    ordered = _thresholds(v)  # type: ignore[arg-type]
    return {c.label: t for c, t in zip(Criticality, ordered, strict=True)}


def _criticality(name: str, v: object) -> Criticality:
    return parse_criticality(v, name)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class LoadShedderOptions(Options):
    """Options of :class:`LoadShedder` (``load_shedding:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "LoadShedder"

    capacity: int | LimitSource = custom(
        100,
        "An integer limit of the shedder's own, or a limit source (an AdaptiveLimit, a Bulkhead; "
        "in reliability.yaml: adaptive_limit, the pipeline's own)",
        check=_capacity,
        spec=True,
    )
    thresholds: Mapping[str | Criticality, float] | None = custom(
        None,
        "Per-class utilisation thresholds within (0, 1], by name; missing classes keep their "
        "defaults (sheddable 0.5, low 0.7, high 0.9, critical 1.0); they must not decrease with "
        "criticality",
        check=_threshold_table,
        optional=True,
        spec=True,
    )
    default: Criticality = custom(
        Criticality.CRITICAL,
        "The class of calls that carry none",
        check=_criticality,
        spec=True,
        shown="'critical'",
    )
    retry_after: float = duration(
        DEFAULT_RETRY_AFTER,
        "Seconds suggested to a shed caller (the Retry-After of the ASGI middleware)",
        gt=0,
        ge=None,
    )


@documented(LoadShedderOptions)
class LoadShedder(Policy):
    """Shed calls by criticality as utilisation of a limit rises.

    Refusals raise :class:`~buttress.errors.LoadShed` with ``retry_after``; ``clock`` is the clock
    events are stamped with.
    """

    kind: ClassVar[str] = "load_shedder"
    order: ClassVar[int] = 55

    # Slots: the hot path reads and writes these (measured slower through a __dict__).
    __slots__ = (
        "_caps",
        "_inflight",
        "_lock",
        "_own",
        "clock",
        "default",
        "name",
        "options",
        "retry_after",
        "source",
        "thresholds",
    )

    def __init__(
        self,
        capacity: int | LimitSource = LoadShedderOptions.capacity,
        *,
        thresholds: Mapping[str | Criticality, float] | None = LoadShedderOptions.thresholds,
        default: str | Criticality = LoadShedderOptions.default,
        retry_after: float = LoadShedderOptions.retry_after,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "load_shedder",
    ) -> None:
        o = self.options = LoadShedderOptions.from_arguments(locals())
        if isinstance(o.capacity, int):
            self._own = o.capacity
            self.source: LimitSource | None = None
        else:
            self._own = 0
            self.source = o.capacity
        self.thresholds = _thresholds(o.thresholds)
        # Admission bounds for an own capacity, by class: inflight < thresholds[c] * capacity.
        self._caps = tuple(t * self._own for t in self.thresholds)
        self.default = o.default
        self.retry_after = o.retry_after
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._inflight = 0

    def __repr__(self) -> str:
        cap = self._own if self.source is None else type(self.source).__name__
        th = ", ".join(
            f"{c.label}={t:g}" for c, t in zip(Criticality, self.thresholds, strict=True)
        )
        return f"LoadShedder(name={self.name!r}, capacity={cap}, {th})"

    # -- state -------------------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The limit utilisation is measured against."""
        return self._own if self.source is None else self.source.limit

    @property
    def inflight(self) -> int:
        """Calls counted against the limit now."""
        return self._inflight if self.source is None else self.source.inflight

    @property
    def utilisation(self) -> float:
        """``inflight / limit`` now."""
        limit = self.limit
        return self.inflight / limit if limit > 0 else 1.0

    # -- the decision (pure) -----------------------------------------------------------------------

    def admits(self, c: Criticality, inflight: int, limit: int) -> bool:
        """Would a call of class ``c`` be admitted at ``inflight`` calls against ``limit``?"""
        return inflight < self.thresholds[c] * limit

    def try_acquire(self, c: Criticality | str | None = None) -> bool:
        """Admit a call of class ``c`` (default: the class in force) if its threshold allows.

        With an own capacity, each admission must be paired with :meth:`release`.
        """
        cls = self._class_of(c)
        if self.source is None:
            with self._lock:
                n = self._inflight
                if n < self._caps[cls]:
                    self._inflight = n + 1
                    return True
                return False
        src = self.source
        return src.inflight < self.thresholds[cls] * src.limit

    def release(self) -> None:
        """End a call admitted by :meth:`try_acquire` (a no-op with an external limit source)."""
        if self.source is None:
            with self._lock:
                self._inflight -= 1

    def _class_of(self, c: Criticality | str | None) -> Criticality:
        if c is None:
            found = current_criticality(self.default)
            assert found is not None
            return found
        return parse_criticality(c)

    def report_shed(self, c: Criticality, em: Emitter) -> None:
        """Emit :class:`Shed` for a call of class ``c`` (when someone listens)."""
        if em.active:
            em.emit(
                Shed(
                    em.pipeline,
                    self.name,
                    self.clock.monotonic(),
                    c.label,
                    self.inflight,
                    self.limit,
                )
            )

    def shed_error(self, c: Criticality, em: Emitter | None = None) -> LoadShed:
        """The refusal for class ``c`` (emitting :class:`Shed` when someone listens)."""
        if em is not None:
            self.report_shed(c, em)
        inflight, limit = self.inflight, self.limit
        return LoadShed(
            f"load shedder {self.name!r}: shed {c.label} call at utilisation "
            f"{inflight}/{limit} (threshold {self.thresholds[c]:g})",
            policy=self.name,
            retry_after=self.retry_after,
        )

    # -- executors ---------------------------------------------------------------------------------

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        lock = self._lock
        caps = self._caps
        src = self.source
        thresholds = self.thresholds
        cvar = _CRITICALITY
        ctxvar = CURRENT_CONTEXT
        class_of = self._class_of
        default = self.default
        err = self.shed_error
        direct = nxt is invoke_sync
        em = emitter
        me = self

        if src is not None:

            def shed_call_source(
                fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                c = cvar.get()
                if c is None:
                    c = default if ctxvar.get() is None else class_of(None)
                if not src.inflight < thresholds[c] * src.limit:
                    raise err(c, em)
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)

            return shed_call_source

        def shed_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            c = cvar.get()
            if c is None:
                c = default if ctxvar.get() is None else class_of(None)
            with lock:
                n = me._inflight
                ok = n < caps[c]
                if ok:
                    me._inflight = n + 1
            if not ok:
                raise err(c, em)
            try:
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            finally:
                with lock:
                    me._inflight -= 1

        return shed_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        lock = self._lock
        caps = self._caps
        src = self.source
        thresholds = self.thresholds
        cvar = _CRITICALITY
        ctxvar = CURRENT_CONTEXT
        class_of = self._class_of
        default = self.default
        err = self.shed_error
        direct = nxt is invoke_async
        em = emitter
        me = self

        if src is not None:

            async def shed_call_source_async(
                fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                c = cvar.get()
                if c is None:
                    c = default if ctxvar.get() is None else class_of(None)
                if not src.inflight < thresholds[c] * src.limit:
                    raise err(c, em)
                return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))

            return shed_call_source_async

        async def shed_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            c = cvar.get()
            if c is None:
                c = default if ctxvar.get() is None else class_of(None)
            with lock:
                n = me._inflight
                ok = n < caps[c]
                if ok:
                    me._inflight = n + 1
            if not ok:
                raise err(c, em)
            try:
                return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            finally:
                with lock:
                    me._inflight -= 1

        return shed_call_async
