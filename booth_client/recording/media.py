"""The evidence rendition: both faces side by side, both voices on two channels, in WebM.

The call's own streams are for the conversation (1280x720 faces, mono speech both ways);
the recording is for an auditor who must later see who was there and hear what was said,
so it is a small, fixed rendition the kiosk can afford beside a focused call:

- **picture**: the participant's camera on the left, the officer's (as the kiosk decoded
  it) on the right, each fitted into a `cell_width` x `cell_height` cell (aspect kept,
  letterboxed), at `fps`, with a caption over each and the kiosk's clock burned in below;
  a side with no fresh frame (the officer talking to another booth, a camera that
  stopped) says so instead of freezing its last picture;
- **sound**: stereo Opus, the participant's microphone on the left channel and the
  officer's voice as the kiosk heard it on the right (a player may mix them for the ear;
  a meter per channel says who spoke when).

`Composer` and `VoiceMixer` are plain numpy over PyAV frames; `SegmentEncoder` writes one
WebM file (VP8 + Opus) whose timestamps are the recording's own clock (seconds since the
recording began), so segment after segment appended to one Media Source plays as one
recording, with a hole where nothing was recorded. Everything here runs in the
recorder's worker thread (booth_client.recording.worker), never on the event loop.
"""

from __future__ import annotations

import contextlib
import fractions
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

RATE = 48_000
OPUS_FRAME = 960  # 20 ms at 48 kHz: what libopus takes at a time
MS = fractions.Fraction(1, 1000)
SAMPLE = fractions.Fraction(1, RATE)
BLACK_Y, GREY_Y, NEUTRAL_UV = 16, 40, 128


