"""Highly available Redis for the failover tests, on 127.0.0.1 free ports in temporary directories.

* :class:`SentinelSetup`: one master, one replica and three sentinels (the same redis-server binary
  with ``--sentinel``), ``down-after-milliseconds`` 500 and ``failover-timeout`` 2000.
* :class:`ClusterSetup`: six ``--cluster-enabled`` servers joined by ``redis-cli --cluster create
  --cluster-replicas 1`` (three masters, one replica each), ``cluster-node-timeout`` 1000.

Both are context managers that stop every process they started, also when starting fails half
way, and delete their directories.  Each can SIGKILL a master and say when the failover is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from redis.crc import key_slot

from .conftest import REDIS_SERVER, free_port

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HOST = "127.0.0.1"
MASTER_NAME = "mymaster"


def _client(port: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=port, socket_timeout=1, socket_connect_timeout=1)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15.0) -> float:
    """Poll ``check`` (errors count as not yet) until true; the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            if check():
                return time.monotonic() - t0
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


class _Processes:
    """redis-server processes, each in its own directory under one temporary directory."""

    def __init__(self, prefix: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, port: int, args: list[str], conf: str | None = None) -> None:
        home = self.dir / str(port)
        home.mkdir()
        head = [REDIS_SERVER]
        if conf is not None:  # a sentinel: its configuration file (which it rewrites)
            (home / "sentinel.conf").write_text(conf)
            head.append(str(home / "sentinel.conf"))
        self.procs[port] = subprocess.Popen(
            [
                *head,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--dir",
                str(home),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=home,
        )

    def wait_ready(self, port: int) -> None:
        proc = self.procs[port]

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
            c = _client(port)
            try:
                return bool(c.ping())
            finally:
                c.close()

        wait_for(f"redis-server on port {port}", ready, 10)

    def kill(self, port: int) -> None:
        """SIGKILL, and reap it (PID 1 reaps orphans slowly here: wait on our own child)."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        for proc in self.procs.values():
            proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def _server_args() -> list[str]:
    # No persistence; and a replica's first sync at once (a diskless sync waits 5 s by default
    # for more replicas to share it).
    return ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]


class SentinelSetup:
    """1 master + 1 replica + 3 sentinels."""

    def __init__(self) -> None:
        self.processes = _Processes("buttress-sentinel-")
        self.master_port = 0
        self.replica_port = 0
        self.sentinel_ports: list[int] = []

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [(HOST, p) for p in self.sentinel_ports]

    def __enter__(self) -> SentinelSetup:
        try:
            self._start()
        except BaseException:
            self.processes.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.processes.stop()

    def _start(self) -> None:
        ps = self.processes
        self.master_port, self.replica_port = free_port(), free_port()
        ps.spawn(self.master_port, _server_args())
        ps.spawn(self.replica_port, [*_server_args(), "--replicaof", HOST, str(self.master_port)])
        for port in (self.master_port, self.replica_port):
            ps.wait_ready(port)
        replica = _client(self.replica_port)
        try:
            wait_for("the replica's link", lambda: _link_up(replica))
        finally:
            replica.close()
        self.sentinel_ports = [free_port() for _ in range(3)]
        ids = {port: os.urandom(20).hex() for port in self.sentinel_ports}
        for port in self.sentinel_ports:
            # The replica and the other sentinels are written in, not discovered: discovery
            # takes seconds (INFO every 10 s, hello messages every 2 s).
            conf = [
                f"sentinel myid {ids[port]}",
                f"sentinel monitor {MASTER_NAME} {HOST} {self.master_port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} 500",
                f"sentinel failover-timeout {MASTER_NAME} 2000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                f"sentinel known-replica {MASTER_NAME} {HOST} {self.replica_port}",
                *(
                    f"sentinel known-sentinel {MASTER_NAME} {HOST} {p} {ids[p]}"
                    for p in self.sentinel_ports
                    if p != port
                ),
            ]
            ps.spawn(port, ["--sentinel"], "\n".join(conf) + "\n")
        for port in self.sentinel_ports:
            ps.wait_ready(port)
        # A failover needs every sentinel to know the replica and the other sentinels.
        for port in self.sentinel_ports:
            s = _client(port)
            try:
                wait_for(f"sentinel {port} to see its peers", lambda s=s: _sentinel_ready(s))
            finally:
                s.close()

    def master_address(self) -> tuple[str, int]:
        """Where the sentinels say the master is now."""
        for port in self.sentinel_ports:
            if port not in self.processes.procs:
                continue
            s = _client(port)
            try:
                host, p = s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                return str(host.decode()), int(p)
            except redis.exceptions.RedisError:
                continue
            finally:
                s.close()
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> int:
        """SIGKILL the master; its port."""
        _host, port = self.master_address()
        self.processes.kill(port)
        return port

    def promoted(self, old_port: int) -> bool:
        """Whether a new master (not ``old_port``) is named by the sentinels and takes writes."""
        _host, port = self.master_address()
        if port == old_port:
            return False
        c = _client(port)
        try:
            return bool(c.set("buttress-ha-probe", "1"))
        except redis.exceptions.ReadOnlyError:
            return False
        finally:
            c.close()


def _link_up(replica: redis.Redis) -> bool:
    return bool(replica.info("replication").get("master_link_status") == "up")


def _sentinel_ready(s: redis.Redis) -> bool:
    master = s.execute_command("SENTINEL", "MASTER", MASTER_NAME)
    if isinstance(master, list):  # RESP2 without a reply parser: a flat list of pairs
        master = dict(zip(master[::2], master[1::2], strict=True))
    fields = {_text(k): _text(v) for k, v in master.items()}
    return int(fields["num-slaves"]) >= 1 and int(fields["num-other-sentinels"]) >= 2


class ClusterSetup:
    """Six ``--cluster-enabled`` nodes: three masters with one replica each."""

    def __init__(self, node_timeout_ms: int = 1000) -> None:
        self.processes = _Processes("buttress-cluster-")
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []

    @property
    def url(self) -> str:
        """A seed node's URL (any node serves the slot map)."""
        return f"redis://{HOST}:{self.ports[0]}/0"

    def __enter__(self) -> ClusterSetup:
        try:
            self._start()
        except BaseException:
            self.processes.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.processes.stop()

    def _start(self) -> None:
        ps = self.processes
        self.ports = [free_port() for _ in range(6)]
        for port in self.ports:
            # cluster-port: the bus port, chosen free too (the default port + 10000 may be taken)
            ps.spawn(
                port,
                [
                    *_server_args(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    "--cluster-port",
                    str(free_port()),
                ],
            )
        for port in self.ports:
            ps.wait_ready(port)
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"{HOST}:{p}" for p in self.ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            c = _client(port)
            try:
                wait_for(f"node {port} to join", lambda c=c: _cluster_ok(c))
            finally:
                c.close()
        wait_for("every master's replica", self._replicas_synced)

    def nodes(self) -> list[dict[str, Any]]:
        """``CLUSTER NODES`` as seen by a live node: each with port, role, master id, slots."""
        for port in list(self.processes.procs):
            c = _client(port)
            try:
                text = c.execute_command("CLUSTER", "NODES")
            except redis.exceptions.RedisError:
                continue
            finally:
                c.close()
            return [_parse_node(line) for line in _text(text).splitlines() if line.strip()]
        raise RuntimeError("no cluster node answers")

    def _replicas_synced(self) -> bool:
        nodes = self.nodes()
        masters = [n for n in nodes if n["role"] == "master" and n["slots"]]
        if len(masters) != 3:
            return False
        for m in masters:
            replicas = [n for n in nodes if n["master"] == m["id"]]
            if not replicas:
                return False
            for r in replicas:
                c = _client(r["port"])
                try:
                    if not _link_up(c):
                        return False
                finally:
                    c.close()
        return True

    def master_of(self, key: str) -> int | None:
        """The port of the master that serves ``key``'s slot now (``None`` while none does)."""
        slot = key_slot(key.encode())
        for n in self.nodes():
            live = n["role"] == "master" and "fail" not in n["flags"]
            if live and any(lo <= slot <= hi for lo, hi in n["slots"]):
                return int(n["port"])
        return None

    def kill(self, port: int) -> None:
        self.processes.kill(port)

    def promoted(self, key: str, old_port: int) -> bool:
        """Whether every live node agrees a new master serves ``key``'s slot, and the cluster is
        ok again."""
        if self.master_of(key) in (old_port, None):
            return False
        for port in self.processes.procs:
            c = _client(port)
            try:
                if not _cluster_ok(c):
                    return False
            finally:
                c.close()
        return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cluster_ok(c: redis.Redis) -> bool:
    return "cluster_state:ok" in _text(c.execute_command("CLUSTER", "INFO"))


def _parse_node(line: str) -> dict[str, Any]:
    parts = line.split()
    flags = parts[2].split(",")
    slots: list[tuple[int, int]] = []
    for s in parts[8:]:
        if s.startswith("["):  # a slot being migrated: not ours
            continue
        lo, _, hi = s.partition("-")
        slots.append((int(lo), int(hi or lo)))
    return {
        "id": parts[0],
        "port": int(parts[1].split("@")[0].rsplit(":", 1)[1]),
        "flags": flags,
        "role": "master" if "master" in flags else "replica",
        "master": parts[3] if parts[3] != "-" else None,
        "slots": slots,
    }
