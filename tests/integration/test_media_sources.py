"""The kiosk's file source end to end: looped video files as face and document cameras,
real WebRTC to an aiortc CSO through a live server; the document track speeds up while a
capture runs; the degradation policy reads the call's real statistics."""

from __future__ import annotations

import asyncio
import time

import pytest

from booth_client.config import CameraConfig
from booth_client.degrade import Policy, Sampler
from signaling.messages import CaptureStatus, Envelope, RequestCapture
from signaling.session import SessionState
from tests.support.booths import running_booths, running_cso
from tests.support.live_server import running_server, server_settings
from tests.support.videos import write_video

pytestmark = pytest.mark.media


async def test_file_sources_stream_face_and_document_camera_to_the_cso(tmp_path) -> None:
    face = write_video(tmp_path / "face.mp4", seconds=1.0, fps=15, size=(320, 240))
    desk = write_video(tmp_path / "desk.mp4", seconds=1.0, fps=15, size=(640, 360))
    cameras = {
        "source": "file",
        "face_camera": CameraConfig(device=str(face)),
        "document_camera": CameraConfig(device=str(desk), fps=15),
        "outbox_dir": tmp_path / "outbox",
        "hold_video_height": None,  # the file's own size and rate, focused or not
        "hold_video_fps": None,
        "hold_document_camera": False,
    }
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        running_cso(server, "siti", capacity=1) as cso,
        running_booths(server, 1, **cameras) as [booth],
    ):
        await cso.wait_connected(1, within=60)
        [stats] = cso.stats()
        assert (stats.width, stats.height) == (320, 240)  # the face file, not the desk
        async with asyncio.timeout(20):  # a clean line: the ladder ramps up to everything
            while booth.video_level != "full":
                await asyncio.sleep(0.1)
        face_0, doc_0 = stats.video_frames, stats.document_frames
        await asyncio.sleep(3.0)
        # Face at the file's 15 fps across its loops; the document camera idles at 2 fps.
        assert stats.video_frames - face_0 >= 30
        assert 3 <= stats.document_frames - doc_0 <= 9, stats

        # A capture: while the camera's part runs, the document track goes full rate.
        seen: list[tuple[str, float, int]] = []
        send = booth.capture_agent.send

        async def watching(message: Envelope) -> None:
            if isinstance(message, CaptureStatus):
                seen.append((message.stage, time.monotonic(), stats.document_frames))
            await send(message)

        booth.capture_agent.send = watching
        request = RequestCapture(session_id=stats.session_id, capture_id="c1", kind="ktp")
        await booth.capture_agent.handle(request, booth.claim_id)  # type: ignore[arg-type]
        stages = [stage for stage, _, _ in seen]
        assert stages[0] == "capturing" and "uploading" in stages  # the desk has no card
        began, frames_began = seen[0][1:]
        ended, frames_ended = next(s for s in seen if s[0] == "uploading")[1:]
        rate = (frames_ended - frames_began) / (ended - began)
        assert rate > 5, (rate, seen)  # well above the idle 2 fps
        assert booth.media.document_rate.current() == 2.0  # idle again

        # The degradation policy's sample of this call: real receiver reports.
        peer = booth._peer
        assert peer is not None and peer.degrader is not None
        assert peer.encoders is not None
        sampler = Sampler(peer.pc, peer.encoders)
        await sampler.sample()
        await asyncio.sleep(1.5)
        sample = await sampler.sample()
        assert sample.loss == 0.0 and sample.rtt_s is not None and sample.rtt_s < 0.5
        assert sample.sent_bps is not None and sample.sent_bps > 28_000
        assert booth.video_level == "full"


