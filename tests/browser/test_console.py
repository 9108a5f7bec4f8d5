"""The CSO console in real headless Chromium: log in, take six booths, play six videos.

Six real aiortc kiosks send synthetic video; the page negotiates with each through the
live server exactly as an officer's browser would.
"""

from __future__ import annotations

import pytest

from tests.support.accounts import PASSWORD, add_user
from tests.support.booths import running_booths
from tests.support.browser import chromium
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

PLAYING_VIDEOS = """() => [...document.querySelectorAll('#tiles video')]
    .filter(v => v.videoWidth > 0 && v.currentTime > 0).length"""


async def test_console_logs_in_and_plays_six_booth_videos(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=6)
        async with running_booths(server, 6), chromium() as browser:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{server.base_url}/console/")
            await page.fill("input[name=username]", "siti")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("#login button[type=submit]")
            await page.wait_for_selector("#floor:not([hidden])")
            await page.wait_for_function(f"({PLAYING_VIDEOS})() === 6", timeout=60_000)
            states = await page.eval_on_selector_all(
                "#tiles .tile", "tiles => tiles.map(t => t.dataset.state)"
            )
            assert states == ["connected"] * 6
            assert errors == []
            # No message the console sent was refused (e.g. its ICE candidates).
            assert "Server:" not in (await page.text_content("#status") or "")
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
    from server.ports.records import OutcomeFilter
    from tests.support.images import jpeg

    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with running_booths(server, 1) as [booth], chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"{server.base_url}/console/")
            await page.fill("input[name=username]", "siti")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("#login button[type=submit]")
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
            await page.click(".claim-panel .approve:not([disabled])")
            await page.wait_for_selector(".claim-panel .decided")
        outcomes = await server.app.state.records.store.list_outcomes(OutcomeFilter())
        assert [(o.decision, o.decided_by, len(o.evidence)) for o in outcomes] == [
            ("approved", "siti", 5)
        ]
