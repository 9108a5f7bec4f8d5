"""The console's claim panel as an officer works it in the browser tests."""

from __future__ import annotations

from playwright.async_api import Browser, Page

from tests.support.browser import collect_errors, log_in

TILES = "() => window.loketConsole.tiles()"


async def open_first_claim(
    browser: Browser, base_url: str, username: str, within_ms: int = 60_000
) -> tuple[Page, list[str]]:
    """The console at 1366x768, logged in, its one booth connected and its claim panel
    open: (the page, the errors it reports as they come)."""
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    errors = collect_errors(page)
    await log_in(page, base_url, username)
    await page.wait_for_function(
        f"() => ({TILES})().filter(t => t.state === 'connected').length === 1", timeout=within_ms
    )
    await page.click(".tile .claim-toggle")
    return page, errors


async def capture_every_document(page: Page) -> list[str]:
    """Press each requirement's Capture in turn; each picture must appear without a reload
    (pushed: `document_added`). Returns the kinds asked for, in the panel's order."""
    await page.wait_for_selector(".claim-panel .capture")
    kinds: list[str] = await page.eval_on_selector_all(
        ".claim-panel .capture", "bs => bs.map(b => b.dataset.kind)"
    )
    for n, kind in enumerate(kinds, start=1):
        await page.click(f".claim-panel .capture[data-kind='{kind}']")
        await page.wait_for_selector(f".claim-panel .document >> nth={n - 1}", timeout=60_000)
    return kinds


async def accept_every_document(page: Page) -> None:
    """Accept each picture still to be judged, one at a time, as the panel redraws."""
    while count := await page.locator(".claim-panel .doc-accept").count():
        await page.click(".claim-panel .doc-accept >> nth=0")
        await page.wait_for_function(
            "n => document.querySelectorAll('.claim-panel .doc-accept').length < n", arg=count
        )
