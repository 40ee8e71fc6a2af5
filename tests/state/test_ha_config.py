"""Building a Sentinel or Cluster store: every bad input is a ConfigError (or a located SpecError)
naming the parameter; nothing connects at build time; an unreachable one falls back, never
raises."""

from __future__ import annotations

from typing import Any

import pytest

from buttress.errors import ConfigError, SpecError
from buttress.policies.ratelimit import RateLimiter
from buttress.spec import build_pipelines, load_spec_text
from buttress.state import RedisState

from .conftest import free_port


@pytest.mark.parametrize(
    ("kw", "parameter", "reason"),
    [
        ({"sentinels": [("h", 26379)]}, "master", "master's name"),
        ({"sentinels": [("h", 26379)], "master": " "}, "master", "master's name"),
        ({"sentinels": "h:26379", "master": "m"}, "sentinels", "non-empty list"),
        ({"sentinels": [], "master": "m"}, "sentinels", "non-empty list"),
        ({"sentinels": ["h"], "master": "m"}, "sentinels", "entry 0"),
        ({"sentinels": ["h:1", "h:port"], "master": "m"}, "sentinels", "entry 1"),
        ({"sentinels": [("h", 0)], "master": "m"}, "sentinels", "1..65535"),
        ({"sentinels": [("h", True)], "master": "m"}, "sentinels", "1..65535"),
        ({"sentinels": [("", 1)], "master": "m"}, "sentinels", "host"),
        ({"sentinels": [("h", 1, 2)], "master": "m"}, "sentinels", "pair"),
        ({"url": "redis://h/0", "sentinels": ["h:1"], "master": "m"}, "url", "not both"),
        ({"url": "redis://h/0", "master": "m"}, "master", "only with sentinels"),
        ({"sentinels": ["h:1"], "master": "m", "cluster": True}, "cluster", "sentinels"),
        ({"url": "unix:///run/redis.sock", "cluster": True}, "url", "over TCP"),
        ({"url": "redis://h:7000/2", "cluster": True}, "url", "database 0"),
        ({"url": "redis://h:7000/0?db=1", "cluster": True}, "url", "database 0"),
        ({"url": "redis://h:port", "cluster": True}, "url", "port"),
        ({"url": "redis://h:7000", "cluster": "yes"}, "cluster", "true or false"),
        ({}, "url", "sentinels or a client"),
    ],
)
def test_bad_ha_configuration_names_the_parameter(
    kw: dict[str, Any], parameter: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        RedisState(**kw)
    assert parameter == info.value.parameter
    assert reason in info.value.reason


def test_a_client_excludes_the_other_ways() -> None:
    import redis

    client = redis.Redis(port=free_port())
    try:
        for kw, parameter in (
            ({"sentinels": ["h:1"]}, "sentinels"),
            ({"cluster": True}, "cluster"),
            ({"master": "m"}, "master"),
        ):
            with pytest.raises(ConfigError) as info:
                RedisState(client=client, **kw)
            assert parameter == info.value.parameter
    finally:
        client.close()


def test_the_password_of_a_cluster_url_is_never_shown() -> None:
    with pytest.raises(ConfigError) as info:
        RedisState("redis://:hunter2@h:7000/3", cluster=True)
    assert "hunter2" not in str(info.value)
    state = RedisState("redis://:hunter2@127.0.0.1:7000", cluster=True)
    assert "hunter2" not in repr(state)
    assert "(cluster)" in repr(state)


@pytest.mark.parametrize("how", ["sentinel", "cluster"])
def test_unreachable_ha_redis_builds_and_falls_back(how: str) -> None:
    """Nothing connects at build time, and an unreachable Sentinel or Cluster is one more outage:
    the limiter decides locally and nothing raises, at build nor at decision time."""
    dead = free_port()
    if how == "sentinel":
        state = RedisState(sentinels=[f"127.0.0.1:{dead}"], master="mymaster", timeout=0.2)
    else:
        state = RedisState(f"redis://127.0.0.1:{dead}", cluster=True, timeout=0.2)
    rl = RateLimiter(10, burst=2, store=state.bucket_store("rl"))
    assert [True, True, False] == [rl.try_acquire() for _ in range(3)]
    assert not state.available
    assert not state.ping()
    assert "Error" in state._link.error  # the reason is kept for the event
    state.close()


SPEC = "service: shop\nstate: {state}\npolicies:\n  p:\n    circuit_breaker: {{}}\n"


def test_sentinels_and_cluster_in_reliability_yaml() -> None:
    from buttress.state.redis import RedisBreakerStore

    for state in (
        "{store: redis, sentinels: ['127.0.0.1:1', '127.0.0.1:2'], master: mymaster}",
        "{store: redis, url: 'redis://127.0.0.1:1', cluster: true}",
    ):
        pipes = build_pipelines(load_spec_text(SPEC.format(state=state), "reliability.yaml"))
        store = pipes["p"].policies[0].machine.store  # type: ignore[attr-defined]
        assert isinstance(store, RedisBreakerStore)


@pytest.mark.parametrize(
    ("state", "where", "message"),
    [
        ("{store: redis, sentinels: ['h:1']}", "2:1: state:", "master's name"),
        ("{store: redis, master: m, url: 'redis://h/0'}", "2:1: state:", "sentinels only"),
        ("{store: redis, sentinels: ['h:1'], master: m, url: 'redis://h/0'}", "2:1", "not both"),
        ("{store: redis, sentinels: ['h:1'], master: m, cluster: true}", "2:1", "needs a url"),
        ("{store: memory, cluster: true}", "2:1: state:", "store: redis only"),
        ("{store: memory, sentinels: ['h:1']}", "2:1: state:", "store: redis only"),
        ("{store: redis, sentinels: [], master: m}", "2:", "sentinels"),
        (
            "{store: redis, sentinels: ['h:1', 'h:x'], master: m}",
            "2:23: state.sentinels:",
            "entry 1",
        ),
        (
            "{store: redis, url: 'redis://:hunter2@h/4', cluster: true}",
            "2:23: state.url:",
            "database 0",
        ),
    ],
)
def test_bad_ha_state_spec_names_the_line(state: str, where: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        build_pipelines(load_spec_text(SPEC.format(state=state), "reliability.yaml"))
    assert f"reliability.yaml:{where}" in str(info.value)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


def test_sentinel_addresses_are_read_in_either_form() -> None:
    from buttress.state.redis.clients import check_sentinels

    given = [("10.0.0.1", 26379), ["10.0.0.2", 26380], "sentinel-3.internal:26381", "[::1]:26382"]
    assert [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("sentinel-3.internal", 26381),
        ("::1", 26382),
    ] == check_sentinels(given)
    assert "sentinel master mymaster" in repr(RedisState(sentinels=given, master="mymaster"))


def test_every_script_touches_only_the_keys_it_declares() -> None:
    """In a cluster a script may touch only the keys passed as KEYS (redis-py routes the call by
    them; they share a hash tag): every command's key is ``KEYS[i]`` or a local bound to it, never
    a name built from ARGV.  TIME is the one keyless command."""
    import re
    from importlib.resources import files

    scripts = files("buttress.state") / "scripts"
    for name in ("breaker.lua", "ratelimit.lua", "budget.lua"):
        text = (scripts / name).read_text("utf-8")
        aliases = {"KEYS[1]", "KEYS[2]"}
        for left, right in re.findall(r"local ([\w, ]+) = (KEYS\[\d\](?:, KEYS\[\d\])*)", text):
            aliases |= {n.strip() for n in left.split(",")}
            assert {r.strip() for r in right.split(",")} <= {"KEYS[1]", "KEYS[2]"}
        calls = re.findall(r"redis\.call\('(\w+)'(?:, *([^,)]+))?", text)
        assert calls, name
        for command, key in calls:
            if command == "TIME":
                continue
            assert key in aliases, f"{name}: {command} {key}"
