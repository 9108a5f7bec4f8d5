"""The booth's cameras and microphone: synthetic, real devices (V4L2, ALSA/PulseAudio
through aiortc's MediaPlayer and PyAV) or looped video files for rehearsals.

    device/file ─▶ Feed (read all the time; document frames into the ring) ─▶ FeedTrack
                                                                     └─▶ ShapedTrack ─▶ peer
    synthetic ────────────────────────────────────────────────────────▶ ShapedTrack ─▶ peer

A live device is read all the time, even between calls: MediaPlayer's worker queues every
frame without bound until someone reads it. The Feed keeps only what its consumers have
not taken yet (the newest video frame, 200 ms of audio), and pushes each document frame
into the capture ring at full resolution and rate, so a capture never waits for frames.
The document camera goes to the CSO as a second live track at `document_idle_fps`, and at
full rate while a capture runs (FrameRate, driven by the capture agent's statuses).
ShapedTrack applies the network degradation policy's limits (booth_client.degrade):
a rate cap and a smaller picture.

Looped files are decoded here rather than with `MediaPlayer(path, loop=True)`: after its
first loop aiortc 1.16 restarts the timestamps and stops pacing (measured: 17,000 frames
in 3.5 s from a 15 fps file), so a rehearsal would flood the encoder and the memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import os
import stat
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import av
import numpy as np
import structlog
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.capture_agent import RingCamera
from booth_client.sources.synthetic import (
    VIDEO_CLOCK,
    Pacer,
    SyntheticDeskTrack,
    SyntheticToneTrack,
    SyntheticVideoTrack,
)
from signaling.messages import CaptureStatus, Envelope

if TYPE_CHECKING:
    from booth_client.config import BoothConfig, CameraConfig, MicrophoneConfig

log = structlog.get_logger("loket.booth.media")

STALE_AFTER_S = 3.0  # a device feed with no frame for this long is down
_CAPTURING = frozenset({"capturing", "retrying"})


class MediaSourceError(Exception):
    """A camera, microphone or file could not be opened; the message says what to check."""


# --- rates and shapes ------------------------------------------------------------------------


@dataclass
class FrameRate:
    """The document track's rate: `idle`, or `full` while a capture runs, never above
    `cap` (set by the degradation policy). A capture that never reports its end (its
    task cancelled) counts as over after `capture_max_s`."""

    idle: float
    full: float
    cap: float | None = None
    capture_max_s: float = 30.0
    _captures: dict[str, float] = field(default_factory=dict)  # capture id -> last status

    def current(self) -> float:
        rate = self.full if self.capturing else self.idle
        return min(rate, self.cap) if self.cap else rate

    @property
    def capturing(self) -> bool:
        now = time.monotonic()
        return any(now - seen < self.capture_max_s for seen in self._captures.values())

    def saw(self, status: CaptureStatus) -> None:
        if status.stage in _CAPTURING:
            self._captures[status.capture_id] = time.monotonic()
        else:  # uploading, done, failed: the camera's part is over
            self._captures.pop(status.capture_id, None)


@dataclass(frozen=True, slots=True)
class HoldLayer:
    """What a camera sends until the officer focuses the booth (connecting, or on hold
    while the officer talks to another booth): the console shows such a booth as a small
    tile, so it gets a smaller, slower picture (less to decode and draw in the officer's
    browser, less upload from the branch). None: as configured."""

    max_height: int | None = 240
    fps: float | None = 7.5  # 0: nothing at all while held


class ShapedTrack(MediaStreamTrack):
    """A video track at most `rate()` (and `max_fps`) frames a second and at most
    `max_height` pixels high (aspect kept): what the degradation ladder turns. While
    `held()` (the booth is not focused), the `hold` layer's caps apply as well."""

    kind = "video"

    def __init__(
        self,
        upstream: MediaStreamTrack,
        rate: Callable[[], float | None] | None = None,
        hold: HoldLayer | None = None,
    ) -> None:
        super().__init__()
        self._upstream = upstream
        self._rate = rate
        self.max_height: int | None = None
        self.max_fps: float | None = None
        self.hold = hold or HoldLayer(None, None)
        self.held: Callable[[], bool] = lambda: False
        self._due = 0.0

    def _caps(self) -> tuple[float | None, int | None]:
        rate = _lowest(self._rate() if self._rate is not None else None, self.max_fps)
        height = self.max_height
        if self.held():
            rate = _lowest(rate, self.hold.fps)
            height = _lowest(height, self.hold.max_height)
        return rate, height

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while True:
            frame = await self._upstream.recv()
            assert isinstance(frame, av.VideoFrame)
            now = time.monotonic()
            rate, height = self._caps()
            if rate == 0:
                continue  # paused while held: read on (a camera must not back up), send none
            if not rate:
                break
            period = 1.0 / rate
            if now >= self._due - period / 4:  # a little early is on time
                self._due = self._due + period if now - self._due < period else now + period
                break
        if height and frame.height > height:
            width = max(2, round(frame.width * height / frame.height / 2) * 2)
            # Straight to the encoder's format in one fast pass: scaling the camera's
            # format and converting after (in the encoder) cost 1.1 + 0.3 ms a frame.
            scaled = frame.reformat(
                width=width, height=height, format="yuv420p", interpolation="FAST_BILINEAR"
            )
            scaled.pts, scaled.time_base = frame.pts, frame.time_base
            return scaled
        return frame

    def stop(self) -> None:
        super().stop()
        self._upstream.stop()


