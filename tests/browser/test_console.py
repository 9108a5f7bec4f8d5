"""The CSO console in real headless Chromium: log in, take six booths, play six videos.

Six real aiortc kiosks send synthetic video; the page negotiates with each through the
live server exactly as an officer's browser would. The console rebuilds its tiles from
`welcome` after a reload, shows a kiosk that is reconnecting, shows refusals in its status
line, steps aside when another tab takes over, and logs out on the server.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.accounts import add_user, login
from tests.support.booths import drop_signaling, running_booths
from tests.support.browser import chromium, collect_errors, log_in
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

PLAYING_VIDEOS = """() => [...document.querySelectorAll('#tiles video')]
    .filter(v => v.videoWidth > 0 && v.currentTime > 0).length"""
SESSIONS = "tiles => tiles.map(t => t.dataset.session)"


async def test_console_logs_in_and_plays_six_booth_videos(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=6)
        async with running_booths(server, 6), chromium() as browser:
            page = await browser.new_page()
            errors = collect_errors(page)
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 6", timeout=60_000)
            states = await page.eval_on_selector_all(
                "#tiles .tile", "tiles => tiles.map(t => t.dataset.state)"
            )
            assert states == ["connected"] * 6
            assert errors == []
            # No message the console sent was refused (e.g. its ICE candidates).
            assert await page.is_hidden("#notice"), await page.text_content("#notice")
            assert (await page.text_content("#status") or "").startswith("Connected · serving 6")
            assert await page.is_hidden("#login")


async def test_console_shows_a_clear_error_for_a_wrong_password(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti")
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"{server.base_url}/console/")
            await page.fill("input[name=username]", "siti")
            await page.fill("input[name=password]", "not the password")
            await page.click("#login button[type=submit]")
            error = page.locator("#login-error")
            await error.wait_for()
            await page.wait_for_function(
                "() => document.querySelector('#login-error').textContent.length > 0"
            )
            assert "password" in (await error.text_content() or "").lower()
            assert await page.is_hidden("#floor")


async def test_cso_checks_documents_and_approves_the_claim_from_the_console(tmp_path) -> None:
    from datetime import UTC, datetime

    from server.ports.records import OutcomeFilter
    from tests.support.claims import confirm_identity, member_for
    from tests.support.images import jpeg

    nik, kpj = "3171011508900042", "12345678942"
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        # The membership directory (the local table) knows the participant.
        known = member_for(nik, datetime.now(UTC))
        await server.app.state.records.store.write(lambda tx: tx.put_member(nik, kpj, known))
        async with (
            running_booths(server, 1, walk_in_nik=nik, walk_in_kpj=kpj) as [booth],
            chromium() as browser,
        ):
            page = await browser.new_page()
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 1", timeout=60_000)
            # The participant shows each required document to the document camera.
            for seed, kind in enumerate(("kpj_card", "ktp", "kk", "buku_tabungan", "paklaring")):
                await booth.upload_document(kind, jpeg(seed), "image/jpeg")
            await page.click(".tile .claim-toggle")
            await page.wait_for_selector(".claim-panel .document >> nth=4")
            thumbs = await page.eval_on_selector_all(
                ".doc-thumb", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
            )
            assert len(thumbs) == 5 and all(w and w > 0 for w in thumbs)
            assert await page.is_disabled(".claim-panel .approve")
            for _ in range(5):
                await page.click(".claim-panel .doc-accept >> nth=0")
                await page.wait_for_function(
                    "n => document.querySelectorAll('.claim-panel .doc-accept').length < n",
                    arg=await page.locator(".claim-panel .doc-accept").count(),
                )
            # Accepted documents are not enough: each identity field must be confirmed (the
            # workbench's own browser test does it field by field; here, through the API).
            assert await page.is_disabled(".claim-panel .approve")
            token = (await login(server, "siti"))["access_token"]
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                claim_id = str(booth.claim_id)
                await confirm_identity(http, claim_id, {"Authorization": f"Bearer {token}"})
            await page.click(".claim-panel .close-claim")
            await page.click(".tile .claim-toggle")
            await page.click(".claim-panel .approve:not([disabled])")
            await page.wait_for_selector(".claim-panel .decided")
            receipt = await page.text_content(".claim-panel .audit-hash") or ""
        store = server.app.state.records.store
        outcomes = await store.list_outcomes(OutcomeFilter())
        assert [(o.decision, o.decided_by, len(o.evidence)) for o in outcomes] == [
            ("approved", "siti", 5)
        ]
        # The acknowledgement shows the audit receipt: the hash of the outcome's entry.
        entries = {e.seq: e async for e in store.audit_entries(up_to=outcomes[0].audit_seq)}
        assert receipt == entries[outcomes[0].audit_seq].hash and len(receipt) == 64


async def test_console_reloaded_mid_session_rebuilds_its_tiles_from_welcome(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=2)
        async with running_booths(server, 2) as booths, chromium() as browser:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 2", timeout=60_000)
            before = sorted(await page.eval_on_selector_all("#tiles .tile", SESSIONS))
            assert before == sorted(str(b.session_id) for b in booths)

            await page.reload()
            # The tab kept its login; the tiles come back from welcome.cso, not replays.
            await page.wait_for_selector("#floor:not([hidden])")
            assert await page.is_hidden("#login")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 2", timeout=60_000)
            after = sorted(await page.eval_on_selector_all("#tiles .tile", SESSIONS))
            assert after == before  # the same sessions, renegotiated
            assert sorted(str(b.session_id) for b in booths) == before
            assert "Server:" not in (await page.text_content("#status") or "")
            assert errors == []


async def test_kiosk_away_shows_reconnecting_and_a_refused_action_shows_why(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with (
            running_booths(server, 1, reconnect_min=6.0, reconnect_max=6.0) as [booth],
            chromium() as browser,
        ):
            page = await browser.new_page()
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 1", timeout=60_000)
            drop_signaling(booth)  # the kiosk's network blips; its media keeps flowing
            await page.wait_for_function(
                "() => document.querySelector('.tile .state').textContent === 'reconnecting'"
            )
            assert await page.get_attribute(".tile", "data-booth") == "away"
            # Talking to a booth that is reconnecting is refused; the console says why.
            await page.click(".tile .focus")
            await page.wait_for_function(
                "() => document.querySelector('#notice').textContent.includes('Talk refused')"
            )
            notice = await page.text_content("#notice") or ""
            assert "reconnecting" in notice
            assert await page.get_attribute(".tile", "data-focused") == "false"
            # Back: the same call (no renegotiation needed), and Talk works now.
            await page.wait_for_function(
                "() => document.querySelector('.tile').dataset.booth === 'here'", timeout=20_000
            )
            assert await page.text_content(".tile .state") == "on hold"
            assert await page.get_attribute(".tile", "data-state") == "connected"
            await page.click(".tile .focus")
            await page.wait_for_function(
                "() => document.querySelector('.tile').dataset.focused === 'true'"
            )
            await _until_focused(booth)


async def _until_focused(booth) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(10):
        while not booth.focused:
            await asyncio.sleep(0.05)


async def test_another_tab_takes_over_and_logout_revokes_the_login(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with chromium() as browser:
            first = await browser.new_page()
            await log_in(first, server.base_url, "siti")
            await first.wait_for_function(
                "() => document.querySelector('#status').textContent.startsWith('Connected')"
            )
            second = await browser.new_page()  # another tab (its own session storage)
            await log_in(second, server.base_url, "siti")
            await first.wait_for_function(
                "() => document.querySelector('#status').textContent.includes('Another tab')"
            )
            await second.wait_for_function(
                "() => document.querySelector('#status').textContent.startsWith('Connected')"
            )
            # Logging out revokes the login on the server, not just in the page.
            refresh = await second.evaluate(
                "() => JSON.parse(sessionStorage.getItem('loket.console.tokens')).refresh_token"
            )
            await second.click("#logout")
            await second.wait_for_selector("#login:not([hidden])")
            assert await second.is_hidden("#floor")
            assert await second.evaluate(
                "() => sessionStorage.getItem('loket.console.tokens')"
            ) is None  # fmt: skip
            async with httpx.AsyncClient(base_url=server.base_url) as http:
                res = await http.post("/api/auth/refresh", json={"refresh_token": refresh})
            assert res.status_code == 401


async def test_console_renews_its_socket_token_and_keeps_the_rotated_refresh_token(
    tmp_path,
) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        server.app.state.auth._issuer._access_ttl = 4  # several expiries during the test
        await add_user(server, "siti")
        async with chromium() as browser:
            page = await browser.new_page()
            sockets: list[object] = []
            page.on("websocket", lambda ws: sockets.append(ws))
            stored = "() => JSON.parse(sessionStorage.getItem('loket.console.tokens'))"
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(
                "() => document.querySelector('#status').textContent.startsWith('Connected')"
            )
            first = (await page.evaluate(stored))["refresh_token"]
            await asyncio.sleep(9)
            # `reauth` kept the one socket open past two token lifetimes (no 4401).
            assert len(sockets) == 1
            assert (await page.text_content("#status") or "").startswith("Connected")
            newest = (await page.evaluate(stored))["refresh_token"]
            assert newest != first
            # The newest refresh token is the one kept: a reload (whose access token has
            # expired by now) refreshes with it and stays logged in. A stale one would be
            # a reuse, refused, and the family revoked.
            await page.reload()
            await page.wait_for_function(
                "() => document.querySelector('#status').textContent.startsWith('Connected')"
            )
            assert await page.is_hidden("#login")


async def test_an_offer_counts_down_until_the_officer_accepts_it(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with chromium() as browser:
            page = await browser.new_page()
            await log_in(page, server.base_url, "siti")
            await page.uncheck("#auto-accept")
            async with running_booths(server, 1) as [booth]:
                await page.wait_for_selector(".tile[data-state=offered]")
                # The call's peer connection and offer are made while the booth is only
                # offered; nothing reaches the booth before the officer accepts.
                await page.wait_for_function("() => window.loketConsole.tiles()[0].prepared")
                assert booth._peer is None
                countdown = page.locator(".tile .state")
                first = await countdown.text_content() or ""
                assert first.startswith("offered · ") and first.endswith("s"), first
                await page.wait_for_function(
                    "t => document.querySelector('.tile .state').textContent !== t", arg=first
                )
                later = await countdown.text_content() or ""
                assert int(later.split(" · ")[1][:-1]) < int(first.split(" · ")[1][:-1])
                assert booth._peer is None
                await page.click(".tile .accept")
                await page.wait_for_function(f"({PLAYING_VIDEOS})() === 1", timeout=60_000)
                assert not (await page.evaluate("() => window.loketConsole.tiles()[0].prepared"))
