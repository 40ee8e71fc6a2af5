"""A site: the claims service and its audit log, at the primary or the recovery site.

    POST /claims          {claim_id, benefit, claimant} -> 200 {"claim_id", "seq", "hash", "site",
                          "replicated"} (the receipt), only on the active site; idempotent on
                          claim_id.  503 on a standby (the portal goes to the other site)
    GET  /claims/latest   the newest claim filed (either site: a standby serves reads)
    GET  /site/status     {"site", "role", "term", "last", "head"}
    GET  /site/active     200 on the active site, 503 on a standby (the portal's health check)
    POST /site/replicate  {term, records}: the active site's records, appended in order
    POST /site/promote    {term, last, head}: the failback, asked by the other site
    GET  /audit           {"records": [...]} the whole chain (``?after=N``: after record N;
                          ``?settle=S``: first wait up to S s until the other site holds it all)
    GET  /lab/effects     {"counts": {claim id: audit records naming it}}
    GET  /claims          {"ids": [...]} every claim filed (``?settle=S`` as above)

**Writing a claim** (the active site, one at a time): the audit record is made (the next of the
chain, :func:`buttress.dr.chain.make_record`), *shipped to the other site first*, then committed
here, then acknowledged.  The other site appends it durably before it answers, so an acknowledged
claim is on both sites' disks: losing either site loses nothing.  If the other site is down or cut
off, the claim is committed here alone (the receipt says ``"replicated": false``) and shipped when
it is back.  If the other site answers that it holds a newer term, this site has been replaced:
it steps down and refuses (503).  If it holds records this one lacks (this site died between
shipping and committing), they are fetched first and the claim goes after them.

**Roles.**  The primary starts active (term 1), the recovery site standby.  Every 0.2 s each site
asks the other for its status.  A standby that has not heard from the active site for
``GOV_TAKEOVER`` seconds (once it has heard from it at all) promotes itself with the next term.  A
site that learns of a higher term steps down.  The active site ships whatever the other lacks.
The recovery site hands the service back once the primary (``GOV_PREFERRED=1``) has been a standby
holding every record for ``GOV_FAILBACK_HOLD`` seconds: it stops taking claims, asks the primary to
promote itself with the next term, and becomes its standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.dr.chain import make_record
from buttress.health import HealthApp, HealthRegistry, sqlite_check

from .common import Settings, env_seconds
from .ledger import ChainError, Ledger

log = logging.getLogger("gov.site")
settings = Settings.from_env()
SITE = os.environ.get("GOV_SITE", "primary")
PEER = "recovery" if SITE == "primary" else "primary"
PREFERRED = os.environ.get("GOV_PREFERRED", "0") == "1"
TAKEOVER = env_seconds("GOV_TAKEOVER", 1.0)
HOLD = env_seconds("GOV_FAILBACK_HOLD", 2.0)
POLL = 0.2
peer_url = settings.url(PEER)
ledger = Ledger(settings.data / "site.db", role="active" if PREFERRED else "standby")
client = httpx.AsyncClient(timeout=httpx.Timeout(0.5, connect=0.3))


class State:
    """The site's role and what it knows of the other site (changed only under ``lock``)."""

    def __init__(self) -> None:
        self.role, self.term = ledger.role()
        self.peer: dict[str, Any] | None = None
        self.peer_seen = 0.0
        self.armed = False  # heard from the other site at least once
        self.synced_since: float | None = None
        self.lock = asyncio.Lock()

    async def set(self, role: str, term: int, why: str) -> None:
        if (role, term) != (self.role, self.term):
            log.warning("%s: %s (term %d) -> %s (term %d): %s",
                        SITE, self.role, self.term, role, term, why)  # fmt: skip
            await asyncio.to_thread(ledger.set_role, role, term)
            self.role, self.term = role, term


state = State()


def _error(message: str, status: int = 503) -> JSONResponse:
    return JSONResponse({"error": message, "site": SITE}, status)


async def _status() -> dict[str, Any]:
    last, head = await asyncio.to_thread(ledger.head)
    return {"site": SITE, "role": state.role, "term": state.term, "last": last, "head": head}


async def _ship(records: list[dict[str, Any]]) -> httpx.Response | None:
    """Send ``records`` to the other site; ``None`` when it could not be reached."""
    try:
        r = await client.post(
            f"{peer_url}/site/replicate", json={"term": state.term, "records": records}
        )
    except httpx.HTTPError:
        return None
    return r if r.status_code in (200, 409) else None


