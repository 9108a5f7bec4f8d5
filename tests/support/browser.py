"""Headless Debian Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Quiet, offline Chromium: without these it keeps calling outside hosts (DESIGN.md).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("no /usr/bin/chromium (CI installs it: apt-get install chromium)")
    return Path(found)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(path), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Page, base_url: str, username: str, password: str | None = None) -> None:
    """Open the console and log in (the test accounts' password unless told)."""
    from tests.support.accounts import PASSWORD

    await page.goto(f"{base_url}/console/")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password or PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#floor:not([hidden])")
