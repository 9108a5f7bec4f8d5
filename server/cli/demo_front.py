"""The demo's front of house: yesterday's day of tickets for the reports page, a display key
for the waiting room's screen, and a desk that hands out tickets while the demo runs.

Yesterday is synthetic (the demo has no yesterday): a day of visit events for the demo
branch, made deterministically (seeded) and written through the same store the floor's
outbox writes to, so the reports page reads it exactly as it reads a real day. Its events'
ids are fixed, so running the demo again writes nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import structlog
import websockets

from server.adapters.sql.front import EventRow, FrontStore
from server.auth.demo import DemoUser
from server.domain.members import MemberRecord, MemberSource
from server.domain.reports import ReportConfig, day_bounds, day_of
from server.ports.records import RecordsTx
from server.principal import AccountRole
from server.settings import Settings
from signaling.codec import decode_outbound, encode
from signaling.messages import (
    ClaimType,
    Hello,
    IssueTicket,
    Ping,
    Pong,
    Role,
    TicketIssued,
    WalkInRef,
)

log = structlog.get_logger("loket.demo")
OFFICERS = ("demo-cso", "demo-ani", "demo-budi")
CLAIM_TYPES = ("resignation", "resignation", "termination", "retirement", "retirement", "death")


def synthetic_day(branch: str, day: str, cfg: ReportConfig, seed: int = 24) -> list[EventRow]:
    """A branch's day: ~140 tickets 08:00-15:00 (a morning peak), six booths, three officers,
    ~7 % no-shows, a few cancels and direct check-ins; waits grow with the peak."""
    rng = random.Random(f"{seed}:{branch}:{day}")
    start, _ = day_bounds(day, cfg)
    events: list[EventRow] = []
    n = 0

    def add(visit: str, kind: str, at: float, **kw: str | None) -> None:
        nonlocal n
        n += 1
        events.append(EventRow(f"demo-{day}-{n:05d}", at, kind, branch, visit, **kw))  # type: ignore[arg-type]

    booths_free_at = [start + 8 * 3600.0] * 6
    officers_free_at = {o: start + 8 * 3600.0 for o in OFFICERS}
    counters = {"A": 0, "B": 0, "P": 0}
    t = start + 8 * 3600.0
    while t < start + 15 * 3600.0:
        hour = (t - start) / 3600
        rate = 24 if hour < 9 else 40 if hour < 11 else 30 if hour < 13 else 18  # per hour
        t += rng.expovariate(rate / 3600)
        category = rng.choices("ABP", weights=(35, 57, 8))[0]
        counters[category] += 1
        number = f"{category}-{counters[category]:03d}"
        visit = f"demo-{day}-{number}"
        add(visit, "arrived", t, ticket_id=visit, number=number, category=category)
        fate = rng.random()
        if fate < 0.03:  # changed their mind at the desk
            add(visit, "cancelled", t + rng.uniform(20, 600), ticket_id=visit, number=number)
            continue
        booth = min(range(6), key=lambda i: booths_free_at[i])
        called = max(t + 20, booths_free_at[booth])
        add(visit, "called", called, ticket_id=visit, booth_id=f"demo-booth-{booth + 1}")
        if fate < 0.10:  # never came: recalled once, then a no-show; the booth moved on
            add(visit, "missed", called + 90, ticket_id=visit)
            add(visit, "called", called + 400, ticket_id=visit)
            add(visit, "no_show", called + 490, ticket_id=visit, number=number)
            booths_free_at[booth] = called + 90
            continue
        at_booth = called + rng.uniform(30, 100)
        add(visit, "served", at_booth, ticket_id=visit, number=number)
        add(visit, "checked_in", at_booth, ticket_id=visit, booth_id=f"demo-booth-{booth + 1}",
            detail=rng.choice(CLAIM_TYPES))  # fmt: skip
        officer = min(OFFICERS, key=lambda o: officers_free_at[o])
        assigned = max(at_booth + rng.uniform(5, 40), officers_free_at[officer] - 600)
        handle = rng.uniform(420, 900)
        add(visit, "assigned", assigned, ticket_id=visit, cso_id=officer)
        reason = "completed" if rng.random() < 0.93 else "cso_ended"
        add(visit, "session_ended", assigned + handle, ticket_id=visit, cso_id=officer,
            detail=reason)  # fmt: skip
        add(visit, "visit_ended", assigned + handle, ticket_id=visit, detail=reason)
        # An officer serves up to six booths at once: about a third of a visit's length.
        officers_free_at[officer] = assigned + handle / 3
        booths_free_at[booth] = assigned + handle
    return events


async def seed_yesterday(store: FrontStore, branch: str) -> str:
    cfg = store.cfg
    yesterday = (date.fromisoformat(day_of(time.time(), cfg)) - timedelta(days=1)).isoformat()
    events = synthetic_day(branch, yesterday, cfg)
    for start in range(0, len(events), 500):
        await store.write_events(events[start : start + 500])
    return yesterday


async def ensure_demo_desk(settings: Settings) -> DemoUser:
    """The demo desk's own account (the supervisor's login stays free for the pages)."""
    from server.adapters.sql.wiring import open_accounts
    from server.auth.demo import DEMO_BRANCH, auth_service

    engine, store = await open_accounts(settings)
    try:
        auth = auth_service(settings, store)
        password = secrets.token_urlsafe(12)
        if await store.get_user("demo-desk") is None:
            await auth.add_user(
                "demo-desk", password, role=AccountRole.SUPERVISOR, display_name="Demo desk",
                branch=DEMO_BRANCH, pools=frozenset({DEMO_BRANCH}),
            )  # fmt: skip
        else:
            await auth.set_password("demo-desk", password)
        return DemoUser("demo-desk", password)
    finally:
        await engine.dispose()


ABSENT = [f"B-{n:03d}" for n in range(5, 1000, 5)]  # every fifth holder never comes


DEMO_MEMBERS = 1000  # walk-ins the membership table knows (a desk's first ~7 hours)
DEMO_EMPLOYER = "PT SENTOSA ABADI"


def desk_walk_in(n: int) -> WalkInRef:
    """The demo desk's `n`th walk-in: women born in the 1990s (the NIK's day is 52: the
    12th + 40), each with their own KPJ, claiming after leaving their job."""
    nik = f"3171015208{90 + n % 10:02d}{n % 10000:04d}"
    return WalkInRef(nik=nik, kpj=f"{n:011d}", claim_type=ClaimType.RESIGNATION)


def demo_members(count: int = DEMO_MEMBERS) -> list[tuple[str, str, MemberRecord]]:
    """The membership records of the desk's walk-ins: the very members the kiosks' synthetic
    participants show the documents of (booth_client.sources.id_cards.person_for), so the
    officer can compare them field by field and approve, as with a real member."""
    from booth_client.sources.id_cards import person_for

    now = datetime.now(UTC)
    left = now.date() - timedelta(days=95)  # a resignation is paid a month after it
    members = []
    for n in range(1, count + 1):
        ref = desk_walk_in(n)
        p = person_for(ref.nik, ref.kpj)
        record = MemberRecord(
            MemberSource.IMPORT, now, full_name=p.name, birth_place=p.birth_place,
            birth_date=p.birth_date, sex=p.sex, address=p.address, employer_name=DEMO_EMPLOYER,
            employment_end=left, bank_name=p.bank, account_number=p.account_number,
            account_holder=p.name,
        )  # fmt: skip
        members.append((ref.nik, ref.kpj, record))
    return members


async def seed_demo_members(settings: Settings) -> int:
    """Put the demo's members into the membership table (the local directory)."""
    from server.adapters.sql.wiring import open_records

    members = demo_members()

    def put(tx: RecordsTx) -> None:
        for nik, kpj, record in members:
            tx.put_member(nik, kpj, record)

    async with open_records(settings) as (_, service):
        await service.store.write(put)
    return len(members)


