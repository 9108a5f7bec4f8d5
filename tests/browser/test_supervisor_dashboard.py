"""The supervisor dashboard in real headless Chromium against a live server: two aiortc
officers and six real kiosk processes (`loket booth --source synthetic`). What the page
shows equals the floor core's state after check-ins, assignments, an officer's loss and
the requeue; alerts appear; a CSO or booth account is refused; a screenshot is saved as
an artifact."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from signaling.messages import Role
from tests.support.accounts import PASSWORD, add_user, booth_token, user_token
from tests.support.booths import IN_CALL, booth_processes, describe, wait_for_booths
from tests.support.browser import chromium
from tests.support.dashboard import artifacts_dir, open_dashboard, page_floor, server_floor
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.talking_cso import talking_cso

pytestmark = pytest.mark.browser


async def _agrees(page, server: LiveServer, until=lambda f: True, timeout: float = 60.0) -> dict:
    """Wait until the core's floor satisfies `until` and the page shows exactly that
    (pushes arrive within the broadcast interval); return it. Fails with both views."""
    deadline = time.monotonic() + timeout
    while True:
        want, shown = server_floor(server), await page_floor(page)
        if shown == want and until(want):
            return want
        if time.monotonic() > deadline:
            assert shown == want
        await asyncio.sleep(0.2)


async def test_dashboard_shows_the_floor_as_the_server_holds_it(tmp_path) -> None:
    settings = server_settings(tmp_path, broadcast_interval=0.1, grace_period=4.0)
    async with running_server(settings) as server:
        await add_user(server, "budi", role="supervisor")
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await open_dashboard(page, server.base_url, "budi", "?wait_alert=0.05")
            # Six booth processes check in; Siti takes two, four wait.
            async with (
                talking_cso(server, "siti", capacity=2) as siti,
                booth_processes(server, 6, tmp_path / "booths") as booths,
            ):
                siti_id = siti.welcome.peer_id
                await wait_for_booths(server, booths)
                shown = await _agrees(
                    page,
                    server,
                    lambda f: f["waiting"] == 4 and f["csos"][siti_id]["load"] == 2,
                )
                # Budi's booths waiting past the threshold (3 s) are alerts.
                await page.wait_for_selector("#alerts li[data-kind=wait]", timeout=15_000)
                async with talking_cso(server, "rina", capacity=2) as rina:
                    rina_id = rina.welcome.peer_id
                    shown = await _agrees(
                        page,
                        server,
                        lambda f: f["waiting"] == 2 and f["csos"][rina_id]["load"] == 2,
                    )
                    # Calls come up: sessions step on to on_hold/focused (each served kiosk
                    # process has told the server its peer connection is up).
                    await _agrees(
                        page,
                        server,
                        lambda f: all(
                            s[1] in IN_CALL for c in f["csos"].values() for s in c["sessions"]
                        ),
                    )
                    shot = artifacts_dir() / "supervisor-dashboard.png"
                    await page.screenshot(path=str(shot), full_page=True)
                    # Rina's console is lost: her two booths wait in grace (alert).
                    await rina._ws.close()
                    rina._task.cancel()
                    shown = await _agrees(
                        page, server, lambda f: f["csos"][rina_id]["state"] == "lost"
                    )
                    assert shown["csos"][rina_id]["load"] == 2
                    await page.wait_for_selector(
                        f"#alerts li[data-key='cso_lost:{rina.welcome.peer_id}']"
                    )
                    # Past the grace period they go back to the front of the queue.
                    shown = await _agrees(page, server, lambda f: f["waiting"] == 4)
                    assert shown["csos"].get(rina_id, {"load": 0})["load"] == 0
                # Every kiosk process lived through it (none exited).
                alive = [b for b in booths if b.process and b.process.returncode is None]
                assert len(alive) == 6, describe(server, booths)
            assert errors == []


async def test_cso_and_booth_accounts_are_refused(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti")
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(f"{server.base_url}/supervisor/")
            await page.fill("input[name=username]", "siti")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("#login button[type=submit]")
            await page.wait_for_function(
                "() => document.querySelector('#login-error').textContent.includes('supervisors')"
            )
            assert await page.is_hidden("#dash")
        # Whatever a page does, the server refuses the socket to other roles (4403) ...
        import websockets

        from signaling.codec import encode
        from signaling.messages import Hello

        for token in (await user_token(server, "rina"), await booth_token(server, "b1")):
            async with websockets.connect(f"{server.ws_url}/ws/supervisor") as ws:
                await ws.send(encode(Hello(token=token)))
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        # ... and the outcomes export.
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            token = await user_token(server, "dewi")
            res = await http.get(
                "/api/outcomes", params={"format": "csv"},
                headers={"authorization": f"Bearer {token}"},
            )  # fmt: skip
            assert res.status_code == 403
        assert Role.SUPERVISOR  # the socket role under test
