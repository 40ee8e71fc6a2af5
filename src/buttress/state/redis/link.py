"""The connection every Redis store of one :class:`~buttress.state.redis.RedisState` shares: the
scripts (by SHA-1, sent as text once after ``NOSCRIPT``), whether Redis is down, and what a
store does around each decision (fall back, report the outage, report the return)."""

from __future__ import annotations

import hashlib
import importlib.resources
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from buttress.clock import Clock
from buttress.errors import MissingExtra
from buttress.events import Emitter
from buttress.state.base import OnUnavailable, StateRestored, StateUnavailable

__all__ = ["DOWN", "Link", "LinkDown", "Script", "SharedStore", "Where", "import_redis"]


def import_redis() -> Any:
    """The ``redis`` package, or :class:`~buttress.errors.MissingExtra`."""
    try:
        import redis
    except ImportError:
        raise MissingExtra("the Redis state store", "redis", "redis") from None
    return redis


def _script_text(name: str) -> str:
    return (importlib.resources.files("buttress.state") / "scripts" / name).read_text("utf-8")


class Script:
    """A Lua script of ``buttress/state/scripts`` after ``prelude.lua`` (the helpers every script
    uses: Redis loads one source per script, with no includes), and its SHA-1 (as Redis names
    it)."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = _script_text("prelude.lua") + _script_text(name)
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


class LinkDown(Exception):
    """Internal: the shared store could not decide (its message says why)."""


class _Down:
    """The type of :data:`DOWN`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DOWN"


DOWN: Final = _Down()
"""What :meth:`SharedStore.ask` returns when Redis did not decide: the caller falls back."""


class Link:
    """One client shared by the stores of one :class:`~buttress.state.redis.RedisState`, and
    whether it is down."""

    __slots__ = (
        "client",
        "down_until",
        "error",
        "errors",
        "mono",
        "noscript",
        "reconnect",
        "retry_interval",
        "scripts",
        "watch",
        "watch_at",
        "watch_interval",
    )

    def __init__(
        self,
        client: Any,
        retry_interval: float,
        clock: Clock,
        *,
        cluster: bool = False,
        watch: Callable[[], object] | None = None,
        watch_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.retry_interval = retry_interval
        self.mono = clock.monotonic
        self.down_until = -math.inf
        self.error = ""
        redis = import_redis()
        exc = redis.exceptions
        # RedisClusterException (keys in different slots, no node reachable) is no RedisError.
        self.errors: tuple[type[BaseException], ...] = (
            exc.RedisError,
            exc.RedisClusterException,
            OSError,
        )
        self.noscript: type[BaseException] = exc.NoScriptError
        # A cluster client built here does not retry inside redis-py (see .clients): one
        # connection error is retried here, which runs the slot-map refresh it asked for.
        self.reconnect: type[BaseException] | None = exc.ConnectionError if cluster else None
        self.scripts = {n: Script(f"{n}.lua") for n in ("breaker", "ratelimit", "budget")}
        self.watch = watch
        """Called before a call at most every ``watch_interval`` (errors ignored): the Sentinel
        client's master lookup, which drops the connections to a master that moved."""
        self.watch_interval = watch_interval
        self.watch_at = -math.inf

    def run(self, script: Script, *args: Any) -> Any:
        """``EVALSHA`` (sending the script itself on ``NOSCRIPT``); any failure raises
        :class:`LinkDown`."""
        watch = self.watch
        if watch is not None:
            self._look(watch)
        try:
            try:
                return self._evalsha(script, args)
            except self.noscript:
                return self._eval(script, args)
            except self.errors as exc:
                if self.reconnect is None or not isinstance(exc, self.reconnect):
                    raise
                try:
                    return self._evalsha(script, args)
                except self.noscript:
                    return self._eval(script, args)
        except self.errors as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.down_until = self.mono() + self.retry_interval
            raise LinkDown(self.error) from None

    def _look(self, watch: Callable[[], object]) -> None:
        now = self.mono()
        if now < self.watch_at:
            return
        self.watch_at = now + self.watch_interval
        try:
            watch()
        except self.errors:
            pass  # the sentinels are unreachable: keep the master we have (the call tells)

    def _evalsha(self, script: Script, args: tuple[Any, ...]) -> Any:
        return self.client.execute_command("EVALSHA", script.sha, *args)

    def _eval(self, script: Script, args: tuple[Any, ...]) -> Any:
        # EVAL, not SCRIPT LOAD then EVALSHA: it goes where the keys are (in a cluster SCRIPT
        # LOAD goes to every master, and fails while any one of them is down), it is one round
        # trip, and Redis caches the script it runs, so the next EVALSHA there finds it.  A
        # restarted server, a SCRIPT FLUSH and a promoted replica (scripts are not replicated)
        # all answer NOSCRIPT once.
        return self.client.execute_command("EVAL", script.source, *args)


@dataclass(frozen=True, slots=True)
class Where:
    """Where a shared store keeps its state, and its rule while Redis is unavailable."""

    link: Link
    key: str
    """Its Redis key, or the prefix of its keys."""
    scope: str
    mode: OnUnavailable
    server_time: bool
    """Scripts read time from Redis (``TIME``) rather than from the ``now`` sent."""


class SharedStore:
    """What every shared store does around its decisions: fallback, events, restore."""

    kind: ClassVar[str] = "state"

    __slots__ = (
        "_down_since",
        "degraded",
        "emitter",
        "key",
        "link",
        "mode",
        "scope",
        "server_time",
    )

    def __init__(self, where: Where) -> None:
        self.link = where.link
        self.key = where.key
        self.scope = where.scope
        self.mode = where.mode
        self.server_time = where.server_time
        self.emitter = Emitter(self.scope)
        self.degraded = False
        self._down_since = 0.0

    def ask(self, op: Callable[..., Any], /, *args: Any) -> Any:
        """``op(*args)``, a decision through Redis, unless Redis is marked down; :data:`DOWN` when
        it is, or when ``op`` raised :class:`LinkDown` (then the outage is reported, once)."""
        link = self.link
        if link.down_until <= link.mono():
            try:
                result = op(*args)
            except LinkDown:
                pass
            else:
                if self.degraded:
                    self._restore()
                return result
        self._down()
        return DOWN

    def _down(self) -> None:
        """Called on every fallback decision; reports the first of an outage."""
        if self.degraded:
            return
        self.degraded = True
        now = self.link.mono()
        self._down_since = now
        em = self.emitter
        if em.active:
            em.emit(
                StateUnavailable(em.pipeline, self.kind, now, "redis", self.link.error, self.mode)
            )

    def _restore(self) -> None:
        """Called when the shared store decided again after an outage."""
        self.degraded = False
        now = self.link.mono()
        self._resync(now)
        em = self.emitter
        if em.active:
            em.emit(StateRestored(em.pipeline, self.kind, now, "redis", now - self._down_since))

    def _resync(self, now: float) -> None:
        """Forget what was decided locally during the outage (the shared state rules again)."""

    def _retry_after(self) -> float:
        """For ``fail_closed`` refusals: until the store is tried again (at least 1 ms)."""
        return max(0.001, self.link.down_until - self.link.mono())
