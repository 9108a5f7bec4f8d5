"""Monitor, whisper and steering from the supervisor dashboard, in real Chromium.

A real aiortc kiosk is served by an aiortc officer who talks (a 660 Hz tone; the
participant's voice is the kiosk's 440 Hz tone). The supervisor's page monitors the
session: it receives the participant's video and both voices (energy measured in the
page with WebAudio), while what the booth and the officer hear from each other stays as
loud as before; then it whispers: the officer hears it, the booth does not. Moving a
booth and pausing an officer from the page show on the dashboard and are audited.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from signaling.messages import EndSession
from tests.support.accounts import add_user
from tests.support.booths import running_booths
from tests.support.browser import chromium
from tests.support.dashboard import artifacts_dir, open_dashboard
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.talking_cso import talking_cso, wait_until

pytestmark = pytest.mark.browser

ENERGY = "() => window.loketDashboard.monitorEnergy()"
WINDOW = 3.0  # seconds of audio compared before and during monitoring


async def _audit(server: LiveServer) -> list[tuple[str, dict]]:
    store = server.app.state.records.store
    return [(e.action, e.details) async for e in store.audit_entries()]


async def test_monitor_and_whisper_from_the_dashboard(tmp_path) -> None:
    settings = server_settings(tmp_path, broadcast_interval=0.1)
    async with running_server(settings) as server:
        await add_user(server, "budi", role="supervisor")
        async with (
            talking_cso(server, "siti", capacity=1) as siti,
            running_booths(server, 1, audio_sink="measure") as [booth],
            chromium() as browser,
        ):
            await wait_until(lambda: booth.peer_state == "connected", 60)
            session = str(booth.session_id)
            heard_by_cso = siti.heard_from(session).audio
            heard_by_booth = booth.audio_sink
            await wait_until(lambda: heard_by_cso.energy(time.monotonic() - 1) > 0.02, 30)
            await wait_until(lambda: heard_by_booth.energy(time.monotonic() - 1) > 0.02, 30)
            t0 = time.monotonic()
            await asyncio.sleep(WINDOW)
            before = (heard_by_cso.energy(t0), heard_by_booth.energy(t0))

            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await open_dashboard(page, server.base_url, "budi")
            await page.click(f".session[data-session='{session}'] .monitor")
            await page.wait_for_selector("#monitor:not([hidden])")
            # The participant's video and both voices reach the page.
            heard = f"""() => {{ const e = ({ENERGY})();
                return window.loketDashboard.monitorFrames() > 15
                    && e.participant && e.participant.peak > 0.02
                    && e.cso && e.cso.peak > 0.02; }}"""
            try:
                await page.wait_for_function(heard, timeout=60_000)
            except Exception as exc:
                seen = await page.evaluate(
                    f"() => [({ENERGY})(), window.loketDashboard.monitorFrames()]"
                )
                raise AssertionError(f"the page did not get the monitor's media: {seen}") from exc
            assert await page.get_attribute("#monitor", "data-state") == "connected"
            t1 = time.monotonic()
            await asyncio.sleep(WINDOW)
            during = (heard_by_cso.energy(t1), heard_by_booth.energy(t1))
            # What booth and officer hear from each other is unchanged (within 25%).
            for b, d in zip(before, during, strict=True):
                assert 0.75 < d / b < 1.25, (before, during)
            await page.wait_for_selector(
                f".session[data-session='{session}'] .flags:has-text('monitored')"
            )
            await page.screenshot(path=str(artifacts_dir() / "supervisor-monitoring.png"))

            # Whisper: the officer hears the supervisor's microphone; the booth does not.
            await page.click("#whisper-toggle")
            await page.wait_for_selector("#monitor[data-whisper=on]")
            await wait_until(
                lambda: (
                    siti.whispers_heard
                    and max((lv.rms for lv in siti.whispers_heard[-1].audio.levels), default=0)
                    > 0.005
                ),
                30,
            )
            t2 = time.monotonic()
            await asyncio.sleep(WINDOW)
            assert 0.75 < heard_by_booth.energy(t2) / before[1] < 1.25
            core = server.app.state.floor.core
            whispers = [lk for lk in core.links.values() if lk.kind == "whisper"]
            assert [lk.peer_id for lk in whispers] == [siti.welcome.peer_id]
            assert booth.monitors.opened == 1  # only the monitor link ever reached the booth
            await page.click("#whisper-toggle")
            await page.wait_for_selector("#monitor[data-whisper=off]")

            await page.click("#monitor-stop")
            await page.wait_for_selector("#monitor", state="hidden")
            await wait_until(lambda: not booth.monitors.links, 10)
            actions = [a for a, _ in await _audit(server)]
            for action in ("monitor.started", "whisper.started", "whisper.stopped",
                           "monitor.stopped"):  # fmt: skip
                assert action in actions
            details = dict(await _audit(server))["monitor.started"]
            assert details["session_id"] == session
            assert errors == []


async def test_move_a_booth_and_pause_an_officer_from_the_dashboard(tmp_path) -> None:
    settings = server_settings(tmp_path, broadcast_interval=0.1)
    async with running_server(settings) as server:
        await add_user(server, "budi", role="supervisor")
        async with (
            talking_cso(server, "siti", capacity=1) as siti,
            running_booths(server, 1) as [booth],
            chromium() as browser,
        ):
            await wait_until(lambda: booth.peer_state == "connected", 60)
            first = str(booth.session_id)
            async with talking_cso(server, "rina", capacity=1) as rina:
                page = await browser.new_page(viewport={"width": 1400, "height": 1000})
                await open_dashboard(page, server.base_url, "budi")
                await page.click(f".session[data-session='{first}'] .move")
                await page.select_option("#confirm select", rina.welcome.peer_id)
                await page.click("#confirm-ok")
                # The booth's call ends (moved) and it comes back with Rina.
                rina_card = f".cso[data-cso='{rina.welcome.peer_id}']"
                await page.wait_for_selector(f"{rina_card}[data-load='1']", timeout=30_000)
                await page.wait_for_selector(
                    f".cso[data-cso='{siti.welcome.peer_id}'][data-load='0']"
                )
                await wait_until(lambda: booth.session_id not in (None, first), 30)
                # Pause Siti, with confirmation; her card says so.
                await page.click(f".cso[data-cso='{siti.welcome.peer_id}'] .pause")
                await page.click("#confirm-ok")
                await page.wait_for_selector(
                    f".cso[data-cso='{siti.welcome.peer_id}'][data-state='paused']"
                )
                # A refused action shows its typed reason: the officer ends the call
                # while the supervisor's confirmation is open.
                session = str(booth.session_id)
                await page.click(f".session[data-session='{session}'] .end")
                await rina._send(EndSession(session_id=session))
                await wait_until(lambda: booth.session_id != session, 30)
                await page.click("#confirm-ok")
                await page.wait_for_selector("#status[data-kind=refused]")
                assert "End session refused" in (await page.text_content("#status") or "")
                audit = await _audit(server)
                moved = [d for a, d in audit if a == "session.moved"]
                assert moved and moved[0]["to_cso"] == rina.welcome.peer_id
                assert ("cso.paused", {"cso_id": siti.welcome.peer_id}) in audit
