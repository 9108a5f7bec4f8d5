"""Real media end to end: six aiortc kiosks and an aiortc CSO through a live server.

Runs inside a private network namespace (scripts/test); ICE is limited to loopback.
"""

from __future__ import annotations

import asyncio

import pytest

from booth_client.cso_standin import CsoStandIn
from signaling.session import SessionState
from tests.support.accounts import PASSWORD, add_user
from tests.support.booths import running_booths
from tests.support.live_server import running_server, server_settings

pytestmark = pytest.mark.media


async def test_six_booths_deliver_decoded_video_and_audio_to_one_cso(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "siti", capacity=6)
        cso = CsoStandIn(server.base_url, "siti", PASSWORD)
        cso_task = asyncio.create_task(cso.run())
        try:
            await cso.wait_ready(within=10)
            async with running_booths(server, 6) as booths:
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
                report = cso.report()
                assert report["connected"] == 6
                assert report["first_frame_ms"]["p95"] is not None
        finally:
            await cso.stop()
            cso_task.cancel()


async def test_focus_and_end_reach_the_booth_and_it_queues_again(tmp_path) -> None:
    async with running_server(server_settings(tmp_path)) as server:
        await add_user(server, "budi", capacity=2)
        cso = CsoStandIn(server.base_url, "budi", PASSWORD)
        cso_task = asyncio.create_task(cso.run())
        try:
            await cso.wait_ready(within=10)
            async with running_booths(server, 2) as booths:
                await cso.wait_connected(2, within=60)
                by_booth = {b.session_id: b for b in booths}
                first = cso.stats()[0].session_id
                await cso.focus(first)
                await _until(lambda: by_booth[first].state is SessionState.FOCUSED)
                other = next(b for sid, b in by_booth.items() if sid != first)
                assert other.state is SessionState.ON_HOLD
                # Ending the call frees the kiosk for its next participant: it queues
                # again and, the CSO having room, is served in a new session.
                await cso.end(first)
                booth = by_booth[first]
                await _until(lambda: booth.session_id not in (None, first))
                await cso.wait_connected(3, within=60)
        finally:
            await cso.stop()
            cso_task.cancel()


async def _until(condition, within: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)
