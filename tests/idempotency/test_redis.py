"""Four uvicorn processes share one real Redis through RedisIdempotencyStore: duplicates of one
key sent to all four at once run once in the whole fleet; every other copy is a 409 or the replay
of that one response."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from .fleet import check_fleet


def test_four_replicas_share_keys_through_redis(redis_url: str, tmp_path: Path) -> None:
    check_fleet(tmp_path, {"IDEM_REDIS": redis_url})


def test_the_redis_store_s_states_and_fences(redis_url: str) -> None:
    import redis.asyncio

    from buttress.integrations.idempotency_stores import RedisIdempotencyStore, StoredResponse

    async def scenario() -> list[object]:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = RedisIdempotencyStore(client, prefix=f"t{os.getpid()}:{time.time_ns()}:")
        r = StoredResponse(201, [(b"x-a", b"1")], b"body")
        seen: list[object] = [
            (await store.begin("k", "fp", "t1", now=0, ttl=100, lock=10)).state,
            (await store.begin("k", "fp", "t2", now=5, ttl=100, lock=10)).state,  # running
            (await store.begin("k", "other", "t2", now=5, ttl=100, lock=10)).state,  # mismatch
            (await store.begin("k", "fp", "t3", now=11, ttl=100, lock=10)).state,  # taken over
            await store.complete("k", "t1", r, now=12, ttl=100),  # the old run: fenced
            await store.complete("k", "t3", r, now=12, ttl=100),
        ]
        done = await store.begin("k", "fp", "t4", now=13, ttl=100, lock=10)
        seen += [done.state, done.response]
        await store.begin("gone", "fp", "t5", now=0, ttl=100, lock=10)
        await store.release("gone", "wrong-token")  # not ours: nothing happens
        seen.append((await store.begin("gone", "fp", "t6", now=1, ttl=100, lock=10)).state)
        await store.release("gone", "t5")
        seen.append((await store.begin("gone", "fp", "t7", now=2, ttl=100, lock=10)).state)
        await client.aclose()
        return seen

    assert [
        "new",
        "running",
        "mismatch",
        "new",
        False,
        True,
        "done",
        StoredResponse(201, [(b"x-a", b"1")], b"body"),
        "running",
        "new",
    ] == asyncio.run(scenario())
