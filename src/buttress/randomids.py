"""Random hex ids handed out from a pool (one system call per batch, not one per id).

Idempotency-lock tokens and outbox message ids are both minted on a hot path; ``os.urandom`` per
id costs a system call each. A pool refilled a batch at a time keeps the ids as unpredictable
(the same source) at a fraction of the cost. ``deque.pop`` is atomic, so threads share a pool
safely, and a forked child empties its copy: it must never hand out its parent's ids.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable

__all__ = ["random_ids"]


def random_ids(nbytes: int, batch: int) -> Callable[[], str]:
    """A function returning ``nbytes`` random bytes as hex on each call, ``batch`` per refill."""
    if nbytes < 1 or batch < 1:
        raise ValueError(f"nbytes and batch must be >= 1, got {nbytes} and {batch}")
    width = 2 * nbytes
    pool: deque[str] = deque()
    os.register_at_fork(after_in_child=pool.clear)

    def new_id() -> str:
        try:
            return pool.pop()
        except IndexError:
            fresh = os.urandom(nbytes * batch).hex()
            pool.extend(fresh[i : i + width] for i in range(width, len(fresh), width))
            return fresh[:width]

    return new_id
