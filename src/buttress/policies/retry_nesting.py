"""How a retry knows it is nested inside another retry's attempt.

Two ways, both read on the failure path only: an enclosing retry's executor on the call stack
(same thread, same task: the sync success path sets nothing, so it costs nothing until an attempt
fails), and a mark in a context variable, set around each attempt by the async executor and by the
hard :class:`~buttress.Timeout` for its worker thread, which child tasks and copied contexts
inherit.  :mod:`buttress.policies.retry` registers its executors' code objects in
:data:`RETRY_CODES`; the hard timeout sets the mark for its worker.
"""

from __future__ import annotations

import contextvars
from types import CodeType
from typing import Any

__all__ = ["RETRY_CODES", "RETRY_MARK", "RetryMark", "in_outer_retry", "new_mark"]


RetryMark = list[Any]
"""``[active, parent]``: set in the context while an enclosing retry's attempt runs (by the async
executor, and by the hard timeout for its worker thread), so retries in child tasks and copied
contexts see that they are nested.  A child task that outlives the attempt (fire and forget) must
not stay "nested" forever, hence ``active`` (index 0), cleared when the attempt ends; ``parent``
(index 1) is the mark it shadows.

A two-item list rather than a class with slots: the async executor makes one per call, and on the
machines of BENCHMARKS.md a list costs about 100 ns less to make than an instance (issue 20).  A
mark kept per task and counting its attempts would save the context variable's set and reset too,
but knowing the current task costs more on Python 3.11: ``asyncio.current_task`` asks
``get_running_loop``, which checks the process id, a system call."""


def new_mark() -> RetryMark:
    """A mark for an attempt starting now, shadowing the one in the context."""
    return [True, RETRY_MARK.get()]


RETRY_MARK: contextvars.ContextVar[RetryMark | None] = contextvars.ContextVar(
    "buttress_retry_mark", default=None
)
# Code objects of the executors' frames; filled in below, after the executors are defined.
RETRY_CODES: set[CodeType] = set()


def in_outer_retry(frame: Any) -> bool:
    """Is an enclosing retry that may retry (``attempts > 1``) on the stack above ``frame``, or
    marked in the context?  Failure path only: it walks the stack.

    Why the stack and not only the context variable: setting a context variable around every
    attempt costs about 150 ns (``ContextVar.set`` and ``reset``, measured on the machines of
    BENCHMARKS.md), half of the sync retry's whole success-path cost (about 300 ns); walking the
    stack costs nothing until an attempt fails.  Where 150 ns is small beside the rest (the async
    executor, the hard timeout's worker thread), the executors do set :data:`RETRY_MARK`.  The
    sync executors are recognised by their code objects, registered once below; an executor that
    cannot retry (``attempts=1``) does not make the retries under it nested.
    """
    m = RETRY_MARK.get()
    while m is not None:
        if m[0]:
            return True
        m = m[1]
    codes = RETRY_CODES
    f = frame
    while f is not None:
        if f.f_code in codes:
            # Every executor closure refers to its policy as ``self`` (a free variable).
            attempts = getattr(f.f_locals.get("self"), "attempts", None)
            if not isinstance(attempts, int) or attempts > 1:
                return True
        f = f.f_back
    return False