@dataclass(frozen=True, slots=True)
class EvidenceFormat:
    """What the recording is made of (the manifest states it)."""

    cell_width: int = 320
    cell_height: int = 240
    fps: float = 5.0
    video_bps: int = 120_000
    audio_bps: int = 48_000

    @property
    def width(self) -> int:
        return 2 * self.cell_width

    @property
    def height(self) -> int:
        return self.cell_height

    def describe(self) -> dict[str, object]:
        return {
            "container": "webm",
            "video": {
                "codec": "vp8",
                "width": self.width,
                "height": self.height,
                "fps": self.fps,
                "bitrate": self.video_bps,
                "layout": "participant left, officer right",
            },
            "audio": {
                "codec": "opus",
                "channels": 2,
                "sample_rate": RATE,
                "bitrate": self.audio_bps,
                "layout": "left: participant's microphone, right: officer's voice",
            },
        }


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V of a yuv420p frame as (h, w), (h/2, w/2), (h/2, w/2) arrays."""
    packed = frame.to_ndarray()
    h, w = frame.height, frame.width
    y = packed[:h]
    chroma = packed[h:].reshape(2, h // 2, w // 2)
    return y, chroma[0], chroma[1]


def fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest even size with the frame's aspect that fits the box."""
    scale = min(box_w / width, box_h / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class Composer:
    """Two faces into one yuv420p picture (see the module's docstring). One per worker:
    each side has its own swscale context (a shared frame's cached one belongs to the
    call's encoder thread: two threads on one context crash)."""

    CAPTIONS = ("participant", "officer")

    def __init__(self, fmt: EvidenceFormat) -> None:
        self.fmt = fmt
        self._scalers = (VideoReformatter(), VideoReformatter())
        h, w = fmt.height, fmt.width
        self._y = np.full((h, w), BLACK_Y, dtype=np.uint8)
        self._u = np.full((h // 2, w // 2), NEUTRAL_UV, dtype=np.uint8)
        self._v = np.full((h // 2, w // 2), NEUTRAL_UV, dtype=np.uint8)

    def compose(
        self, sides: tuple[av.VideoFrame | None, av.VideoFrame | None], stamp: str
    ) -> av.VideoFrame:
        fmt = self.fmt
        cw, ch = fmt.cell_width, fmt.cell_height
        y, u, v = self._y, self._u, self._v
        for index, frame in enumerate(sides):
            x0 = index * cw
            y[:, x0 : x0 + cw] = BLACK_Y
            u[:, x0 // 2 : (x0 + cw) // 2] = NEUTRAL_UV
            v[:, x0 // 2 : (x0 + cw) // 2] = NEUTRAL_UV
            if frame is None:
                y[:, x0 : x0 + cw] = GREY_Y
                self._text(f"no {self.CAPTIONS[index]} picture", x0 + 12, ch // 2, 0.45)
            else:
                fw, fh = fit(frame.width, frame.height, cw, ch)
                scaled = self._scalers[index].reformat(frame, format="yuv420p", width=fw, height=fh)
                sy, su, sv = _planes(scaled)
                ox, oy = x0 + (cw - fw) // 2 // 2 * 2, (ch - fh) // 2 // 2 * 2
                y[oy : oy + fh, ox : ox + fw] = sy
                u[oy // 2 : (oy + fh) // 2, ox // 2 : (ox + fw) // 2] = su
                v[oy // 2 : (oy + fh) // 2, ox // 2 : (ox + fw) // 2] = sv
            self._text(self.CAPTIONS[index], x0 + 6, 16, 0.45)
        self._text(stamp, 6, ch - 8, 0.45)
        packed = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(-1, fmt.width)
        return av.VideoFrame.from_ndarray(packed, format="yuv420p")

    def _text(self, text: str, x: int, y_pos: int, scale: float) -> None:
        # White on the luma plane with a dark outline: readable over any face.
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(self._y, text, (x, y_pos), font, scale, BLACK_Y, 3, cv2.LINE_AA)
        cv2.putText(self._y, text, (x, y_pos), font, scale, 235, 1, cv2.LINE_AA)


def kiosk_stamp(wall: float) -> str:
    """The kiosk's clock as burned into the picture: local date and time with its offset."""
    local = time.localtime(wall)
    offset = local.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    zone = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    return time.strftime("%Y-%m-%d %H:%M:%S", local) + f".{int(wall * 10) % 10} {zone}"


class _Fifo:
    """Mono s16 samples waiting to be mixed, oldest first."""

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.size = 0

    def push(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append(samples)
            self.size += samples.size

    def drop(self, count: int) -> None:
        while count > 0 and self._chunks:
            head = self._chunks[0]
            if head.size <= count:
                self._chunks.popleft()
                count -= head.size
                self.size -= head.size
            else:
                self._chunks[0] = head[count:]
                self.size -= count
                count = 0

    def take(self, count: int) -> np.ndarray:
        """`count` samples, the missing end as silence (a voice that is late or absent)."""
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and self._chunks:
            head = self._chunks[0]
            n = min(head.size, count - filled)
            out[filled : filled + n] = head[:n]
            filled += n
            if n == head.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = head[n:]
            self.size -= n
        return out


class VoiceMixer:
    """Two voices (0: participant, 1: officer) into stereo frames on the recording's clock.

    Each voice's frames are resampled to mono 48 kHz as they come and wait in a FIFO;
    `pull(until)` emits whole 20 ms stereo frames up to sample `until` of the recording,
    a voice that has nothing (on hold, a late packet) as silence. A FIFO holding more than
    `max_lag_s` beyond what is due drops its oldest samples: a voice is never carried
    ever later than it was heard."""

    def __init__(self, start_sample: int = 0, max_lag_s: float = 0.3) -> None:
        self.position = start_sample - start_sample % OPUS_FRAME
        self._fifos = (_Fifo(), _Fifo())
        self._resamplers = (
            av.AudioResampler(format="s16", layout="mono", rate=RATE),
            av.AudioResampler(format="s16", layout="mono", rate=RATE),
        )
        self._max_lag = int(max_lag_s * RATE)
        self.dropped_samples = 0

    def push(self, voice: int, frame: av.AudioFrame) -> None:
        # A copy, resampled as a plain stream (no pts: their clocks are not ours); the
        # call's own encoder reads the very frame in its thread, so it is never touched.
        plain = av.AudioFrame.from_ndarray(
            frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name
        )
        plain.sample_rate = frame.sample_rate
        for out in self._resamplers[voice].resample(plain):
            self._fifos[voice].push(out.to_ndarray().reshape(-1).astype(np.int16, copy=False))

    def pull(self, until: int) -> list[av.AudioFrame]:
        frames = []
        while self.position + OPUS_FRAME <= until:
            left = self._fifos[0].take(OPUS_FRAME)
            right = self._fifos[1].take(OPUS_FRAME)
            stereo = np.empty(2 * OPUS_FRAME, dtype=np.int16)
            stereo[0::2], stereo[1::2] = left, right
            frame = av.AudioFrame.from_ndarray(stereo.reshape(1, -1), format="s16", layout="stereo")
            frame.sample_rate = RATE
            frame.pts, frame.time_base = self.position, SAMPLE
            frames.append(frame)
            self.position += OPUS_FRAME
        for fifo in self._fifos:
            excess = fifo.size - self._max_lag
            if excess > 0:
                fifo.drop(excess)
                self.dropped_samples += excess
        return frames


class SegmentEncoder:
    """One WebM segment being written: VP8 at the format's bitrate (realtime, each segment
    starting with a keyframe: it plays on its own) and stereo Opus, timestamped on the
    recording's clock. Raises OSError (or av.FFmpegError) when the file cannot be written;
    the caller marks the segment's time as a gap."""

    def __init__(self, path: Path, fmt: EvidenceFormat) -> None:
        self.path = path
        self._out = av.open(str(path), "w", format="webm")
        try:
            rate = fractions.Fraction(fmt.fps).limit_denominator(1000)
            video = self._out.add_stream("libvpx", rate=rate)
            video.width, video.height, video.pix_fmt = fmt.width, fmt.height, "yuv420p"
            video.bit_rate = fmt.video_bps
            video.codec_context.time_base = MS
            # One thread: at this size libvpx's own threads cost more than they save
            # (measured: up to 6x the CPU time with FFmpeg's default of one per core).
            video.codec_context.thread_count = 1
            video.options = {
                "threads": "1",
                "deadline": "realtime",
                "cpu-used": "8",
                "lag-in-frames": "0",
                "error-resilient": "1",
                "auto-alt-ref": "0",
            }
            audio = self._out.add_stream("libopus", rate=RATE, layout="stereo")
            audio.bit_rate = fmt.audio_bps
            audio.codec_context.time_base = SAMPLE
            self._video, self._audio = video, audio
        except BaseException:
            self._out.close()
            raise
        self._last_ms: int | None = None
        self._first_audio: int | None = None
        self._padding: int | None = None
        self.frames = 0

    def video(self, frame: av.VideoFrame, at_s: float) -> None:
        ms = round(at_s * 1000)
        if self._last_ms is not None and ms <= self._last_ms:
            return  # the clock did not move on: one picture per timestamp
        self._last_ms = ms
        frame.pts, frame.time_base = ms, MS
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def audio(self, frame: av.AudioFrame) -> None:
        if self._first_audio is None:
            self._first_audio = int(frame.pts or 0)
        for packet in self._audio.encode(frame):
            self._mux_audio(packet)

    def _mux_audio(self, packet: av.Packet) -> None:
        # libopus stamps its packets `initial_padding` samples before the samples they
        # carry; the muxer would then shift every audio block after a negative first one,
        # behind the video blocks it had already ordered them with, and Chromium's WebM
        # parser refuses a cluster whose blocks go back in time. Stamped on our clock, the
        # blocks stay in order.
        if packet.pts is None:
            return
        if self._padding is None:
            self._padding = max(0, (self._first_audio or 0) - int(packet.pts))
        packet.pts += self._padding
        if packet.dts is not None:
            packet.dts += self._padding
        self._out.mux(packet)

    def close(self) -> None:
        """Flush both encoders and write the file's index; the file is complete after."""
        try:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            for packet in self._audio.encode(None):
                self._mux_audio(packet)
        finally:
            self._out.close()

    def abandon(self) -> None:
        with contextlib.suppress(Exception):  # the file is discarded anyway
            self._out.close()
