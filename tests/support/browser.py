"""Headless Debian Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import contextlib
import math
import shutil
import struct
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

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


def tone_wav(path: Path, hz: float = 1000.0, seconds: float = 4.0, amplitude: float = 0.3) -> Path:
    """A steady tone as a WAV file: the fake microphone's voice (Chromium loops it), so a
    booth that hears the officer hears a level, never the silence between fake beeps."""
    rate = 48_000
    frames = b"".join(
        struct.pack("<h", round(amplitude * 32767 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(rate * seconds))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@contextlib.asynccontextmanager
async def chromium(fake_audio: Path | None = None) -> AsyncIterator[Browser]:
    """Headless Chromium with a fake camera and microphone (`fake_audio`: a WAV file the
    microphone plays in a loop instead of Chromium's beeps)."""
    path = chromium_path()
    args = list(CHROMIUM_ARGS)
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(path), args=args)
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(
    page: Page,
    base_url: str,
    username: str,
    password: str | None = None,
    *,
    auto_accept: bool = True,
) -> None:
    """Open the console and log in (the test accounts' password unless told). Auto-accept
    starts off for a new officer; tests that want booths taken at once turn it on."""
    from tests.support.accounts import PASSWORD

    await page.goto(f"{base_url}/console/")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password or PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#floor:not([hidden])")
    await page.wait_for_function(
        "() => document.querySelector('#status').textContent.startsWith('Connected')"
    )
    if auto_accept and not await page.is_checked("#auto-accept"):
        await page.check("#auto-accept")


def collect_errors(page: Page) -> list[str]:
    """Every error the page reports (uncaught exceptions and console errors), as it comes."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors
