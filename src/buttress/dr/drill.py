"""Disaster drills: break a database on purpose, restore it, and measure what recovery achieved.

While a *sentinel writer* commits ``(seq, at)`` every 100 ms and records each write's outcome in a
nothing-lost history (:class:`buttress.chaos.checker.History`), the drill takes backups on a
schedule, injects the disaster, notices it, restores, and waits for the writer's first successful
write on the restored database.  Then it reads every sentinel back and measures:

``rto``
    disaster to the writer's first acknowledged write after the restore that is still there at
    the end (detection, restore and the application's reconnection all count; a write
    acknowledged into a dead file is no recovery);
``rpo``
    the span of acknowledged data that is gone: the acknowledgement time of the newest lost
    acknowledged write minus the commit time of the newest sentinel the restore brought back
    (0 when nothing acknowledged was lost);
``lost``
    acknowledged writes missing from the final read (the nothing-lost checker's ``lost``), split
    into those acknowledged before the disaster (inside the backup interval: the RPO's price) and
    after it (a write acknowledged into a dead file: what the file guard exists to prevent);
``pitr``
    for a restore to a point in time: the restored sentinels are exactly the acknowledged ones
    committed before the restored backup's snapshot, none after the target.

The engine-specific steps (write, inject, detect, back up, restore) are a :class:`DrillTarget`;
:mod:`buttress.dr.drill_sqlite` is the SQLite one.  Judging the figures against objectives is
:mod:`buttress.dr.report`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from buttress.chaos.checker import History, check_set
from buttress.errors import ConfigError

__all__ = [
    "DrillConfig",
    "DrillResult",
    "DrillTarget",
    "RestoredSnapshot",
    "SentinelWriter",
    "run_drill",
]


@dataclass(frozen=True, slots=True)
class RestoredSnapshot:
    """What a restore brought back: the backup's id, when its snapshot was taken (the wall time its
    copy started) and the sentinels it holds, ``seq -> at``."""

    backup: str
    snapshot_at: float
    sentinels: dict[int, float]


class DrillTarget(Protocol):
    """The engine-specific half of a drill.  Methods are called from the drill's threads: the
    writer calls :meth:`write` and :meth:`reconnect`, the drill everything else."""

    disruptions: tuple[str, ...]

    def write(self, seq: int, at: float) -> None:
        """Commit one sentinel row; return only once it is durable as the application sees it."""

    def reconnect(self) -> bool:
        """Drop the writer's connection and open a new one; ``False`` while that is impossible."""

    def backup(self) -> None:
        """Take one backup now."""

    def inject(self, disruption: str) -> None:
        """Cause the disaster."""

    def broken(self) -> bool:
        """Whether the database is visibly broken (the drill's detector)."""

    def restore(self, at: float | None) -> RestoredSnapshot:
        """Restore the newest backup (finished before ``at``, Unix seconds, when given)."""

    def read_sentinels(self) -> set[int]:
        """Every sentinel seq the database holds now."""

    def close(self) -> None:
        """Stop everything the target started."""


