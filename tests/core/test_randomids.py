"""random_ids: hex ids of the asked width, unique, never inherited by a forked child."""

from __future__ import annotations

import os

import pytest

from buttress.randomids import random_ids


def test_ids_have_the_width_asked_and_do_not_repeat_across_refills() -> None:
    new = random_ids(12, 4)  # a refill every 4 ids
    ids = [new() for _ in range(1_000)]
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_never_hands_out_its_parents_pooled_ids() -> None:
    new = random_ids(8, 64)
    new()  # the pool now holds 63 ids the parent will hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, "".join(new() for _ in range(63)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = f.read()
    os.waitpid(pid, 0)
    parent = {new() for _ in range(63)}
    assert len(child) == 63 * 16
    assert not parent & {child[i : i + 16] for i in range(0, len(child), 16)}


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="nbytes and batch"):
        random_ids(0, 10)
