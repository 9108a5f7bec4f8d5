"""Real media end to end: six aiortc kiosks and an aiortc CSO through a live server.

Runs inside a private network namespace (scripts/test); ICE is limited to loopback.
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.session import SessionState
from tests.support.booths import drop_signaling, running_booths, running_cso
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.media


async def test_six_booths_deliver_decoded_video_and_audio_to_one_cso(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "siti", capacity=6) as cso,
        running_booths(server, 6) as booths,
    ):
        await cso.wait_connected(6, within=60)
        before = {s.session_id: s.video_frames for s in cso.stats()}
        await asyncio.sleep(2.0)
        stats = cso.stats()
        assert len({s.booth_id for s in stats}) == 6
        for s in stats:
            # Frames keep coming (not one frame and a stall), at the sent size.
            assert s.video_frames > before[s.session_id] + 5, s
            assert (s.width, s.height) == (320, 240)
            assert s.audio_frames > 0, s
        for booth in booths:
            assert booth.state in (SessionState.ON_HOLD, SessionState.FOCUSED), booth.state
            assert booth.claim_id is not None  # walk-ins registered at check-in
        report = cso.report()
        assert report["connected"] == 6
        assert report["first_frame_ms"]["p95"] is not None


async def test_focus_and_end_reach_the_booth_and_it_queues_again(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "budi", capacity=2) as cso,
        running_booths(server, 2) as booths,
    ):
        await cso.wait_connected(2, within=60)
        by_booth = {b.session_id: b for b in booths}
        first = cso.stats()[0].session_id
        await cso.focus(first)
        await _until(lambda: by_booth[first].state is SessionState.FOCUSED)
        other = next(b for sid, b in by_booth.items() if sid != first)
        assert other.state is SessionState.ON_HOLD
        # Ending the call frees the kiosk for its next participant: it queues again and,
        # the CSO having room, is served in a new session.
        await cso.end(first)
        booth = by_booth[first]
        await _until(lambda: booth.session_id not in (None, first))
        await cso.wait_connected(3, within=60)


async def test_booth_uploads_a_document_in_its_session(tmp_path) -> None:
    from tests.support.images import jpeg

    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "rina", capacity=1) as cso,
        running_booths(server, 1) as [booth],
    ):
        await cso.wait_connected(1, within=60)
        doc = await booth.upload_document("ktp", jpeg(), "image/jpeg")
        assert doc["kind"] == "ktp" and len(doc["sha256"]) == 64
        docs = await server.app.state.records.store.documents_of(booth.claim_id)
        assert [d.sha256 for d in docs] == [doc["sha256"]]


async def _until(condition, within: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)


async def test_demo_participant_shows_every_missing_document(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "dewi", capacity=1) as cso,
        running_booths(server, 1, show_documents=True) as [booth],
    ):
        await cso.wait_connected(1, within=60)
        store = server.app.state.records.store

        async def kinds() -> set[str]:
            return {d.kind for d in await store.documents_of(booth.claim_id)}

        async with asyncio.timeout(30):
            while len(await kinds()) < 5:
                await asyncio.sleep(0.1)
        # A walk-in resignation below the NPWP threshold needs exactly these five.
        assert await kinds() == {"kpj_card", "ktp", "kk", "buku_tabungan", "paklaring"}


async def _record_states(booth, states: list[SessionState]) -> None:
    while True:
        states.append(booth.state)
        await asyncio.sleep(0.02)


async def test_signaling_drops_mid_call_leave_media_alone_and_both_ends_resume(tmp_path) -> None:
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "ayu", capacity=2) as cso,
        running_booths(server, 2, reconnect_min=0.1, reconnect_max=0.5) as booths,
    ):
        await cso.wait_connected(2, within=60)
        await _until(lambda: all(b.state is SessionState.ON_HOLD for b in booths))
        sessions = sorted(cso.live_sessions())
        booth = booths[0]
        peer = booth._peer
        await cso.focus(booth.session_id)
        await _until(lambda: booth.state is SessionState.FOCUSED)

        # The kiosk's network blips: it comes back from welcome, still in its call.
        back = booth.connections + 1
        drop_signaling(booth)
        await _until(
            lambda: booth.connections == back and booth.state is not SessionState.RECONNECTING
        )
        assert booth.state is SessionState.FOCUSED and booth.focused
        assert booth._peer is peer and booth.peer_state == "connected"  # not renegotiated

        # The console's network blips: it keeps its focus through the grace period (the
        # call was fine; the booth is not muted) and comes back from welcome.cso with the
        # same calls, which it keeps.
        frames = {s.session_id: s.video_frames for s in cso.stats()}
        states: list[SessionState] = []
        watch = asyncio.create_task(_record_states(booth, states))
        drop_signaling(cso)
        await _until(lambda: cso.connections == 2)
        watch.cancel()
        assert set(states) == {SessionState.FOCUSED} and booth.focused, states
        assert cso.welcome is not None and cso.welcome.cso is not None
        assert sorted(s.session_id for s in cso.welcome.cso.sessions) == sessions
        assert sorted(cso.live_sessions()) == sessions
        await asyncio.sleep(1.5)
        for s in cso.stats():
            assert s.video_frames > frames[s.session_id] + 5, s  # media never stopped
        assert booth._peer is peer
        assert cso.refusals == []


async def test_the_booth_reports_its_call_quality_for_supervisors(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("booth_client.client.STATS_INTERVAL_S", 0.5)
    async with (
        running_server(server_settings(tmp_path)) as server,
        running_cso(server, "siti", capacity=1) as cso,
        running_booths(server, 1) as [booth],
    ):
        await cso.wait_connected(1, within=60)
        core = server.app.state.floor.core
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            record = core.sessions.get(str(booth.session_id))
            reports = record.quality if record is not None else {}
            if "booth" in reports and reports["booth"].rtt_ms is not None:
                break
            assert asyncio.get_running_loop().time() < deadline, reports
            await asyncio.sleep(0.2)
        quality = reports["booth"]
        assert quality.rtt_ms < 1_000  # loopback, from the officer's receiver reports
        assert quality.loss is not None and quality.loss < 0.05
        assert quality.fps is None  # this officer (aiortc stand-in) sends no picture
