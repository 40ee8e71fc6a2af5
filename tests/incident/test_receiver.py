"""The receiver over real HTTP (uvicorn on loopback): webhooks, the lifecycle API, bad input
answered with 4xx and journaled, the token, and group commit under concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _servers import UvicornThread
from buttress.errors import ConfigError
from buttress.incident import IncidentStore
from buttress.incident.receiver import check_bind, create_app

from .payloads import am_alert, am_payload


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[IncidentStore, str]]:
    store = IncidentStore(tmp_path / "inc.db")
    with UvicornThread(create_app(store, max_body=4096), lifespan="on") as srv:
        yield store, srv.url
    store.close()


def test_alertmanager_webhook_opens_repeats_and_resolves(served: tuple[IncidentStore, str]) -> None:
    store, url = served
    firing = am_payload([am_alert(service="shop")])
    r = httpx.post(f"{url}/api/v1/alertmanager", json=firing)
    assert (r.status_code, r.json()["action"]) == (200, "opened")
    ident = r.json()["incident"]
    assert httpx.post(f"{url}/api/v1/alertmanager", json=firing).json()["action"] == "repeat"
    r = httpx.post(f"{url}/api/v1/incidents/{ident}/ack", json={"by": "alice", "note": "on it"})
    assert (r.status_code, r.json()["acknowledged_by"]) == (200, "alice")
    resolved = am_payload([am_alert(status="resolved")], status="resolved")
    assert httpx.post(f"{url}/api/v1/alertmanager", json=resolved).json()["action"] == "resolved"
    shown = httpx.get(f"{url}/api/v1/incidents/{ident}").json()
    assert shown["state"] == "resolved"
    assert [e["kind"] for e in shown["log"]] == ["detected", "acknowledged", "resolved"]
    assert store.get(ident).notifications == 3


def test_out_of_order_steps_are_409_and_unknown_incidents_404(
    served: tuple[IncidentStore, str],
) -> None:
    _, url = served
    r = httpx.post(f"{url}/api/v1/incidents/7/resolve", json={"by": "alice"})
    assert r.status_code == 404
    assert "never detected" in r.json()["error"]
    ident = httpx.post(f"{url}/api/v1/webhook", json={"key": "db", "status": "firing"}).json()[
        "incident"
    ]
    assert (
        httpx.post(f"{url}/api/v1/incidents/{ident}/resolve", json={"by": "a"}).status_code == 200
    )
    r = httpx.post(f"{url}/api/v1/incidents/{ident}/ack", json={"by": "b"})
    assert r.status_code == 409
    assert r.json()["error"].startswith(f"cannot acknowledge incident {ident}: it is already")
    assert httpx.post(f"{url}/api/v1/incidents/{ident}/ack", json={}).status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/api/v1/alertmanager", b"{not json", 400, "body is not JSON"),
        ("/api/v1/alertmanager", b'{"version": "5"}', 422, "version: unsupported"),
        ("/api/v1/alertmanager", b"x" * 5000, 413, "body over 4096 bytes"),
        ("/api/v1/webhook", b'{"key": "k"}', 422, "status: must be"),
        ("/api/v1/webhook", b"[]", 422, "body: must be a JSON object"),
        ("/api/v1/deploys", b'{"service": "shop"}', 422, "invalid version=None"),
    ],
)
def test_bad_input_is_4xx_and_journaled(
    served: tuple[IncidentStore, str], path: str, body: bytes, status: int, reason: str
) -> None:
    store, url = served
    r = httpx.post(f"{url}{path}", content=body)
    assert r.status_code == status
    assert reason in r.json()["error"]
    [journaled] = store.rejected()
    assert (journaled["status"], journaled["endpoint"]) == (status, path.rsplit("/", 1)[1])
    assert reason in journaled["reason"]
    assert httpx.get(f"{url}/healthz").status_code == 200  # still serving


def test_token_is_required_when_set(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "inc.db")
    with UvicornThread(create_app(store, token="s3cret"), lifespan="on") as srv:
        body = {"key": "k", "status": "firing"}
        assert httpx.post(f"{srv.url}/api/v1/webhook", json=body).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{srv.url}/api/v1/incidents", headers=wrong).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert httpx.post(f"{srv.url}/api/v1/webhook", json=body, headers=good).status_code == 200
        assert len(httpx.get(f"{srv.url}/api/v1/incidents", headers=good).json()) == 1
    assert store.rejected()[0]["reason"] == "missing or wrong bearer token"
    store.close()


def test_binding_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ConfigError, match=r"--host='0\.0\.0\.0'.*only with a token"):
        check_bind("0.0.0.0", None)


def test_concurrent_notifications_are_group_committed(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "inc.db")
    app = create_app(store)
    with UvicornThread(app, lifespan="on") as srv:
        statuses = _blast(srv.url)
    assert statuses == [200] * 200
    rows = store.incidents()
    assert len(rows) == 20  # 20 groups, each one incident
    assert sum(r.notifications for r in rows) == 200
    # fewer transactions than requests: what arrived during a commit went into the next one
    assert app.state.receiver.batches < 200
    store.close()


def _blast(url: str) -> list[int]:
    async def blast() -> list[int]:
        async with httpx.AsyncClient(base_url=url) as client:
            posts = [
                client.post("/api/v1/webhook", json={"key": f"k{i % 20}", "status": "firing"})
                for i in range(200)
            ]
            return [r.status_code for r in await asyncio.gather(*posts)]

    return asyncio.run(blast())


def test_deploy_markers_over_http(served: tuple[IncidentStore, str]) -> None:
    store, url = served
    r = httpx.post(
        f"{url}/api/v1/deploys", json={"service": "shop", "version": "2.0", "by": "ci-42"}
    )
    assert r.status_code == 201
    [marker] = httpx.get(f"{url}/api/v1/deploys").json()
    assert (marker["service"], marker["version"], marker["actor"]) == ("shop", "2.0", "ci-42")
    assert json.loads(json.dumps(store.deploys()[0].to_json())) == marker


def test_a_failing_store_is_503_not_a_crash(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path / "inc.db")
    with UvicornThread(create_app(store), lifespan="on") as srv:
        store._conn.close()  # the store's file is gone from under it
        r = httpx.post(f"{srv.url}/api/v1/webhook", json={"key": "k", "status": "firing"})
        assert r.status_code == 503
        assert r.json()["error"].startswith("incident store unavailable:")
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
