"""Monitor, whisper and steering from the supervisor dashboard, in real Chromium.

A real kiosk process (`loket booth --source synthetic`, its participant speaking: the
kiosk's 440 Hz tone) is served by an aiortc officer who talks (a 660 Hz tone). The
supervisor's page monitors the session: it receives the participant's video and both
voices (energy measured in the page with WebAudio), while what the booth and the officer
hear from each other stays as loud as before (the booth's side measured by the kiosk
process's measuring sink, read from its audio log); then it whispers: the officer hears it,
the booth does not. Moving a
booth and pausing an officer from the page show on the dashboard and are audited.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from server.floor.model import cso_key
from signaling.messages import EndSession
from tests.support.accounts import add_user
from tests.support.booths import (
    BoothProcess,
    booth_processes,
    conversation_levels,
    describe,
    floor_booth,
    log_events,
    mean_level,
    session_of,
)
from tests.support.browser import chromium
from tests.support.dashboard import artifacts_dir, open_dashboard
from tests.support.live_server import LiveServer, running_server, server_settings
from tests.support.talking_cso import talking_cso, wait_until

pytestmark = pytest.mark.browser

ENERGY = "() => window.loketDashboard.monitorEnergy()"
WINDOW = 3.0  # seconds of audio compared before and during monitoring
TALKS = {1: "always"}  # the kiosk's participant speaks all the time


async def _audit(server: LiveServer) -> list[tuple[str, dict]]:
    store = server.app.state.records.store
    return [(e.action, e.details) async for e in store.audit_entries()]


async def _in_call(server: LiveServer, booth: BoothProcess, within: float = 90.0) -> None:
    """Wait until the kiosk process's call is up: it told the server its peer connection is
    connected (its session steps on to on hold or focused)."""
    try:
        await wait_until(lambda: session_of(server, booth) is not None, within)
    except TimeoutError:
        raise AssertionError(f"no call:\n{describe(server, [booth])}") from None


def _session(server: LiveServer, booth: BoothProcess) -> str | None:
    """The booth's session on the floor, whatever its state."""
    record = floor_booth(server, booth)
    return None if record is None else record.session_id


async def test_monitor_and_whisper_from_the_dashboard(tmp_path) -> None:
    settings = server_settings(tmp_path, broadcast_interval=0.1)
    async with running_server(settings) as server:
        await add_user(server, "budi", role="supervisor")
        async with (
            talking_cso(server, "siti", capacity=1) as siti,
            booth_processes(server, 1, tmp_path / "booths", speak=TALKS) as [booth],
            chromium() as browser,
        ):
            await _in_call(server, booth)
            session = str(session_of(server, booth))
            heard_by_cso = siti.heard_from(session).audio

            def energies(since: float) -> tuple[float, float]:
                return conversation_levels(heard_by_cso, booth, since, WINDOW)

            await wait_until(lambda: heard_by_cso.energy(time.monotonic() - 1) > 0.02, 30)
            await wait_until(lambda: mean_level(booth, time.monotonic() - 1) > 0.02, 30)
            t0 = time.monotonic()
            await asyncio.sleep(WINDOW + 0.5)  # and the last frames of the window logged
            before = energies(t0)

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
            await asyncio.sleep(WINDOW + 0.5)
            during = energies(t1)
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
            await asyncio.sleep(WINDOW + 0.5)
            assert 0.75 < energies(t2)[1] / before[1] < 1.25
            core = server.app.state.floor.core
            whispers = [lk for lk in core.links.values() if lk.kind == "whisper"]
            assert [lk.peer for lk in whispers] == [cso_key(siti.welcome.peer_id)]
            monitors = [lk.link_id for lk in core.links.values() if lk.kind == "monitor"]
            # Only the monitor link ever reached the booth: the kiosk process opened one
            # link, and every link it logged is that one.
            assert len(monitors) == 1
            assert len(log_events(booth, "monitor_started")) == 1
            assert {e["link_id"] for e in log_events(booth) if "link_id" in e} == set(monitors)
            await page.click("#whisper-toggle")
            await page.wait_for_selector("#monitor[data-whisper=off]")

            await page.click("#monitor-stop")
            await page.wait_for_selector("#monitor", state="hidden")
            await wait_until(lambda: log_events(booth, "monitor_stopped"), 10)
            assert [e["link_id"] for e in log_events(booth, "monitor_stopped")] == monitors
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
            booth_processes(server, 1, tmp_path / "booths") as [booth],
            chromium() as browser,
        ):
            await _in_call(server, booth)
            first = str(session_of(server, booth))
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
                await wait_until(lambda: session_of(server, booth) not in (None, first), 30)
                # Pause Siti, with confirmation; her card says so.
                await page.click(f".cso[data-cso='{siti.welcome.peer_id}'] .pause")
                await page.click("#confirm-ok")
                await page.wait_for_selector(
                    f".cso[data-cso='{siti.welcome.peer_id}'][data-state='paused']"
                )
                # A refused action shows its typed reason: the officer ends the call
                # while the supervisor's confirmation is open.
                session = str(session_of(server, booth))
                await page.click(f".session[data-session='{session}'] .end")
                await rina._send(EndSession(session_id=session))
                await wait_until(lambda: _session(server, booth) != session, 30)
                await page.click("#confirm-ok")
                await page.wait_for_selector("#status[data-kind=refused]")
                assert "End session refused" in (await page.text_content("#status") or "")
                audit = await _audit(server)
                moved = [d for a, d in audit if a == "session.moved"]
                assert moved and moved[0]["to_cso"] == rina.welcome.peer_id
                assert ("cso.paused", {"cso_id": siti.welcome.peer_id}) in audit
