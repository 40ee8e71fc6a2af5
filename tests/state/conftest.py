"""A real Redis for the state tests: /usr/bin/redis-server on a free 127.0.0.1 port, with no
persistence (``--save '' --appendonly no``), stopped at the end.  :class:`RedisServer` can also be
killed and restarted on the same port, for the outage tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from buttress.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

LIVE_TIMEOUT = 1.0
"""The Redis timeout of tests that check what *shared* decisions do against a live server.  The
default (50 ms) is a stalled server on a LAN; on a loaded 2-core test machine one answer in a
thousand can take longer, and since a timeout is never retried, that one call would fall back to
local decisions.  Tests of the fallback itself use short timeouts or a dead port."""


class RedisServer:
    """One redis-server process on 127.0.0.1:``port``."""

    def __init__(self) -> None:
        if not os.path.exists(REDIS_SERVER):
            raise RuntimeError(
                f"redis-server not found at {REDIS_SERVER}: "
                "install it (apt-get install redis-server)"
            )
        self.dir = tempfile.mkdtemp(prefix="buttress-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (on a new free port the first time, on the same port after :meth:`kill`)."""
        for _ in range(5):
            port = self.port or free_port()
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    self.dir,
                    "--daemonize",
                    "no",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(port):
                self.port = port
                return
            self.proc.kill()
            self.proc.wait()
        raise RuntimeError("could not start redis-server")

    def _wait_ready(self, port: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.2)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.exceptions.RedisError:
                    time.sleep(0.01)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: the data (and the loaded scripts) are gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the whole session (per xdist worker); tests use their own service names."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server of this test's own, which the test may kill and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def service() -> str:
    """A service name no other test uses, so tests sharing a server never share keys."""
    return f"t{uuid.uuid4().hex[:12]}"


# --- the same tests on one server and on a Redis Cluster --------------------------------------


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[Any]:
    """Three masters with a replica each (tests/state/ha.py), for the whole session (per xdist
    worker); tests use their own service names."""
    from .ha import ClusterSetup  # ha imports this module: not at the top

    with ClusterSetup() as cluster:
        yield cluster


class Target:
    """Where a test's shared state lives: one ``redis-server``, or a Redis Cluster."""

    def __init__(self, url: str, *, cluster: bool) -> None:
        self.url = url
        self.cluster = cluster
        self._client: Any = None

    def __repr__(self) -> str:
        return "cluster" if self.cluster else "server"

    def state(self, service: str, **kw: Any) -> Any:
        """A :class:`~buttress.state.RedisState` on this target (``timeout`` LIVE_TIMEOUT)."""
        from buttress.state import RedisState

        kw.setdefault("timeout", LIVE_TIMEOUT)
        return RedisState(self.url, cluster=self.cluster, service=service, **kw)

    def client(self) -> Any:
        """A redis-py client to look at the keys (``RedisCluster`` on a cluster)."""
        if self._client is None:
            if self.cluster:
                self._client = redis.RedisCluster.from_url(self.url, socket_timeout=1)
            else:
                self._client = redis.Redis.from_url(self.url, socket_timeout=1)
        return self._client

    def keys(self, pattern: str) -> list[str]:
        """The keys matching ``pattern``, on every master."""
        c = self.client()
        if self.cluster:
            found = c.keys(pattern, target_nodes=redis.RedisCluster.PRIMARIES)
        else:
            found = c.keys(pattern)
        return sorted(k.decode() for k in found)


@pytest.fixture(scope="session", params=["server", "cluster"])
def shared(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each test that takes it runs twice: on one redis-server, and on a Redis Cluster, where every
    script must touch keys of one slot."""
    if request.param == "cluster":
        target = Target(request.getfixturevalue("redis_cluster").url, cluster=True)
    else:
        target = Target(request.getfixturevalue("redis_server").url, cluster=False)
    yield target
    if target._client is not None:
        target._client.close()
