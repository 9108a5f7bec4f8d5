"""A kiosk killed in the middle of a call and a capture, as the officer sees it in real
Chromium: the capture's line says the booth is offline instead of "uploading" for ever;
the restarted `loket booth` process resumes its visit (same session, the tile never goes,
nobody is told the booth left), the console offers the call afresh when the kiosk says it
has none, the video plays again, and the kept picture arrives by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.accounts import add_user
from tests.support.booths import booth_processes, session_of
from tests.support.browser import chromium, collect_errors, log_in
from tests.support.live_server import running_server, server_settings

pytestmark = [pytest.mark.browser, pytest.mark.media]

TILES = "() => window.loketConsole.tiles()"
LINE = ".claim-panel .capture-progress[data-kind='ktp']"


async def test_a_kiosk_killed_mid_call_and_mid_capture_comes_back_to_the_same_call(
    tmp_path: Path,
) -> None:
    async with running_server(server_settings(tmp_path / "server")) as server:
        await add_user(server, "siti", capacity=1)
        crash = {"LOKET_BOOTH_CRASH_POINT": "before_upload"}
        async with (
            booth_processes(server, 1, tmp_path / "booths", env=crash) as [booth],
            chromium() as browser,
        ):
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            errors = collect_errors(page)
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(
                f"() => ({TILES})().some(t => t.state === 'connected' && t.framesDecoded > 0)",
                timeout=60_000,
            )
            session = session_of(server, booth)
            assert session is not None
            await page.click(".tile .claim-toggle")
            await page.click(".claim-panel .capture[data-kind='ktp']")
            assert booth.process is not None
            assert await asyncio.wait_for(booth.process.wait(), 60) == -9  # SIGKILLed
            # The officer is told the truth about the capture, not "uploading" for ever.
            await page.wait_for_function(
                f"() => document.querySelector(\"{LINE}\").dataset.stale === 'true'",
                timeout=20_000,
            )
            assert "offline" in (await page.text_content(LINE) or "")

            booth.env.pop("LOKET_BOOTH_CRASH_POINT")
            await booth.start()  # systemd's Restart=always
            # Same session, the call again (the console offered afresh), the picture in.
            await page.wait_for_selector(".claim-panel .document", timeout=60_000)
            await page.wait_for_function(
                f"""() => ({TILES})().some(t => t.session === '{session}'
                    && t.state === 'connected' && !t.away)""",
                timeout=60_000,
            )
            decoded = await page.evaluate("window.loketConsole.framesDecoded()")
            await asyncio.sleep(1.0)
            again = await page.evaluate("window.loketConsole.framesDecoded()")
            assert again[session] > decoded[session]  # the new call's video plays
            assert session_of(server, booth) == session
            assert (await page.text_content(LINE) or "").startswith("Received")
            documents = await server.app.state.records.store.documents_of(
                (await page.evaluate(TILES))[0]["claimId"]
            )
            assert [d.kind for d in documents] == ["ktp"] and not documents[0].after_session
            assert not await page.locator("text=session ended").count()
            assert errors == []