async def demo_desk(base_url: str, username: str, password: str, every: float) -> None:
    """The demo's desk: a walk-in ticket every `every` seconds, as a receptionist would
    issue them, on the supervisor socket (the holders of ABSENT never come: the booths'
    synthetic participants are told so, `ticket_absent`). It logs in again for each
    socket, and opens a new one before its access token expires or when one closes."""
    serial = 0
    while True:
        try:
            serial = await _desk_shift(base_url, username, password, every, serial)
        except (OSError, httpx.HTTPError, websockets.ConnectionClosed) as exc:
            log.warning("demo_desk_reconnecting", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(2)


async def _desk_shift(base_url: str, username: str, password: str, every: float, n: int) -> int:
    """One socket's worth of tickets; returns how many were issued in all."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        res = await http.post("/api/auth/login", json={"username": username, "password": password})
        res.raise_for_status()
        body = res.json()
    token, until = body["access_token"], time.monotonic() + 0.8 * float(body["expires_in"])
    ws_url = base_url.replace("http://", "ws://") + "/ws/supervisor"
    async with websockets.connect(ws_url, max_size=2**22) as ws:
        await ws.send(encode(Hello(token=token)))

        async def answer_pings() -> None:
            async for raw in ws:
                message = decode_outbound(raw, Role.SUPERVISOR)
                if isinstance(message, Ping):
                    await ws.send(encode(Pong(reply_to=message.id)))
                elif isinstance(message, TicketIssued):
                    log.info("demo_ticket", number=message.ticket.number)

        reader = asyncio.create_task(answer_pings())
        try:
            while time.monotonic() < until and not reader.done():
                n += 1
                await ws.send(encode(IssueTicket(claim=desk_walk_in(n))))
                await asyncio.sleep(every)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
    return n
