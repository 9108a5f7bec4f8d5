"""The booth's sources without a network: looped files, feeds, rates, sizes, devices."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path

import pytest
from aiortc.mediastreams import MediaStreamError

from booth_client.config import BoothConfig, CameraConfig
from booth_client.sources.media import (
    Feed,
    FrameRate,
    LoopingFileTrack,
    MediaSourceError,
    ShapedTrack,
    check_camera,
    open_media,
)
from booth_client.sources.synthetic import SyntheticVideoTrack
from signaling.messages import CaptureStatus
from tests.support.videos import write_video


async def test_a_looped_file_keeps_its_pace_and_its_clock_across_loops(tmp_path: Path) -> None:
    track = LoopingFileTrack(str(write_video(tmp_path / "a.mp4", seconds=0.5, fps=15)))
    assert track.fps == 15
    began = time.monotonic()
    frames = [await track.recv() for _ in range(20)]  # 7.5 frames a loop: over two loops
    elapsed = time.monotonic() - began
    assert elapsed >= 19 / 15 - 0.05  # paced at 15 fps, not as fast as it decodes
    pts = [f.pts for f in frames]
    assert pts == sorted(pts) and len(set(pts)) == 20  # time runs on across loops
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()


def test_files_and_devices_that_are_not_there_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(MediaSourceError, match="not a playable video file"):
        LoopingFileTrack(str(tmp_path / "missing.mp4"))
    absent = "no camera at /dev/video0: check the cable or set face_camera.device"
    with pytest.raises(MediaSourceError, match=re.escape(absent)):
        check_camera(CameraConfig(device="/dev/video0"), "face_camera")
    with pytest.raises(MediaSourceError, match=r"no camera at /dev/video2: .* document_camera"):
        check_camera(CameraConfig(), "document_camera")  # the default device
    plain = tmp_path / "video0"
    plain.write_bytes(b"")
    with pytest.raises(MediaSourceError, match="is not a camera device"):
        check_camera(CameraConfig(device=str(plain)), "face_camera")
    config = BoothConfig(credential="lkb_b.s", source="v4l2")  # type: ignore[arg-type]
    with pytest.raises(MediaSourceError, match="no camera at /dev/video0"):
        open_media(config, "b1")


def test_the_document_rate_is_idle_full_while_capturing_and_capped_when_degraded() -> None:
    rate = FrameRate(idle=2.0, full=15.0)
    assert rate.current() == 2.0

    def status(stage: str, capture_id: str = "c1") -> CaptureStatus:
        return CaptureStatus(session_id="s1", capture_id=capture_id, kind="ktp", stage=stage)  # type: ignore[arg-type]

    rate.saw(status("capturing"))
    assert rate.capturing and rate.current() == 15.0
    rate.saw(status("retrying"))
    rate.saw(status("capturing", "c2"))
    rate.saw(status("uploading"))  # c1's camera part is over, c2's is not
    assert rate.current() == 15.0
    rate.saw(status("failed", "c2"))
    assert rate.current() == 2.0
    rate.cap = 1.0
    assert rate.current() == 1.0
    rate.cap = None
    rate.saw(status("capturing", "c3"))  # never ends (its task was cancelled)
    assert rate.capturing
    rate.capture_max_s = 0.0
    assert not rate.capturing and rate.current() == 2.0


async def test_shaped_track_holds_its_rate_and_scales_keeping_the_aspect() -> None:
    rate = 5.0
    track = ShapedTrack(SyntheticVideoTrack("b1", 640, 360, fps=30), lambda: rate)
    began = time.monotonic()
    frames = [await track.recv() for _ in range(6)]
    # 6 frames at 5 fps: 5 periods, from a 30 fps source.
    assert 0.9 <= time.monotonic() - began <= 1.3
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    track.max_height = 180
    small = await track.recv()
    assert (small.width, small.height) == (320, 180) and small.pts > frames[-1].pts
    track.max_height = 360  # never scaled up
    assert ((f := await track.recv()).width, f.height) == (640, 360)


async def test_a_feed_keeps_reading_and_hands_each_consumer_only_the_newest(
    tmp_path: Path,
) -> None:
    from booth_client.capture import FrameRing

    ring = FrameRing(capacity=8, max_age=5.0)
    source = SyntheticVideoTrack("doc", 320, 240, fps=30)
    feed = Feed(source, ring=ring, name="document_camera")
    consumer = feed.subscribe()
    first = await consumer.recv()  # starts the reader
    await asyncio.sleep(0.5)  # nobody reads: the device is read anyway
    assert feed.frames >= 12 and len(ring) == 8
    newest = await consumer.recv()  # not the 15 frames in between: only the newest
    assert newest.pts > first.pts and newest is ring.latest(1)[0].image
    assert feed.up
    await feed.close()
    assert source.readyState == "ended"


async def test_file_source_opens_both_cameras_and_captures_read_the_ring(tmp_path: Path) -> None:
    face = write_video(tmp_path / "face.mp4", size=(640, 360))
    desk = write_video(tmp_path / "desk.mp4", size=(1280, 720))
    config = BoothConfig(
        credential="lkb_b.s",  # type: ignore[arg-type]
        source="file",
        face_camera=CameraConfig(device=str(face)),
        document_camera=CameraConfig(device=str(desk)),
    )
    media = open_media(config, "b1")
    try:
        frame = await media.document.recv()
        assert (frame.width, frame.height) == (1280, 720)
        assert (await media.face.recv()).height == 360
        await asyncio.sleep(0.3)
        burst = await media.capture_camera.burst("ktp", 3, 1)
        assert len(burst) == 3 and burst[0].shape == (720, 1280, 3)  # full resolution, BGR
        assert media.up
    finally:
        await media.close()
