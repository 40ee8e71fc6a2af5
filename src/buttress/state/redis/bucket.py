"""The rate limiter's buckets on Redis: :class:`RedisBucketStore`.

The GCRA step itself is the script ``scripts/ratelimit.lua`` (and, while Redis is unavailable, the
in-process :class:`~buttress.policies.ratelimit.MemoryBucketStore`); nothing here decides.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar

from buttress.errors import ConfigError
from buttress.policies.ratelimit import MemoryBucketStore

from .link import DOWN, SharedStore, Where

__all__ = ["RedisBucketStore", "check_share"]


def check_share(value: object) -> float:
    """``local_share`` within (0, 1], or :class:`~buttress.errors.ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError("local_share", value, "must be within (0, 1]")
    return float(value)


class RedisBucketStore(SharedStore):
    """A :class:`~buttress.policies.ratelimit.BucketStore` on Redis: every key's GCRA bucket, one
    script call per decision, on the server's clock (the ``now`` passed in is used only by the
    local fallback).

    While Redis is unavailable: ``local`` decides with an in-process bucket at ``local_share`` of
    the rate (the same burst); ``fail_open`` admits; ``fail_closed`` refuses with ``retry_after`` =
    time until Redis is tried again.
    """

    kind: ClassVar[str] = "rate_limiter"

    __slots__ = ("_script", "local", "local_share", "max_keys")

    def __init__(self, where: Where, *, max_keys: int, local_share: float) -> None:
        super().__init__(where)
        self.local_share = check_share(local_share)
        self.max_keys = max_keys
        self.local = MemoryBucketStore(max_keys)
        self._script = self.link.scripts["ratelimit"]

    def __repr__(self) -> str:
        return f"RedisBucketStore(scope={self.scope!r}, on_unavailable={self.mode!r})"

    def redis_key(self, key: Hashable) -> str:
        """The Redis key of ``key``'s bucket."""
        if key is None:
            return self.key
        return f"{self.key}:{key if isinstance(key, str | int) else repr(key)}"

    def acquire(
        self, key: Hashable, now: float, increment: float, tolerance: float, max_wait: float
    ) -> float:
        r = self.ask(
            self.link.run,
            self._script,
            1,
            self.key if key is None else self.redis_key(key),
            b"" if self.server_time else repr(now),
            increment,
            tolerance,
            max_wait,
        )
        if r is not DOWN:
            return float(r)
        mode = self.mode
        if mode == "fail_open":
            return 0.0
        if mode == "fail_closed":
            return -self._retry_after()
        share = self.local_share
        return self.local.acquire(key, now, increment / share, tolerance / share, max_wait)

    def _resync(self, now: float) -> None:
        self.local = MemoryBucketStore(self.max_keys)
