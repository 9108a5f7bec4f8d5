"""The booth's document camera in the console: the third m-line, shown live in the claim
panel; the tile keeps the participant's face and its frame rate."""

from __future__ import annotations

import pytest

from tests.support.accounts import add_user
from tests.support.booths import running_booths
from tests.support.browser import chromium, collect_errors, log_in
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

DOC_CAM = """() => {
  const v = document.querySelector('#claim .doc-live');
  return v && !v.hidden && v.videoWidth > 0 && v.currentTime > 0 ? v.videoWidth : 0;
}"""
TILE_VIDEO = """() => [...document.querySelectorAll('#tiles video')]
    .filter(v => v.videoWidth > 0 && v.currentTime > 0).length"""


async def test_the_claim_panel_shows_the_booths_document_camera_live(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=1)
        async with running_booths(server, 1) as [booth], chromium() as browser:
            page = await browser.new_page()
            errors = collect_errors(page)
            await log_in(page, server.base_url, "siti")
            await page.wait_for_function(f"({TILE_VIDEO})() === 1", timeout=60_000)
            assert booth._peer is not None and booth._peer.sends_document
            # Talking to the booth: a held booth pauses its document camera (hold layer).
            await page.keyboard.press("1")
            await page.click(".tile .claim-toggle")
            # The desk scene is drawn at the face camera's size (320x240 in these tests).
            width = await page.wait_for_function(f"({DOC_CAM})()", timeout=30_000)
            assert await width.json_value() == 320
            # Closing and reopening the panel plays it again.
            await page.click(".close-claim")
            await page.click(".tile .claim-toggle")
            await page.wait_for_function(f"({DOC_CAM})()", timeout=10_000)
            # One video per tile still: the document camera is not a second face.
            assert await page.evaluate(f"({TILE_VIDEO})()") == 1
            assert await page.is_visible("#claim .doc-live-note")
            assert errors == []
