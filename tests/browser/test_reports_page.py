"""The reports page in real headless Chromium: yesterday's scripted day (the unit test's
hand-computed day, recorded through the store the floor's outbox writes to) shows its
service level with its formula, and its plots are drawn (bars for the hours the
participants came, a bar for the day); the CSV comes from the same figures."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, timedelta

import pytest

from server.domain.reports import day_bounds, day_of
from tests.support.accounts import add_user
from tests.support.browser import chromium, collect_errors
from tests.support.live_server import running_server, server_settings
from tests.unit.test_reports import CFG, DAY

pytestmark = pytest.mark.browser


async def test_yesterdays_service_level_with_its_formula_and_plots(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        store = server.app.state.front
        yesterday = (date.fromisoformat(day_of(time.time(), CFG)) - timedelta(days=1)).isoformat()
        shift = day_bounds(yesterday, CFG)[0] - day_bounds("2026-12-01", CFG)[0]
        await store.write_events([replace(e, at=e.at + shift) for e in DAY])
        await add_user(server, "manager", role="supervisor", pools=frozenset({"jkt01"}))
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            errors = collect_errors(page)
            await page.goto(f"{server.base_url}/reports/")
            await page.fill("input[name=username]", "manager")
            await page.fill("input[name=password]", "correct horse battery")
            await page.click("#login button[type=submit]")
            await page.wait_for_function("window.loketReport !== undefined", timeout=15_000)
            assert await page.text_content("#sl") == "40.0 %"
            formula = await page.text_content("#formula")
            assert formula is not None and formula.startswith("service level = tickets served")
            assert "2 of 5" in (await page.text_content("#sl-detail") or "")
            hours = await page.eval_on_selector_all(
                "#plot-hours rect[data-hour]", "bars => bars.map(b => b.dataset.hour)"
            )
            assert hours == ["9", "10"]
            days = await page.eval_on_selector_all(
                "#plot-days rect[data-day]", "bars => bars.map(b => b.dataset.day)"
            )
            assert days == [yesterday]
            csv = await page.evaluate("""async () => {
                const t = JSON.parse(sessionStorage.getItem('loket.reports.tokens'));
                const r = await fetch('/api/reports.csv?branch=jkt01',
                                      {headers: {authorization: 'Bearer ' + t.access_token}});
                return await r.text(); }""")
            assert '"0.4"' in csv and "# service level =" in csv
            await page.screenshot(path=str(tmp_path / "reports.png"), full_page=True)
            assert errors == []
