"""The console keeps its login when a token refresh's answer is lost (issue 21, C11).

Real Chromium and the real server; the first refresh answers are dropped after the server
has sent them (Playwright fetches the real answer, then resets the page's connection), as a
proxy reload or a Wi-Fi change would. The console sends the same refresh token again at
once and the server hands it the successor it missed: no reuse, no new login.
"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Route
from structlog.testing import capture_logs

from tests.support.accounts import add_user
from tests.support.browser import chromium, collect_errors, log_in
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.browser

STORED = "() => JSON.parse(sessionStorage.getItem('loket.console.tokens'))"
CONNECTED = "() => document.querySelector('#status').textContent.startsWith('Connected')"


async def test_a_lost_refresh_answer_is_retried_and_the_console_stays_logged_in(
    tmp_path,
) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        server.app.state.auth._issuer._access_ttl = 4  # the socket's token renews in ~2 s
        await add_user(server, "siti")
        async with chromium() as browser:
            page = await browser.new_page()
            errors = collect_errors(page)
            lost: list[str] = []  # the successors the page never saw

            async def lose_two_answers(route: Route) -> None:
                if len(lost) < 2:
                    answer = await route.fetch()  # the server rotates and answers...
                    lost.append((await answer.json())["refresh_token"])
                    await route.abort("connectionreset")  # ...and the page gets nothing
                else:
                    await route.continue_()

            with capture_logs() as logs:
                await log_in(page, server.base_url, "siti")
                await page.route("**/api/auth/refresh", lose_two_answers)
                first = (await page.evaluate(STORED))["refresh_token"]
                await page.wait_for_function(
                    f"() => ({STORED})().refresh_token !== {first!r}", timeout=20_000
                )
                kept = (await page.evaluate(STORED))["refresh_token"]
                await asyncio.sleep(1.0)
                assert await page.evaluate(CONNECTED)
                assert await page.is_hidden("#login")
            # Both lost answers carried the one successor, and that is what the page kept.
            assert lost[0] == lost[1] == kept
            events = [e["event"] for e in logs]
            assert "refresh_token_reused" not in events and events.count("refresh_retried") == 2
            # Chromium reports each reset itself; nothing else went wrong.
            assert [e for e in errors if "ERR_CONNECTION_RESET" not in e] == [], errors
            assert len(errors) == 2, errors
            # The kept token is the family's live one: a reload refreshes with it.
            await page.unroute("**/api/auth/refresh")
            await page.reload()
            await page.wait_for_function(CONNECTED)
            assert await page.is_hidden("#login")