async def _fetch_missing() -> None:
    """Append what the other site holds after this site's head (it is ahead)."""
    last, _ = await asyncio.to_thread(ledger.head)
    r = await client.get(f"{peer_url}/audit", params={"after": last})
    r.raise_for_status()
    await asyncio.to_thread(ledger.append, r.json()["records"])


async def _replicate_and_commit(body: dict[str, Any]) -> tuple[dict[str, Any], bool] | None:
    """Ship the claim's record, then commit it (see the module docstring); ``None`` when this site
    has stepped down.  Called under ``state.lock``."""
    for _ in range(4):
        last, head = await asyncio.to_thread(ledger.head)
        record = make_record(last + 1, head, body)
        answer = await _ship([record])
        if answer is not None and answer.status_code == 409:
            why = answer.json()
            if why.get("reason") == "term":
                await state.set("standby", int(why["term"]), "the other site holds a newer term")
                return None
            if why.get("reason") == "gap":  # it is behind: send it what it lacks first
                missing = await asyncio.to_thread(ledger.records, int(why["last"]))
                answer = await _ship([*missing, record])
            elif why.get("reason") == "ahead":  # this site is behind: catch up, then again
                await _fetch_missing()
                continue
        if answer is not None and answer.status_code == 409:
            continue
        await asyncio.to_thread(ledger.append, [record])
        return record, answer is not None
    raise ChainError("the other site kept answering with conflicts")


async def file_claim(request: Request) -> JSONResponse:
    try:
        payload = await request.json()
        body = {
            "action": "claim.filed",
            "claim_id": str(payload["claim_id"]),
            "benefit": str(payload.get("benefit", "")),
            "claimant": str(payload.get("claimant", "")),
            "at": round(time.time(), 3),
            "site": SITE,
        }
    except (ValueError, KeyError, TypeError):
        return _error("need claim_id", 400)
    async with state.lock:
        if state.role != "active":
            return _error(f"{SITE} is a standby (term {state.term})")
        done = await asyncio.to_thread(ledger.receipt, body["claim_id"])
        if done is not None:  # a retry of a claim already filed: the same receipt
            return JSONResponse({"claim_id": body["claim_id"], **done, "site": SITE})
        try:
            out = await _replicate_and_commit(body)
        except (ChainError, httpx.HTTPError) as e:
            return _error(f"not recorded: {e}")
        if out is None:
            return _error(f"{SITE} stepped down: the other site holds term {state.term}")
    record, replicated = out
    return JSONResponse(
        {"claim_id": body["claim_id"], "seq": record["seq"], "hash": record["hash"],
         "site": SITE, "replicated": replicated}
    )  # fmt: skip


async def replicate(request: Request) -> JSONResponse:
    """The other site's records (it is active): append those after this site's head."""
    payload = await request.json()
    term, records = int(payload["term"]), list(payload["records"])
    async with state.lock:
        if term < state.term or (term == state.term and state.role == "active"):
            return JSONResponse({"reason": "term", "term": state.term}, 409)
        await state.set("standby", term, "the other site is active")
        last, _ = await asyncio.to_thread(ledger.head)
        new = []
        for r in records:
            if r["seq"] <= last:
                if await asyncio.to_thread(ledger.hash_at, r["seq"]) != r["hash"]:
                    return JSONResponse({"reason": "ahead", "last": last}, 409)
            else:
                new.append(r)
        if new and new[0]["seq"] != last + 1:
            return JSONResponse({"reason": "gap", "last": last}, 409)
        try:
            last = await asyncio.to_thread(ledger.append, new) if new else last
        except ChainError as e:
            return JSONResponse({"reason": "fork", "error": str(e), "last": last}, 409)
    return JSONResponse({"last": last})


async def promote(request: Request) -> JSONResponse:
    """The failback: the other site hands the service over, holding nothing this site lacks."""
    payload = await request.json()
    async with state.lock:
        last, head = await asyncio.to_thread(ledger.head)
        if (int(payload["last"]), str(payload["head"])) != (last, head):
            return _error(f"not in sync: {SITE} holds {last}", 409)
        await state.set("active", max(state.term, int(payload["term"])), "handed over")
    return JSONResponse(await _status())


async def _hand_back(peer: dict[str, Any]) -> None:
    """The recovery site gives the service back to the primary (under ``state.lock``)."""
    last, head = await asyncio.to_thread(ledger.head)
    if (peer["last"], peer["head"]) != (last, head):
        return
    term = state.term + 1
    await state.set("standby", state.term, "handing back to the primary")
    try:
        r = await client.post(
            f"{peer_url}/site/promote", json={"term": term, "last": last, "head": head}
        )
    except httpx.HTTPError:
        r = None
    if r is not None and r.status_code == 200:
        await state.set("standby", term, "the primary is active again")
    else:
        await state.set("active", state.term, "the hand-back did not go through")


