"""A small program to supervise: crashes, hangs, starts slowly, ignores SIGTERM, on request.

Speaks sd_notify with the standard library only, as any program written for systemd would.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import time


def notify(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), path)


def record(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as f:
            f.write(f"{line}\n")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="child")
    p.add_argument("--record")
    p.add_argument("--ready-after", type=float, default=0.0)
    p.add_argument("--listen", type=int)
    p.add_argument("--exit-after", type=float)
    p.add_argument("--code", type=int, default=1)
    p.add_argument("--ping-for", type=float)
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--grandchild", action="store_true")
    a = p.parse_args()

    def on_term(signum: int, frame: object) -> None:
        record(a.record, f"term {a.name} {os.getpid()} {time.monotonic()}")
        if not a.ignore_term:
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    record(a.record, f"start {a.name} {os.getpid()} {time.monotonic()}")
    if a.grandchild:
        pid = os.fork()
        if pid == 0:
            while True:
                time.sleep(1)
        record(a.record, f"grandchild {a.name} {pid} {time.monotonic()}")
    time.sleep(a.ready_after)
    listener = None
    if a.listen:
        listener = socket.create_server(("127.0.0.1", a.listen))
    notify("READY=1\nSTATUS=serving")
    record(a.record, f"ready {a.name} {os.getpid()} {time.monotonic()}")
    started = time.monotonic()
    interval = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6 / 3
    while True:
        now = time.monotonic()
        if a.exit_after is not None and now - started >= a.exit_after:
            record(a.record, f"exit {a.name} {os.getpid()} {now}")
            sys.exit(a.code)
        pinging = a.ping_for is None or now - started < a.ping_for
        if interval and pinging:
            notify("WATCHDOG=1")
        time.sleep(interval if interval else 0.02)
    del listener


if __name__ == "__main__":
    main()