_Cap = TypeVar("_Cap", int, float)


def _lowest(a: _Cap | None, b: _Cap | None) -> _Cap | None:
    return b if a is None else a if b is None else min(a, b)


# --- feeds: read a device all the time, hand on what is wanted -----------------------------------


class FeedTrack(MediaStreamTrack):
    """One consumer of a Feed: the frames it has not taken yet, at most `backlog`."""

    def __init__(self, feed: Feed, kind: str, backlog: int) -> None:
        super().__init__()
        self.kind = kind
        self._feed = feed
        self._frames: deque[av.VideoFrame | av.AudioFrame] = deque(maxlen=backlog)
        self._arrived = asyncio.Event()

    def offer(self, frame: av.VideoFrame | av.AudioFrame) -> None:
        self._frames.append(frame)
        self._arrived.set()

    async def recv(self) -> av.VideoFrame | av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._feed.start()
        while not self._frames:
            if self._feed.ended:
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._feed.unsubscribe(self)
        self._arrived.set()


class Feed:
    """One source read by one task from first use until close(); every frame offered to
    each subscribed FeedTrack and pushed into `ring` (the document camera's)."""

    def __init__(self, source: MediaStreamTrack, *, ring: Any = None, name: str) -> None:
        self.source = source
        self.ring = ring  # booth_client.capture.FrameRing of av.VideoFrame (converted on use)
        self.name = name
        self.ended = False
        self.frames = 0
        self.last_frame_at: float | None = None
        self._subscribers: set[FeedTrack] = set()
        self._reader: asyncio.Task[None] | None = None

    def subscribe(self, backlog: int = 1) -> FeedTrack:
        track = FeedTrack(self, self.source.kind, backlog)
        self._subscribers.add(track)
        return track

    def unsubscribe(self, track: FeedTrack) -> None:
        self._subscribers.discard(track)

    def start(self) -> None:
        if self._reader is None and not self.ended:
            self._reader = asyncio.get_running_loop().create_task(
                self._read(), name=f"feed-{self.name}"
            )

    @property
    def up(self) -> bool:
        if self.ended:
            return False
        if self._reader is None:
            return True  # not asked for yet: nothing says it is down
        seen = self.last_frame_at or 0.0
        return time.monotonic() - seen < STALE_AFTER_S

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                assert isinstance(frame, av.VideoFrame | av.AudioFrame)
                self.frames += 1
                self.last_frame_at = time.monotonic()
                if self.ring is not None:
                    self.ring.push(frame, self.last_frame_at)
                for track in list(self._subscribers):
                    track.offer(frame)
        except MediaStreamError:
            log.error("media_source_ended", source=self.name)
        except Exception as exc:  # a broken device: health says so, the call goes on
            log.error("media_source_failed", source=self.name, error=str(exc))
        self.ended = True
        for track in list(self._subscribers):
            track._arrived.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self.source.stop()


