"""A real Alertmanager (Debian's ``prometheus-alertmanager``) posting to the receiver: grouping,
repeat, resolve.  The test pushes alerts into Alertmanager through its v2 API; Alertmanager runs on
a free loopback port with a temporary data directory and clustering off, and is always stopped."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from _servers import UvicornThread
from buttress.incident import Incident, IncidentStore
from buttress.incident.receiver import create_app
from buttress.ports import free_port as _free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"

CONFIG = """\
route:
  receiver: buttress
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 2s
receivers:
  - name: buttress
    webhook_configs:
      - url: {url}/api/v1/alertmanager
        send_resolved: true
"""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _wait_for(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def wired(tmp_path: Path) -> Iterator[tuple[IncidentStore, str]]:
    """(the store, Alertmanager's URL), Alertmanager posting to a receiver on that store."""
    store = IncidentStore(tmp_path / "inc.db")
    with UvicornThread(create_app(store), lifespan="on") as receiver:
        (tmp_path / "am.yml").write_text(CONFIG.format(url=receiver.url))
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log = (tmp_path / "am.log").open("wb")
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={tmp_path / 'am.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={url}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "am.log").read_text())
                try:
                    return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            _wait_for("Alertmanager to be ready", ready)
            yield store, url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    store.close()


def _push(url: str, alerts: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5)
    assert r.status_code == 200, r.text


def _alert(instance: str, service: str, *, ends: float | None = None) -> dict[str, Any]:
    # A firing alert starts now: Alertmanager flushes a new group at once, without its group_wait,
    # when the group's first alert started more than group_wait ago, and the two alerts of one
    # push then race the flush (seen once under load: the first notification held one alert).
    # An ending alert started before its end, as Alertmanager requires.
    starts = time.time() if ends is None else ends - 30
    alert: dict[str, Any] = {
        "labels": {"alertname": "HighErrorRate", "service": service, "instance": instance},
        "annotations": {"summary": f"errors on {service}"},
        "startsAt": _iso(starts),
        "generatorURL": "http://127.0.0.1:9090/graph",
    }
    if ends is not None:
        alert["endsAt"] = _iso(ends)
    return alert


def test_grouping_repeat_and_resolve(wired: tuple[IncidentStore, str]) -> None:
    store, url = wired
    shop = [_alert("a:1", "shop"), _alert("a:2", "shop")]
    _push(url, shop)

    def shop_incident() -> Incident | None:
        rows = [r for r in store.incidents() if r.service == "shop"]
        return rows[0] if len(rows) == 1 else None

    # grouping: two alerts of one group (alertname, service) make one incident
    first = _wait_for("the shop incident", shop_incident)
    assert (first.state, first.mode, first.title) == ("detected", "HighErrorRate", "errors on shop")
    assert first.group_key.endswith('{alertname="HighErrorRate", service="shop"}')
    assert first.labels == {"alertname": "HighErrorRate", "service": "shop"}
    assert store.log(first.id)[0].detail["alerts"] == 2

    # another group: a second incident
    _push(url, [_alert("b:1", "cart")])
    _wait_for("the cart incident", lambda: any(r.service == "cart" for r in store.incidents()))

    # repeat: Alertmanager sends the shop group again (repeat_interval 2s); no new incident
    _wait_for("a repeat notification", lambda: store.get(first.id).notifications >= 2)
    assert len([r for r in store.incidents() if r.service == "shop"]) == 1
    assert [e.kind for e in store.log(first.id)] == ["detected"]
    store.transition(first.id, "acknowledged", actor="alice")

    # resolve: the alerts end; Alertmanager sends the resolved group
    _push(url, [_alert("a:1", "shop", ends=time.time()), _alert("a:2", "shop", ends=time.time())])
    resolved = _wait_for(
        "the resolution", lambda: (i := store.get(first.id)).state == "resolved" and i
    )
    assert resolved.resolved_by == "alertmanager"
    assert resolved.acknowledged_by == "alice"
    assert [e.kind for e in store.log(first.id)] == ["detected", "acknowledged", "resolved"]
    assert len(store.incidents()) == 2
    assert store.incidents(open_only=True)[0].service == "cart"
    assert store.rejected() == []  # every Alertmanager payload was understood