async def test_the_degradation_policy_lowers_video_on_a_live_call_and_restores_it(
    tmp_path,
) -> None:
    """The wiring, on a real call: a policy that finds this (clean) link bad steps down one
    level per sample, and the CSO receives the smaller face and the slower document
    track; a policy that finds it good brings everything back. (No packet loss can be
    injected here: the kernel has no netem.)"""
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        running_cso(server, "siti", capacity=1) as cso,
        running_booths(
            server,
            1,
            face_camera=CameraConfig(width=640, height=360),
            outbox_dir=tmp_path / "o",
            hold_video_height=None,
            hold_video_fps=None,
        ) as [booth],  # fmt: skip
    ):
        await cso.wait_connected(1, within=60)
        [stats] = cso.stats()
        peer = booth._peer
        assert peer is not None and peer.degrader is not None
        # Any round-trip time is too long: bad from the first receiver report on.
        peer.degrader.policy = Policy(bad_rtt_s=0.0, down_after_s=0.0, interval_s=0.3)
        async with asyncio.timeout(20):
            while booth.video_level != "face_180_slow" or stats.last_size != (320, 180):
                await asyncio.sleep(0.1)
        assert booth.video_level == "face_180_slow"
        assert booth.media.document_rate.current() == 0.5
        doc_0, began = stats.document_frames, time.monotonic()
        await asyncio.sleep(3.0)
        assert (stats.document_frames - doc_0) / (time.monotonic() - began) <= 1.5
        assert stats.audio_frames > 0  # the voice goes on

        # A clean bill again: one level up per spell of good samples, back to the full face.
        peer.degrader.policy = Policy(up_after_s=0.3, interval_s=0.3)
        async with asyncio.timeout(20):
            while booth.video_level != "full" or stats.last_size != (640, 360):
                await asyncio.sleep(0.1)
        assert booth.media.document_rate.current() == 2.0


async def _rate(stats: object, seconds: float = 2.0) -> float:
    frames, began = stats.video_frames, time.monotonic()  # type: ignore[attr-defined]
    await asyncio.sleep(seconds)
    return (stats.video_frames - frames) / (time.monotonic() - began)  # type: ignore[attr-defined]


async def _until_size(stats: object, size: tuple[int, int]) -> None:
    async with asyncio.timeout(20):
        while stats.last_size != size:  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)


async def test_a_held_booth_sends_its_hold_layer_and_the_focused_booth_everything(
    tmp_path,
) -> None:
    """On hold the console shows the booth as a small tile: the face camera goes at most
    `hold_video_height` high and `hold_video_fps` fast, and the document camera's live
    track pauses unless a capture runs; focused, everything as configured again (the
    encoder restarts at the new size: no renegotiation)."""
    async with (
        running_server(server_settings(tmp_path / "server")) as server,
        running_cso(server, "siti", capacity=1) as cso,
        running_booths(
            server,
            1,
            face_camera=CameraConfig(width=640, height=360, fps=15),
            hold_video_height=180,
            hold_video_fps=5.0,
            outbox_dir=tmp_path / "o",
            degrade=False,  # the hold layer alone (the ladder ramps its caps up from 1 fps)
        ) as [booth],  # fmt: skip
    ):
        await cso.wait_connected(1, within=60)
        [stats] = cso.stats()
        async with asyncio.timeout(10):
            while booth.state is not SessionState.ON_HOLD:
                await asyncio.sleep(0.05)
        await _until_size(stats, (320, 180))
        documents = stats.document_frames
        held = await _rate(stats)
        assert 3.0 <= held <= 6.5, held
        assert stats.document_frames - documents <= 1  # paused (one may have been on its way)

        # A capture while held: the participant places the document, the officer watches.
        request = RequestCapture(session_id=stats.session_id, capture_id="c1", kind="ktp")
        documents = stats.document_frames
        capture = asyncio.create_task(booth.capture_agent.handle(request, booth.claim_id))  # type: ignore[arg-type]
        async with asyncio.timeout(10):
            while stats.document_frames < documents + 2:
                await asyncio.sleep(0.05)
        await capture

        await cso.focus(stats.session_id)
        await _until_size(stats, (640, 360))
        assert booth.state is SessionState.FOCUSED
        documents = stats.document_frames
        focused = await _rate(stats)
        assert focused >= 11.0, focused
        assert stats.document_frames - documents >= 2  # idle rate: 2 fps

        await cso.focus(None)
        await _until_size(stats, (320, 180))
        assert booth.state is SessionState.ON_HOLD
        assert stats.audio_frames > 0
