"""A relay process for the stale-worker test: its handler marks that it started, waits
``PAUSE`` seconds (the test freezes the process with SIGSTOP meanwhile), then applies the effect
through the inbox.  It prints every fenced operation (``fenced ack 1``) and exits after one round
that found work.  Usage: ``python stale_worker.py DIRECTORY NAME PAUSE``."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from crash_worker import QUEUE, Consumer  # type: ignore[import-not-found]

from buttress.events import Event
from buttress.outbox import Message, MessageFenced, Relay, SQLiteOutbox


def main(directory: str, name: str, pause: float) -> None:
    outbox = SQLiteOutbox(Path(directory) / "app.db", queues=[QUEUE])
    consumer = Consumer("sqlite", directory)

    def handle(msg: Message) -> None:
        with consumer.tx() as c:
            c.execute("INSERT INTO calls VALUES (?)", (f"{name}:{msg.uid}",))
        time.sleep(pause)
        with consumer.tx() as c:
            if consumer.inbox.first_time(c, msg.uid):
                c.execute(
                    "INSERT INTO effects (uid, key, producer, seq) VALUES (?, ?, ?, ?)",
                    (msg.uid, msg.key, 0, 0),
                )

    printing = threading.Lock()

    def report(event: Event) -> None:
        # The relay's heartbeat thread (renew) and its worker (ack) may both be fenced at once:
        # one line each, never interleaved (print writes the text and its newline separately).
        if isinstance(event, MessageFenced):
            with printing:
                print(f"fenced {event.operation} {event.message}", flush=True)

    relay = Relay(outbox, QUEUE, handle, lease=1.0, heartbeat=0.2, poll=0.02, name=name)
    relay.emitter.add_listener(report)
    while relay.run_once() == 0:
        time.sleep(0.02)
    relay.close()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
