"""Helpers for the health tests: free ports and uvicorn in a thread on 127.0.0.1 (the thread is
:class:`_servers.UvicornThread`, shared with the other test packages)."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any

from _servers import UvicornThread  # noqa: F401  (re-exported for the health tests)


def find_redis_server() -> str:
    """The ``redis-server`` on ``PATH`` (Debian: ``/usr/bin/redis-server``)."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not on PATH: install it (apt-get install redis-server)")
    return found


def _version_key(path: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin: "16" > "15" > "9.6", as numbers, not as strings.
    return tuple(int(p) if p.isdigit() else -1 for p in path.parent.name.split("."))


def find_postgres_bin(root: str | Path = "/usr/lib/postgresql") -> Path:
    """The directory holding PostgreSQL's ``initdb`` and ``pg_ctl``: from ``PATH`` when both are
    there, else the newest ``<root>/<version>/bin`` that has both (Debian keeps them off PATH)."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    candidates = [
        d for d in Path(root).glob("*/bin") if (d / "initdb").is_file() and (d / "pg_ctl").is_file()
    ]
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's initdb and pg_ctl are neither on PATH nor in {root}/*/bin: "
            "install it (apt-get install postgresql)"
        )
    return max(candidates, key=_version_key)


def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --- draft-inadarei-api-health-check: what a response must look like ------------------------------

TOP_LEVEL_FIELDS = {
    "status",
    "version",
    "releaseId",
    "notes",
    "output",
    "checks",
    "links",
    "serviceId",
    "description",
}
CHECK_FIELDS = {
    "componentId",
    "componentType",
    "observedValue",
    "observedUnit",
    "status",
    "affectedEndpoints",
    "time",
    "output",
    "links",
}
STATUSES = {"pass", "warn", "fail"}


def assert_health_json(status_code: int, headers: Any, body: bytes) -> dict[str, Any]:
    """Check one response against the draft; return the parsed document."""
    import json
    from datetime import datetime, timedelta

    assert "application/health+json" == headers["content-type"]
    assert "no-cache" == headers["cache-control"]
    doc = json.loads(body)
    assert isinstance(doc, dict)
    assert set(doc) <= TOP_LEVEL_FIELDS, set(doc) - TOP_LEVEL_FIELDS
    assert doc["status"] in STATUSES
    # pass and warn: 2xx-3xx (we use 200); fail: 4xx-5xx (we use 503)
    assert (503 if doc["status"] == "fail" else 200) == status_code
    if doc["status"] == "pass":
        assert "output" not in doc
    for key, items in doc.get("checks", {}).items():
        parts = key.split(":")
        assert 1 <= len(parts) <= 2 and all(parts), key
        assert isinstance(items, list) and items
        for item in items:
            assert set(item) <= CHECK_FIELDS, set(item) - CHECK_FIELDS
            assert item["status"] in STATUSES
            when = datetime.fromisoformat(item["time"].replace("Z", "+00:00"))
            assert timedelta(0) == when.utcoffset()
            ctype = item.get("componentType")
            assert ctype in ("component", "datastore", "system") or ":" in ctype
            if "observedUnit" in item:
                assert "observedValue" in item
            if item["status"] == "pass":
                assert "output" not in item
            else:
                assert isinstance(item["output"], str) and item["output"]
    return doc
