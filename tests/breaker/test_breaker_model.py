"""Stateful model tests: the breaker against the naive reference model in ``model.py``.

Two machines: one drives the sans-I/O :class:`BreakerMachine` directly (with calls left in flight
across transitions), the other drives the :class:`CircuitBreaker` policy through a real pipeline on
a fake clock (so the lock-free success path and its folding are checked too).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

from buttress import CircuitOpen, Pipeline, Rejected
from buttress.policies.breaker import (
    BreakerMachine,
    BreakerState,
    CircuitBreaker,
    Permit,
    Reject,
    Trigger,
)
from buttress.testing import FakeClock

from .model import Model

SLOW = 2.0  # slow_call_duration in these tests
BREAKS = [1.0, 2.0, 4.0]

configs = st.fixed_dictionaries(
    {
        "failure_rate_threshold": st.sampled_from([0.25, 0.3, 0.5, 1.0]),
        "slow_call_rate_threshold": st.sampled_from([0.5, 1.0]),
        "minimum_calls": st.integers(1, 6),
        "window": st.sampled_from(
            [("count", 4, None), ("count", 7, None), ("time", 4, 4), ("time", 2, 8)]
        ),
        "permitted": st.integers(1, 3),
        "half_open_timeout": st.sampled_from([1.5, 3.0]),
    }
)
steps = st.sampled_from([0.0, 0.125, 0.5, 1.0, 1.75, 3.0])


def _build(cfg: dict[str, Any], now: float) -> tuple[dict[str, Any], Model]:
    wtype, size, buckets = cfg["window"]
    kwargs = {
        "failure_rate_threshold": cfg["failure_rate_threshold"],
        "slow_call_rate_threshold": cfg["slow_call_rate_threshold"],
        "slow_call_duration": SLOW,
        "minimum_calls": cfg["minimum_calls"],
        "window_type": wtype,
        "window_size": size,
        "window_buckets": buckets,
        "permitted_calls_in_half_open": cfg["permitted"],
        "half_open_timeout": cfg["half_open_timeout"],
        "break_duration": lambda n: BREAKS[min(n, len(BREAKS)) - 1],
    }
    model = Model(
        failure_rate_threshold=cfg["failure_rate_threshold"],
        slow_call_rate_threshold=cfg["slow_call_rate_threshold"],
        slow_call_duration=SLOW,
        minimum_calls=cfg["minimum_calls"],
        window_type=wtype,
        window_size=size,
        buckets=buckets or 1,
        permitted=cfg["permitted"],
        half_open_timeout=cfg["half_open_timeout"],
        break_durations=BREAKS,
    )
    return kwargs, model


MANUAL = {
    "closed": Trigger.RESET,
    "disabled": Trigger.DISABLE,
    "forced_open": Trigger.FORCE_OPEN,
    "metrics_only": Trigger.METRICS_ONLY,
}


class MachineVsModel(RuleBasedStateMachine):
    """The sans-I/O machine, with calls in flight across transitions."""

    permits = Bundle("permits")

    @initialize(cfg=configs)
    def setup(self, cfg: dict[str, Any]) -> None:
        self.now = 100.0
        kwargs, self.model = _build(cfg, self.now)
        self.machine = BreakerMachine(now=self.now, **kwargs)

    @rule(dt=steps)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(target=permits)
    def before_call(self) -> Any:
        return self._before_call()

    @rule(target=permits)
    def before_call_again(self) -> Any:  # a second rule, so calls outnumber manual changes
        return self._before_call()

    def _before_call(self) -> Any:
        got = self.machine.before_call(self.now)
        ok, gen, probe, retry_after = self.model.before_call(self.now)
        if ok:
            assert isinstance(got, Permit)
            assert (gen, probe) == (got.generation, got.probe)
            return (got, gen, probe)
        assert isinstance(got, Reject)
        assert retry_after == got.retry_after
        return None

    @rule(
        p=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "ignored"]),
        slow=st.booleans(),
    )
    def finish(self, p: Any, outcome: str, slow: bool) -> None:
        self._finish(p, outcome, slow)

    @rule(
        p=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "ignored"]),
        slow=st.booleans(),
    )
    def finish_again(self, p: Any, outcome: str, slow: bool) -> None:
        self._finish(p, outcome, slow)

    def _finish(self, p: Any, outcome: str, slow: bool) -> None:
        if p is None:
            return
        permit, gen, probe = p
        duration = SLOW + 0.5 if slow else 0.25
        self.machine.on_result(self.now, permit, outcome, duration)  # type: ignore[arg-type]
        self.model.on_result(self.now, gen, probe, outcome, duration)

    @rule(to=st.sampled_from(sorted(MANUAL)))
    def manual(self, to: str) -> None:
        if to == "closed" or self.model.state != to:
            self.machine.apply(self.now, MANUAL[to])
        self.model.manual(self.now, to)

    @invariant()
    def same_state(self) -> None:
        snap = self.machine.snapshot(self.now)
        m = self.model
        assert m.state == snap.state.value
        assert m.generation == snap.generation
        assert m.consecutive_opens == snap.consecutive_opens
        if m.state in ("closed", "metrics_only"):
            assert m.totals(self.now) == (snap.calls, snap.failures, snap.slow_calls)
        if m.state == "half_open":
            assert m.probes_left == snap.probes_available
            assert len(m.probes) == snap.probe_calls


class PolicyVsModel(RuleBasedStateMachine):
    """The policy through a pipeline (sync and async alike), calls completing one at a time."""

    @initialize(cfg=configs)
    def setup(self, cfg: dict[str, Any]) -> None:
        self.clock = FakeClock(100.0)
        kwargs, self.model = _build(cfg, self.clock.monotonic())
        self.breaker = CircuitBreaker(clock=self.clock, **kwargs)
        self.pipeline = Pipeline([self.breaker], clock=self.clock)
        self.seen: list[Any] = []
        self.pipeline.add_listener(self.seen.append)

    @rule(dt=steps)
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(outcome=st.sampled_from(["success", "failure", "ignored"]), slow=st.booleans())
    def call(self, outcome: str, slow: bool) -> None:
        self._call(outcome, slow)

    @rule(outcome=st.sampled_from(["success", "failure", "ignored"]), slow=st.booleans())
    def call_again(self, outcome: str, slow: bool) -> None:
        self._call(outcome, slow)

    @rule(outcome=st.sampled_from(["success", "success", "failure"]))
    def call_fast(self, outcome: str) -> None:
        self._call(outcome, False)

    def _call(self, outcome: str, slow: bool) -> None:
        clock = self.clock
        duration = SLOW + 0.5 if slow else 0.0

        def fn() -> str:
            clock.advance(duration)
            if outcome == "failure":
                raise ConnectionError("down")
            if outcome == "ignored":
                raise Rejected("inner", policy="inner")
            return "ok"

        start = clock.monotonic()
        ok, gen, probe, retry_after = self.model.before_call(start)
        try:
            result = self._run(fn)
        except CircuitOpen as e:
            assert not ok
            assert retry_after == e.retry_after
            return
        except (ConnectionError, Rejected):
            assert ok
            self.model.on_result(clock.monotonic(), gen, probe, outcome, duration)
            return
        assert ok
        assert "ok" == result
        self.model.on_result(clock.monotonic(), gen, probe, outcome, duration)

    def _run(self, fn: Any) -> Any:
        return self.pipeline.call(fn)

    @rule(to=st.sampled_from(sorted(MANUAL)))
    def manual(self, to: str) -> None:
        {
            "closed": self.breaker.reset,
            "disabled": self.breaker.disable,
            "forced_open": self.breaker.force_open,
            "metrics_only": self.breaker.metrics_only,
        }[to]()
        self.model.manual(self.clock.monotonic(), to)

    @invariant()
    def same_state_and_events(self) -> None:
        snap = self.breaker.snapshot()
        m = self.model
        assert BreakerState(m.state) == snap.state
        assert m.consecutive_opens == snap.consecutive_opens
        if m.state in ("closed", "metrics_only"):
            assert m.totals(self.clock.monotonic()) == (snap.calls, snap.failures, snap.slow_calls)
        # every transition was an event, in order
        moves = [(e.from_state, e.to_state) for e in self.seen if hasattr(e, "to_state")]
        assert [(f, t) for f, t, _ in m.transitions] == moves
        alarms = [e for e in self.seen if e.name == "buttress_circuit_breaker_threshold_exceeded"]
        assert m.alarms == len(alarms)


class AsyncPolicyVsModel(PolicyVsModel):
    """The same, through the asyncio layer (the sync and async layers are hand-written twins)."""

    @initialize(cfg=configs)
    def setup(self, cfg: dict[str, Any]) -> None:
        super().setup(cfg)
        self.loop = asyncio.new_event_loop()

    def teardown(self) -> None:
        loop = getattr(self, "loop", None)
        if loop is not None:
            loop.close()

    def _run(self, fn: Any) -> Any:
        async def afn() -> Any:
            return fn()

        return self.loop.run_until_complete(self.pipeline.call_async(afn))


_settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
TestMachineVsModel = MachineVsModel.TestCase
TestMachineVsModel.settings = _settings
TestPolicyVsModel = PolicyVsModel.TestCase
TestPolicyVsModel.settings = _settings
TestAsyncPolicyVsModel = AsyncPolicyVsModel.TestCase
TestAsyncPolicyVsModel.settings = settings(_settings, max_examples=80)
