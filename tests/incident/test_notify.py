"""Notifications: email through a real local SMTP server (aiosmtpd) and a webhook to a real HTTP
server, deduplicated by (incident, state) and rate-limited by a token bucket on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message as Mail
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from _servers import UvicornThread
from buttress.incident import IncidentStore, parse_generic
from buttress.incident.notify import EmailChannel, Notifier, WebhookChannel, render
from buttress.incident.receiver import create_app
from buttress.incident.timeline import SLOImpact
from buttress.ports import free_port as _free_port
from buttress.testing import FakeClock


class Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], Mail]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def hook() -> Iterator[tuple[list[dict[str, Any]], str]]:
    received: list[dict[str, Any]] = []

    async def collect(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=204)

    app = Starlette(routes=[Route("/hook", collect, methods=["POST"])])
    with UvicornThread(app) as srv:
        yield received, f"{srv.url}/hook"


IMPACT = SLOImpact(
    slo="shop-availability", objective=99.9, failed=120, total=6000, budget_share=0.05,
    budget_minutes=2.16, period_budget_minutes=43.2, peak_failing_share=0.25,
    peak_burn_rate=250.0, first_bad=None, peak=None, last_bad=None,
)  # fmt: skip


def test_email_and_webhook_through_the_receiver(
    tmp_path: Path, smtp: tuple[Inbox, int], hook: tuple[list[dict[str, Any]], str]
) -> None:
    inbox, port = smtp
    posts, url = hook
    store = IncidentStore(tmp_path / "inc.db")
    notifier = Notifier(
        store,
        [
            EmailChannel(
                "127.0.0.1", port, sender="buttress@example.org", to=["oncall@example.org"]
            ),
            WebhookChannel(url),
        ],
        impact=lambda inc: [IMPACT],
    )
    with UvicornThread(create_app(store, notifier=notifier), lifespan="on") as srv:
        firing = {"key": "shop", "status": "firing", "title": "shop errors", "service": "shop"}
        for _ in range(3):  # a notification and two repeats: one message
            assert httpx.post(f"{srv.url}/api/v1/webhook", json=firing).status_code == 200
        assert (
            httpx.post(f"{srv.url}/api/v1/incidents/1/ack", json={"by": "alice"}).status_code == 200
        )
        resolved = {"key": "shop", "status": "resolved"}
        assert httpx.post(f"{srv.url}/api/v1/webhook", json=resolved).json()["action"] == "resolved"
        notifier.flush()
    notifier.close()
    store.close()
    subjects = [m["Subject"] for _, m in inbox.mails]
    assert subjects == [
        "[detected] incident #1: shop errors (shop)",
        "[acknowledged] incident #1: shop errors (shop)",
        "[resolved] incident #1: shop errors (shop)",
    ]
    assert inbox.mails[0][0] == ["oncall@example.org"]
    body = inbox.mails[1][1].get_payload(decode=True).decode()
    assert "Acknowledged: " in body and " by alice" in body
    assert (
        "SLO shop-availability (99.9%): 2.2 budget minutes spent (5.0% of the period's budget), "
        "120 of 6000 requests failed, worst minute 25.0% failing"
    ) in body
    assert [p["incident"]["state"] for p in posts] == ["detected", "acknowledged", "resolved"]
    assert posts[0]["impact"][0]["budget_minutes"] == 2.16
    assert notifier.stats() == {"sent": 6, "suppressed": 0, "duplicates": 0, "failed": 0}


def test_rate_limit_and_dedup_on_a_fake_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    with IncidentStore(tmp_path / "inc.db") as store:
        notifier = Notifier(store, [], clock=clock, burst=2, rate=1 / 60)
        assert [notifier.decide(i, "detected") for i in range(1, 6)] == [
            True, True, False, False, False
        ]  # fmt: skip
        assert notifier.decide(1, "detected") is False  # a duplicate, not a new token spent
        clock.advance(59)
        assert notifier.decide(1, "acknowledged") is False  # 0.98 of a token: not yet
        clock.advance(60)
        assert notifier.decide(2, "acknowledged") is True
        assert notifier.stats() == {"sent": 0, "suppressed": 4, "duplicates": 1, "failed": 0}


def test_a_failing_channel_is_counted_and_the_others_still_send(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    dead = WebhookChannel(f"http://127.0.0.1:{_free_port()}/nobody", timeout=1)
    with IncidentStore(tmp_path / "inc.db") as store:
        notifier = Notifier(
            store, [dead, EmailChannel("127.0.0.1", port, sender="b@x.org", to=["o@x.org"])]
        )
        [o] = store.ingest([parse_generic({"key": "k", "status": "firing"})])
        notifier.listener([(parse_generic({"key": "k", "status": "firing"}), o)])
        notifier.flush()
        notifier.close()
    assert len(inbox.mails) == 1
    assert (notifier.sent, notifier.failed) == (1, 1)


def test_message_without_impact() -> None:
    with IncidentStore(":memory:") as store:
        [o] = store.ingest([parse_generic({"key": "k", "status": "firing", "service": "cart"})])
        msg = render(store.get(o.incident or 0))
    assert msg.subject == "[detected] incident #1: k (cart)"
    assert "SLO" not in msg.text and msg.data["impact"] == []
