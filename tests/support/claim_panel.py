"""The console's claim panel as an officer works it in the browser tests."""

from __future__ import annotations

from playwright.async_api import Page


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
