"""Front of house end to end: a real server, a real kiosk process (`python -m booth_client`
with a synthetic participant who comes when called), the waiting room's display in real
headless Chromium, the desk and an officer on their sockets.

A ticket is called on the display (shown, chimed and spoken: the WAV is made by espeak-ng),
the participant confirms it at the booth, and the claim typed at the desk reaches the
officer; a ticket nobody comes for is recalled, then passed over while the booth serves
the next ticket, and ends a no-show. Every step is in `ticket_events`."""

from __future__ import annotations

import asyncio
import wave

import pytest
from sqlalchemy import select

from server.adapters.sql.front import ticket_events
from signaling.messages import (
    Accept,
    BoothOffered,
    ClaimType,
    EndSession,
    IssueTicket,
    Role,
    TicketIssued,
    WalkInRef,
)
from tests.support.accounts import add_user, enrol_booth, user_token
from tests.support.browser import chromium, collect_errors
from tests.support.kiosk_process import kiosk_process
from tests.support.live_server import running_server, server_settings
from tests.support.ws_client import SignalClient

pytestmark = pytest.mark.browser

ABSENT_NIK, PRESENT_NIK = "3171014501900001", "3171014501900002"


async def _issue(desk: SignalClient, nik: str) -> str:
    ask = IssueTicket(claim=WalkInRef(nik=nik, kpj="12345678901", claim_type=ClaimType.RETIREMENT))
    await desk.send(ask)
    issued = await desk.expect(TicketIssued, timeout=10, reply_to=ask.id)
    return issued.ticket.number


async def _events(server, number: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Every recorded step of the visit of ticket `number` (its ticket's and the floor's)."""
    engine = server.app.state.front._engine
    async with engine.connect() as conn:
        visit = select(ticket_events.c.visit_id).where(ticket_events.c.number == number)
        rows = await conn.execute(
            select(ticket_events.c.kind).where(ticket_events.c.visit_id.in_(visit))
            .order_by(ticket_events.c.at, ticket_events.c.event_id)
        )  # fmt: skip
        return [r[0] for r in rows]


async def test_called_confirmed_served_and_a_no_show_passed_over(tmp_path) -> None:
    settings = server_settings(
        tmp_path / "server", broadcast_interval=0.1, lobby_call_timeout=4.0,
        lobby_max_recalls=1, lobby_max_recycles=0,
    )  # fmt: skip
    async with running_server(settings) as server:
        await add_user(server, "desk", role="supervisor", pools=frozenset({"jkt01"}))
        desk = await SignalClient.connect(
            server.ws_url, Role.SUPERVISOR, await user_token_only(server, "desk")
        )
        cso = await SignalClient.connect(server.ws_url, Role.CSO, await user_token(server, "siti"))
        key = await server.app.state.display.displays.enrol("jkt01", "Ruang tunggu")
        absent = await _issue(desk, ABSENT_NIK)
        present = await _issue(desk, PRESENT_NIK)
        assert (absent, present) == ("B-001", "B-002")
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1920, "height": 1080})
            errors = collect_errors(page)
            await page.goto(f"{server.base_url}/display/#key={key}")
            await page.wait_for_function("window.__displayConnected === true", timeout=10_000)
            assert "#key" not in page.url  # the key is kept, not left in the address bar
            assert await page.text_content("#waiting") == "2"
            _, credential = await enrol_booth(server, "Bilik 1")
            async with kiosk_process(
                server, credential, tmp_path / "kiosk", ticket_participant=True,
                ticket_absent=[absent], ticket_confirm_after_s=0.3,
            ) as kiosk:  # fmt: skip
                # The free booth calls the first ticket: shown, chimed and spoken.
                await page.wait_for_function(
                    "window.__displayCalls.some(c => c.number === 'B-001' && c.playing > 0)",
                    timeout=20_000,
                )
                assert await page.text_content("#now-number") == absent
                assert await page.text_content("#now-booth") == "Bilik 1"
                url = await page.evaluate("window.__displayCalls[0].url")
                assert "Nomor+antrean+B+satu" in url
                spoken = list((tmp_path / "server" / "speech").glob("*.wav"))
                assert spoken, "the spoken call was not produced"
                with wave.open(str(spoken[0])) as w:
                    assert w.getnframes() / w.getframerate() > 2.0  # chime and words
                # Nobody comes for B-001: missed, and the booth calls B-002 at once, whose
                # holder confirms it; the claim typed at the desk reaches the officer.
                offer = await cso.expect(BoothOffered, timeout=20)
                assert offer.claim.nik_masked is not None
                assert offer.claim.nik_masked.endswith(PRESENT_NIK[-4:])
                assert offer.claim.claim_id and offer.claim.claim_type is ClaimType.RETIREMENT
                assert (await _events(server, absent))[:3] == ["arrived", "called", "missed"]
                await cso.send(Accept(session_id=offer.session_id))
                await kiosk.until(lambda h: h["state"] == "connecting", within=10)
                await cso.send(EndSession(session_id=offer.session_id))
                # The visit is over: B-001 is recalled to the booth, absent again, a no-show.
                await page.wait_for_function(
                    "window.__displayCalls.filter(c => c.number === 'B-001').length === 2",
                    timeout=20_000,
                )
                assert await page.is_visible("#now-recall")
                for _ in range(100):
                    if (await _events(server, absent))[-1:] == ["no_show"]:
                        break
                    await asyncio.sleep(0.1)
                assert await _events(server, absent) == [
                    "arrived", "called", "missed", "called", "no_show"
                ]  # fmt: skip
                served = await _events(server, present)
                assert served[:2] == ["arrived", "called"]  # then, in one breath, served
                # and checked in at the booth; then the officer's part of the visit
                assert sorted(served[2:4]) == ["checked_in", "served"]
                assert served[4] == "assigned"  # then the session and the visit end together
                assert sorted(served[5:]) == ["session_ended", "visit_ended"]
                health = await kiosk.until(lambda h: h["ticket"] is None, within=10)
                assert health["state"] == "idle"  # the no-show holds no booth
            await page.screenshot(path=str(tmp_path / "display.png"))
            assert errors == []
        await desk.close()
        await cso.close()


async def user_token_only(server, username: str) -> str:  # type: ignore[no-untyped-def]
    from tests.support.accounts import login

    return (await login(server, username))["access_token"]
