"""``buttress outbox``: look into an outbox and act on its dead letters.

``--store`` names the database: a SQLite file path, or a PostgreSQL conninfo or URL
(``postgresql://...``, ``host=... dbname=...``); ``BUTTRESS_OUTBOX_STORE`` is the default.  The
store must already hold an outbox: the command never creates one.

* ``status``: per queue, live messages, in flight, dead letters, age of the oldest (``--json``);
* ``dlq QUEUE``: the dead letters, oldest first, with their last error (``--json``);
* ``requeue QUEUE [--id N ...]``: dead letters live again (all, or those ids), attempts reset;
* ``purge QUEUE [--id N ...] --yes``: delete dead letters (live messages are never purged).

An unknown queue, a missing store or one that cannot be reached: one line, exit status 2.
"""

from __future__ import annotations

import json
import time

import click

from buttress.errors import ConfigError

from .store import Outbox, PostgresOutbox, SQLiteOutbox

__all__ = ["outbox"]

_STORE = click.option(
    "--store",
    envvar="BUTTRESS_OUTBOX_STORE",
    required=True,
    help="SQLite file, or PostgreSQL conninfo/URL (env BUTTRESS_OUTBOX_STORE).",
)


def open_store(store: str) -> Outbox:
    """The outbox in ``store`` (see the module's docs); never creates one."""
    if not store.strip():
        raise ConfigError("store", store, "must name a SQLite file or a PostgreSQL database")
    if store.startswith(("postgresql://", "postgres://")) or "dbname=" in store or "host=" in store:
        return PostgresOutbox(store, queues=(), create=False)
    return SQLiteOutbox(store, queues=(), create=False)


@click.group()
def outbox() -> None:
    """Transactional outbox: status, dead letters, requeue, purge."""


@outbox.command()
@_STORE
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def status(store: str, as_json: bool) -> None:
    """Each queue: live messages, in flight, dead letters, age of the oldest."""
    box = open_store(store)
    rows, now = box.status(), box.now()
    if as_json:
        doc = [
            {
                "queue": s.queue,
                "pending": s.pending,
                "in_flight": s.in_flight,
                "dead": s.dead,
                "oldest_age_seconds": round(s.age(now), 3),
            }
            for s in rows
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"{'queue':<24} {'pending':>8} {'in flight':>9} {'dead':>6} {'oldest':>10}")
    for s in rows:
        click.echo(f"{s.queue:<24} {s.pending:>8} {s.in_flight:>9} {s.dead:>6} {s.age(now):>9.1f}s")


@outbox.command()
@_STORE
@click.argument("queue")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per dead letter.")
def dlq(store: str, queue: str, limit: int, as_json: bool) -> None:
    """The dead letters of QUEUE, oldest first."""
    for m in open_store(store).dead_letters(queue, limit):
        if as_json:
            doc = {
                "id": m.id,
                "key": m.key,
                "attempts": m.attempts,
                "created": m.created,
                "error": m.last_error,
                "payload": m.payload,
            }
            click.echo(json.dumps(doc))
        else:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.created))
            key = m.key if m.key is not None else "-"
            click.echo(f"{m.id}\t{key}\t{m.attempts}\t{when}\t{m.last_error}")


@outbox.command()
@_STORE
@click.argument("queue")
@click.option("--id", "ids", type=int, multiple=True, help="Only this message (repeatable).")
def requeue(store: str, queue: str, ids: tuple[int, ...]) -> None:
    """Make QUEUE's dead letters live again (attempts reset, due now)."""
    n = open_store(store).requeue(queue, list(ids) if ids else None)
    click.echo(f"requeued {n} message{'s' if n != 1 else ''} of {queue}")


@outbox.command()
@_STORE
@click.argument("queue")
@click.option("--id", "ids", type=int, multiple=True, help="Only this message (repeatable).")
@click.option("--yes", is_flag=True, help="Really delete (without it nothing is deleted).")
def purge(store: str, queue: str, ids: tuple[int, ...], yes: bool) -> None:
    """Delete QUEUE's dead letters (never live messages)."""
    box = open_store(store)
    if not yes:
        n = len([m for m in box.dead_letters(queue, 1_000_000) if not ids or m.id in ids])
        click.echo(f"would delete {n} dead letter{'s' if n != 1 else ''} of {queue}; add --yes")
        return
    n = box.purge(queue, list(ids) if ids else None)
    click.echo(f"purged {n} dead letter{'s' if n != 1 else ''} of {queue}")
