"""The console shows that a session is being recorded (issue 23): a real `loket booth`
process that records (its synthetic participant consents) and the console in Chromium;
the booth's `recording_status`, relayed by the server, puts "Recording" on its tile."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.accounts import add_user
from tests.support.booths import booth_processes
from tests.support.browser import chromium, collect_errors, log_in, tone_wav
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

RECORDING = {
    "LOKET_BOOTH_RECORDING__ENABLED": "true",
    "LOKET_BOOTH_RECORDING__CELL_WIDTH": "160",
    "LOKET_BOOTH_RECORDING__CELL_HEIGHT": "120",
}


async def test_the_tile_says_the_session_is_recorded(tmp_path: Path) -> None:
    tone = tone_wav(tmp_path / "officer.wav")
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=2)
        async with (
            booth_processes(server, 1, tmp_path / "booths", env=RECORDING),
            chromium(fake_audio=tone) as browser,
        ):
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            errors = collect_errors(page)
            await log_in(page, server.base_url, "siti")
            badge = page.locator(".tile .rec")
            await badge.wait_for(state="visible", timeout=60_000)
            assert (await badge.text_content()) == "● Recording"
            assert (await badge.get_attribute("data-state")) == "recording"
            assert errors == [], errors
