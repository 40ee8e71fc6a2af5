"""A tiny backend run as a subprocess (so that a test can SIGKILL it): answers its name.

Usage: python _backend.py NAME FD   (FD: a listening socket inherited from the parent)
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

NAME = sys.argv[1].encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(NAME))],
        }
    )
    await send({"type": "http.response.body", "body": NAME})


if __name__ == "__main__":
    uvicorn.run(app, fd=int(sys.argv[2]), log_level="error", lifespan="off", access_log=False)