class FeedCamera(RingCamera):
    """The document camera for captures when it is a real device or a file: the ring
    holds decoded frames as they came, converted to BGR only when a capture asks."""

    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        frames = await super().burst(kind, n, attempt)
        return await asyncio.to_thread(
            lambda: [f.to_ndarray(format="bgr24") for f in frames]  # type: ignore[attr-defined]
        )


# --- sources ---------------------------------------------------------------------------------


class LoopingFileTrack(MediaStreamTrack):
    """A video file played in a loop at its own frame rate (or `fps`), timestamps running
    on across loops. Decoding runs in a worker thread, one frame per request."""

    kind = "video"

    def __init__(self, path: str, fps: float | None = None) -> None:
        super().__init__()
        try:
            self._container = av.open(path)
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as exc:
            raise MediaSourceError(
                f"{path}: not a playable video file ({exc}); give a file PyAV can read, "
                "e.g. an .mp4 or .webm"
            ) from None
        rate = self._stream.average_rate
        self.fps = fps or (float(rate) if rate else 15.0)
        self._decoded = self._container.decode(self._stream)
        self._pacer = Pacer(1.0 / self.fps)
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._one_at_a_time = asyncio.Lock()

    def _next(self) -> av.VideoFrame:
        for _ in range(2):
            try:
                return next(self._decoded)
            except StopIteration:
                self._container.seek(0)
                self._decoded = self._container.decode(self._stream)
        raise MediaStreamError  # no frame at all

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        async with self._one_at_a_time:
            n = await self._pacer.next()
            frame = await asyncio.to_thread(self._next)
        frame.pts = round(n * VIDEO_CLOCK / self.fps)
        frame.time_base = self._time_base
        return frame

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(Exception):
            self._container.close()


DEFAULT_DEVICES = {"face_camera": "/dev/video0", "document_camera": "/dev/video2"}


def check_camera(camera: CameraConfig, which: str) -> str:
    """The device path, if a V4L2 camera is there; MediaSourceError says what to do."""
    device = camera.device or DEFAULT_DEVICES[which]
    try:
        mode = os.stat(device).st_mode
    except FileNotFoundError:
        raise MediaSourceError(
            f"no camera at {device}: check the cable or set {which}.device"
        ) from None
    except PermissionError:
        raise MediaSourceError(
            f"camera at {device} is not readable: add the kiosk's user to the 'video' group"
        ) from None
    if not stat.S_ISCHR(mode):
        raise MediaSourceError(
            f"{device} is not a camera device: set {which}.device to /dev/videoN "
            "(`v4l2-ctl --list-devices` lists them)"
        )
    return device


def _open_v4l2(camera: CameraConfig, which: str) -> MediaStreamTrack:
    from aiortc.contrib.media import MediaPlayer

    device = check_camera(camera, which)
    options = {"video_size": f"{camera.width}x{camera.height}", "framerate": f"{camera.fps:g}"}
    if camera.input_format:
        options["input_format"] = camera.input_format
    try:
        player = MediaPlayer(device, format="v4l2", options=options)
    except (av.FFmpegError, OSError) as exc:
        raise MediaSourceError(
            f"camera at {device} could not be opened ({exc}): is another program using it, "
            f"and does it support {camera.width}x{camera.height}@{camera.fps:g}? "
            f"`v4l2-ctl -d {device} --list-formats-ext` lists what it can do"
        ) from None
    assert player.video is not None
    return player.video


def _open_microphone(mic: MicrophoneConfig) -> MediaStreamTrack:
    from aiortc.contrib.media import MediaPlayer

    try:
        player = MediaPlayer(mic.device, format=mic.backend)
    except (av.FFmpegError, OSError) as exc:
        raise MediaSourceError(
            f"no microphone at {mic.backend}:{mic.device} ({exc}): check it is plugged in "
            "or set microphone.device (`arecord -L` lists ALSA devices)"
        ) from None
    if player.audio is None:
        raise MediaSourceError(f"{mic.backend}:{mic.device} has no audio stream")
    return player.audio


