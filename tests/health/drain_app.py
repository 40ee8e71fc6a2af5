"""A service that drains on SIGTERM, run as a subprocess by test_drain.py.

Usage: ``python drain_app.py DELAY GRACE WORK_SECONDS``; prints ``port=<n>`` once it listens,
and at exit ``closed_at=<time.monotonic() when it stopped accepting>`` and ``served=<n>``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from buttress.health import Drainer, HealthApp, HealthRegistry, draining_server


def main() -> None:
    delay, grace, work_seconds = (float(a) for a in sys.argv[1:4])
    registry = HealthRegistry(service_id="drain-demo")
    served = 0

    async def work(request: Request) -> PlainTextResponse:
        nonlocal served
        await asyncio.sleep(float(request.query_params.get("seconds", work_seconds)))
        served += 1
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/work", work), Mount("/", app=HealthApp(registry))])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=256)
    server = draining_server(config, Drainer(registry, delay=delay, grace=grace))
    closed_at: list[float] = []
    shutdown = server.shutdown

    async def recording_shutdown(sockets: list[socket.socket] | None = None) -> None:
        closed_at.append(time.monotonic())  # uvicorn's shutdown first closes the listeners
        await shutdown(sockets)

    server.shutdown = recording_shutdown
    print(f"port={sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])
    print(f"closed_at={closed_at[0]!r}", flush=True)
    print(f"served={served}", flush=True)


if __name__ == "__main__":
    main()