async def _peer_status() -> dict[str, Any] | None:
    try:
        r = await client.get(f"{peer_url}/site/status")
        return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError):
        return None


async def _round() -> None:
    """One look at the other site: take over, step down, ship or hand back.  The other site's
    status is asked under the lock, so no claim lands between what it says and what this site
    holds (otherwise a busy site would never see the other one in sync)."""
    async with state.lock:
        peer = await _peer_status()
        now = time.monotonic()
        if peer is not None:
            state.peer, state.peer_seen, state.armed = peer, now, True
        if state.role == "standby":
            if state.armed and now - state.peer_seen > TAKEOVER:
                known = max(state.term, int((state.peer or {}).get("term", 0)))
                await state.set("active", known + 1, f"no word from {PEER} for {TAKEOVER:g} s")
            return
        if peer is None:
            state.synced_since = None
            return
        if peer["role"] == "active" and peer["term"] > state.term:
            await state.set("standby", int(peer["term"]), "the other site holds a newer term")
            return
        last, _ = await asyncio.to_thread(ledger.head)
        if peer["last"] < last:
            state.synced_since = None
            await _ship(await asyncio.to_thread(ledger.records, int(peer["last"])))
            return
        if PREFERRED or peer["role"] != "standby":
            return
        state.synced_since = state.synced_since or now
        if now - state.synced_since >= HOLD:
            state.synced_since = None
            await _hand_back(peer)


async def _watch() -> None:
    while True:
        with contextlib.suppress(Exception):
            await _round()
        await asyncio.sleep(POLL)


async def _in_sync() -> bool:
    last, _ = await asyncio.to_thread(ledger.head)
    peer = state.peer
    return peer is not None and peer["last"] == last and time.monotonic() - state.peer_seen < 1


async def _settle(request: Request) -> None:
    settle = min(30.0, max(0.0, float(request.query_params.get("settle", "0"))))
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and not await _in_sync():
        await asyncio.sleep(0.1)


async def audit(request: Request) -> JSONResponse:
    await _settle(request)
    after = int(request.query_params.get("after", "0"))
    return JSONResponse({"site": SITE, "records": await asyncio.to_thread(ledger.records, after)})


async def claims(request: Request) -> JSONResponse:
    await _settle(request)
    return JSONResponse({"ids": await asyncio.to_thread(ledger.claim_ids)})


async def effects(request: Request) -> JSONResponse:
    await _settle(request)
    return JSONResponse({"counts": await asyncio.to_thread(ledger.counts)})


async def latest(request: Request) -> JSONResponse:
    return JSONResponse({"site": SITE, "latest": await asyncio.to_thread(ledger.latest)})


async def status(request: Request) -> JSONResponse:
    return JSONResponse(await _status())


async def active(request: Request) -> JSONResponse:
    return JSONResponse(await _status(), 200 if state.role == "active" else 503)


async def _start() -> None:
    """A site that was active asks the other one first: if it is active with a term at least as
    new, this site was replaced while it was away and comes back as its standby."""
    if state.role != "active":
        return
    for _ in range(3):
        try:
            peer = (await client.get(f"{peer_url}/site/status")).json()
        except (httpx.HTTPError, ValueError):
            await asyncio.sleep(0.1)
            continue
        if peer["role"] == "active" and peer["term"] >= state.term:
            await state.set("standby", int(peer["term"]), "replaced while away")
        return


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await _start()
    watcher = asyncio.create_task(_watch())
    yield
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await client.aclose()
    ledger.close()


health = HealthRegistry(service_id=SITE)
health.add(sqlite_check(ledger.path, ttl=0.5))
app = HealthApp(
    health,
    app=Starlette(
        routes=[
            Route("/claims", file_claim, methods=["POST"]),
            Route("/claims", claims, methods=["GET"]),
            Route("/claims/latest", latest, methods=["GET"]),
            Route("/site/status", status, methods=["GET"]),
            Route("/site/active", active, methods=["GET"]),
            Route("/site/replicate", replicate, methods=["POST"]),
            Route("/site/promote", promote, methods=["POST"]),
            Route("/audit", audit, methods=["GET"]),
            Route("/lab/effects", effects, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
)