def _open_file(camera: CameraConfig, which: str) -> MediaStreamTrack:
    path = camera.device or ""
    if not Path(path).is_file():
        raise MediaSourceError(f"no video file at {path!r}: set {which}.device to one")
    return LoopingFileTrack(path)


# --- what the booth sends ---------------------------------------------------------------------


@dataclass
class BoothMedia:
    """The booth's outgoing tracks. `face` and `audio` are shared by the call and monitor
    links (through the client's MediaRelay); `document` goes to the call only."""

    source: str
    face: ShapedTrack
    document: ShapedTrack
    audio: MediaStreamTrack
    document_rate: FrameRate
    capture_camera: Any = None  # a DocumentCamera for captures; None: the synthetic desk
    face_still: Any = None  # the face camera's newest frame (a FeedTrack); None: synthetic
    feeds: list[Feed] = field(default_factory=list)

    @property
    def up(self) -> bool:
        """Every source is delivering (a device feed that stalls for 3 s is not)."""
        return all(feed.up for feed in self.feeds) and all(
            t.readyState == "live" for t in (self.face, self.document, self.audio)
        )

    def watch_captures(self, send: Callable[[Envelope], Awaitable[None]]) -> Callable[..., Any]:
        """`send` for the capture agent: its statuses also set the document track's rate
        (full while the camera's part of a capture runs)."""

        async def watched(message: Envelope) -> None:
            if isinstance(message, CaptureStatus):
                self.document_rate.saw(message)
            await send(message)

        return watched

    async def close(self) -> None:
        for track in (self.face, self.document, self.audio):
            track.stop()
        for feed in self.feeds:
            await feed.close()


def open_media(config: BoothConfig, label: str) -> BoothMedia:
    """Open the configured sources; MediaSourceError names what is missing and what to do."""
    from booth_client.capture import FrameRing

    doc = config.document_camera
    rate = FrameRate(idle=config.document_idle_fps, full=doc.fps)
    tone = SyntheticToneTrack(config.tone_hz, pattern=config.speak_pattern)
    hold = HoldLayer(config.hold_video_height, config.hold_video_fps)
    # While held and no capture runs, the document camera's live track pauses (the
    # officer is working another booth's papers); a capture request resumes it.
    desk_hold = HoldLayer(None, 0.0 if config.hold_document_camera else None)
    if config.source == "synthetic":
        face = config.face_camera
        # The desk is drawn at the face camera's size: a test scene, not a document; the
        # synthetic participant's captures are rendered at full resolution on request.
        desk = SyntheticDeskTrack(f"{label} document camera", face.width, face.height,
                                  rate.current)  # fmt: skip
        return BoothMedia(
            source="synthetic",
            face=ShapedTrack(
                SyntheticVideoTrack(label, face.width, face.height, face.fps), hold=hold
            ),
            document=ShapedTrack(desk, hold=desk_hold),
            audio=tone,
            document_rate=rate,
        )
    opener = _open_v4l2 if config.source == "v4l2" else _open_file
    face_feed = Feed(opener(config.face_camera, "face_camera"), name="face_camera")
    feeds = [face_feed]
    capture_camera = None
    if doc.device or config.source == "v4l2":
        ring = FrameRing()
        doc_feed = Feed(opener(doc, "document_camera"), ring=ring, name="document_camera")
        feeds.append(doc_feed)
        document = ShapedTrack(doc_feed.subscribe(), rate.current, hold=desk_hold)
        capture_camera = FeedCamera(ring)
    else:  # a rehearsal without a document file: the synthetic desk
        document = ShapedTrack(
            SyntheticDeskTrack(f"{label} document camera", 640, 360, rate.current),
            hold=desk_hold,
        )
    audio: MediaStreamTrack = tone
    if config.source == "v4l2":
        mic_feed = Feed(_open_microphone(config.microphone), name="microphone")
        feeds.append(mic_feed)
        audio = mic_feed.subscribe(backlog=10)  # 200 ms of 20 ms frames
    return BoothMedia(
        source=config.source,
        face=ShapedTrack(face_feed.subscribe(), hold=hold),
        document=document,
        audio=audio,
        document_rate=rate,
        capture_camera=capture_camera,
        face_still=face_feed.subscribe(backlog=1),  # keeps one frame: the newest
        feeds=feeds,
    )
