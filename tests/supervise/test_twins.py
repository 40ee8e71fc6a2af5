"""The asyncio supervisor carries out exactly the decisions of the sans-I/O core: the same
scripted exits, fed to both, give the same starts and the same running set."""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.supervise import (
    ChildOptions,
    Restart,
    Supervisor,
    SupervisorCore,
    SupervisorOptions,
    TaskChild,
    TaskContext,
)

NAMES = ("a", "b", "c", "d")


async def _scenario(strategy: str, kinds: list[str], steps: list[tuple[int, bool]]) -> None:
    runs: Counter[str] = Counter()
    outcome: dict[str, asyncio.Future[bool]] = {}

    def body(name: str):  # type: ignore[no-untyped-def]
        async def run(ctx: TaskContext) -> None:
            runs[name] += 1
            outcome[name] = asyncio.get_running_loop().create_future()
            if await outcome[name]:
                raise RuntimeError("scripted failure")

        return run

    options = {
        n: ChildOptions(restart=k, backoff_initial=0.0) for n, k in zip(NAMES, kinds, strict=False)
    }  # type: ignore[arg-type]
    sup_options = {"strategy": strategy, "intensity": 1000, "period": 1.0}
    children = [TaskChild(n, body(n), **options[n].as_kwargs()) for n in NAMES]
    sup = Supervisor("twin", children, **sup_options)
    core = SupervisorCore([(n, options[n]) for n in NAMES], SupervisorOptions(**sup_options))  # type: ignore[arg-type]
    expected: Counter[str] = Counter(NAMES)
    for n in NAMES:
        core.started(n, 0.0)
    await sup.start()
    await sup.ready()

    async def settled() -> None:
        async with asyncio.timeout(5):
            while not (
                runs == expected
                and all(not outcome[n].done() for n in core.running)
                and {c["name"] for c in sup.snapshot()["children"] if c["state"] == "running"}
                == core.running
            ):
                await asyncio.sleep(0.001)

    try:
        await settled()
        for index, failed in steps:
            name = NAMES[index]
            if name not in core.running:
                continue
            outcome[name].set_result(failed)
            decision = core.exited(name, 0.0, failed=failed)
            if isinstance(decision, Restart):
                for n in decision.stop:
                    core.stopped(n)
                for n in decision.start:
                    core.started(n, 0.0)
                    expected[n] += 1
            await settled()
    finally:
        await sup.stop()
    assert expected == runs


@settings(max_examples=30, deadline=None)
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    kinds=st.lists(
        st.sampled_from(["permanent", "transient", "temporary"]), min_size=4, max_size=4
    ),
    steps=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=12),
)
def test_the_supervisor_does_what_the_core_decides(
    strategy: str, kinds: list[str], steps: list[tuple[int, bool]]
) -> None:
    asyncio.run(_scenario(strategy, kinds, steps))