@dataclass(frozen=True, slots=True)
class DrillConfig:
    """How a drill runs.  Durations in seconds."""

    disruption: str
    write_interval: float = 0.1
    before: float = 2.0
    backup_interval: float = 1.0
    after: float = 0.5
    point_in_time: float | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("write_interval", "before", "backup_interval", "after", "timeout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ConfigError(f"--{name.replace('_', '-')}", v, "must be > 0 seconds")
        if self.point_in_time is not None and not self.point_in_time > 0:
            raise ConfigError("--point-in-time", self.point_in_time, "must be > 0 seconds")


class SentinelWriter:
    """Commits ``(seq, wall time)`` every ``interval`` seconds through ``target`` on its own
    thread, recording every attempt in a nothing-lost history.

    A failed write marks the outcome ``unknown`` (a commit may have landed before the error) and
    makes the writer reconnect before its next attempt, as an application's pool would.
    """

    def __init__(self, target: DrillTarget, interval: float) -> None:
        self.target = target
        self.interval = interval
        self.history = History()
        self.acked: dict[int, float] = {}
        """seq -> the time written into the row (just before the commit)."""
        self.acked_at: dict[int, float] = {}
        """seq -> when the commit was acknowledged (wall time)."""
        self.acked_mono: dict[int, float] = {}
        """seq -> when the commit was acknowledged (monotonic)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="buttress-drill-writer")
        self._lock = threading.Lock()
        self._first_ok_after: tuple[float, threading.Event, list[float]] | None = None

    def start(self) -> SentinelWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def first_ok_after(self, when: float) -> list[float]:
        """Arm a one-shot: the returned list gets the monotonic time of the first write
        acknowledged after ``when`` (monotonic); wait on :meth:`wait_first_ok`."""
        box: list[float] = []
        with self._lock:
            self._first_ok_after = (when, threading.Event(), box)
        return box

    def wait_first_ok(self, timeout: float) -> bool:
        with self._lock:
            armed = self._first_ok_after
        return armed is not None and armed[1].wait(timeout)

    def _run(self) -> None:
        seq = 0
        healthy = True
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not healthy:
                try:
                    healthy = self.target.reconnect()
                except Exception:  # a reconnect that blows up is one that did not work yet
                    healthy = False
            if healthy:
                seq += 1
                healthy = self._attempt(seq)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a slow commit, a reconnect): do not burst to catch up
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(delay if healthy else min(delay, 0.02))

    def _attempt(self, seq: int) -> bool:
        pending = self.history.add(seq, process="writer")
        at = time.time()
        try:
            self.target.write(seq, at)
        except Exception:
            pending.unknown()
            return False
        pending.ok()
        now = time.monotonic()
        self.acked_at[seq] = time.time()
        self.acked_mono[seq] = now
        self.acked[seq] = at
        with self._lock:
            armed = self._first_ok_after
            if armed is not None and not armed[1].is_set() and now >= armed[0]:
                armed[2].append(now)
                armed[1].set()
        return True


@dataclass
class DrillResult:
    """Everything a drill measured (times in seconds; ``*_at`` are Unix seconds)."""

    disruption: str
    disaster_at: float
    detected_after: float
    restore_seconds: float
    rto: float | None
    rpo: float
    restored: RestoredSnapshot
    acknowledged: int
    lost_before_disaster: list[int]
    lost_after_disaster: list[int]
    checker: dict[str, Any]
    pitr: dict[str, Any] | None
    backups: int
    notes: list[str] = field(default_factory=list)


def _pitr_check(
    restored: RestoredSnapshot, acked_at: dict[int, float], target_at: float
) -> dict[str, Any]:
    """Exactly the sentinels acknowledged before the snapshot began, none written after the
    target."""
    after_target = sorted(s for s, at in restored.sentinels.items() if at > target_at)
    missing = sorted(
        s
        for s, done in acked_at.items()
        if done < restored.snapshot_at and s not in restored.sentinels
    )
    acked = acked_at
    unexpected = sorted(s for s in restored.sentinels if s not in acked)
    return {
        "target_at": target_at,
        "snapshot_at": restored.snapshot_at,
        "restored_through": max(restored.sentinels, default=0),
        "after_target": after_target,
        "missing_before_snapshot": missing,
        "never_acknowledged": unexpected,
        "ok": not after_target and not missing,
    }


@dataclass(frozen=True, slots=True)
class _Timeline:
    writer: SentinelWriter
    disaster_wall: float
    damaged_wall: float
    disaster: float
    detected: float
    restored: RestoredSnapshot
    restored_done: float
    backups: int


def _break_and_restore(
    target: DrillTarget, config: DrillConfig, log: Callable[[str], None]
) -> _Timeline:
    """The drill's timeline: writes and backups, the disaster, detection, restore, recovery."""
    writer = SentinelWriter(target, config.write_interval).start()
    backups = 0
    try:
        end = time.monotonic() + config.before
        next_backup = time.monotonic()
        while True:  # the first backup at once, then on the schedule, until the disaster
            if time.monotonic() >= next_backup:
                target.backup()
                backups += 1
                next_backup += config.backup_interval
            wait = min(next_backup, end) - time.monotonic()
            if time.monotonic() >= end:
                break
            time.sleep(max(wait, 0.0))
        time.sleep(min(config.write_interval * 3, config.before))
        log(f"injecting {config.disruption} after {backups} backups")
        disaster_wall, disaster = time.time(), time.monotonic()
        target.inject(config.disruption)
        # Injecting takes time (killing a server: about a second): a write acknowledged before it
        # finished was acknowledged by a live database, and losing it is the RPO; only a write
        # acknowledged once the damage was done and still lost is a broken promise.
        damaged_wall = time.time()
        while not target.broken():
            if time.monotonic() - disaster > config.timeout:
                raise ConfigError("--disruption", config.disruption, "caused no visible damage")
            time.sleep(0.005)
        detected = time.monotonic()
        pit = None if config.point_in_time is None else disaster_wall - config.point_in_time
        restored = target.restore(pit)
        restored_done = time.monotonic()
        # A server restored in place may already hold the writer's first new rows: the restore
        # brought back only what was written before the disaster.
        restored = RestoredSnapshot(
            restored.backup,
            restored.snapshot_at,
            {s: a for s, a in restored.sentinels.items() if a <= disaster_wall},
        )
        log(f"restored {restored.backup} in {restored_done - detected:.3f} s")
        writer.first_ok_after(restored_done)
        writer.wait_first_ok(config.timeout)
        time.sleep(config.after)
    finally:
        writer.stop()
    return _Timeline(
        writer, disaster_wall, damaged_wall, disaster, detected, restored, restored_done, backups
    )


def run_drill(
    target: DrillTarget, config: DrillConfig, *, log: Callable[[str], None] = lambda _: None
) -> DrillResult:
    """Run one drill against ``target`` (see the module docstring); always closes ``target``."""
    if config.disruption not in target.disruptions:
        raise ConfigError(
            "--disruption",
            config.disruption,
            f"unknown disruption type; choose one of {', '.join(target.disruptions)}",
        )
    try:
        measured = _break_and_restore(target, config, log)
        final = target.read_sentinels()
    finally:
        target.close()
    writer, disaster_wall, disaster = measured.writer, measured.disaster_wall, measured.disaster
    detected, restored, restored_done = measured.detected, measured.restored, measured.restored_done
    backups = measured.backups
    pit = None if config.point_in_time is None else disaster_wall - config.point_in_time
    writer.history.final_read(final, process="drill")
    checked = check_set(writer.history)
    acked = writer.acked_at  # when each acknowledgement was recorded (the RPO's end)
    lost = sorted(s for s in checked.lost if isinstance(s, int))
    last_restored = max(restored.sentinels.values(), default=None)
    rpo = 0.0
    if lost:
        base = last_restored if last_restored is not None else min(acked.values())
        rpo = max(0.0, max(acked[s] for s in lost) - base)
    # The RTO ends at the first write after the restore that is still there at the end: a write
    # "acknowledged" into a dead file (no guard) is not a recovery.
    survived = [
        writer.acked_mono[s] - disaster
        for s in final
        if s in writer.acked_mono and writer.acked_mono[s] >= restored_done
    ]
    return DrillResult(
        disruption=config.disruption,
        disaster_at=disaster_wall,
        detected_after=detected - disaster,
        restore_seconds=restored_done - detected,
        rto=min(survived, default=None),
        rpo=rpo,
        restored=restored,
        acknowledged=len(acked),
        # Split by when the write began (the time it wrote into its row, before the commit), not
        # when its acknowledgement was recorded: under load the writer's thread may record an
        # acknowledgement a little after the damage for a commit the guard had confirmed on the
        # live file before it.  A write that began once the damage was done and was
        # acknowledged anyway is the broken promise; one that straddled the moment is the RPO's.
        lost_before_disaster=[s for s in lost if writer.acked[s] < measured.damaged_wall],
        lost_after_disaster=[s for s in lost if writer.acked[s] >= measured.damaged_wall],
        checker=checked.summary(),
        pitr=None if pit is None else _pitr_check(restored, acked, pit),
        backups=backups,
    )
