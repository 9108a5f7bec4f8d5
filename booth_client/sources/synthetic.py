"""A synthetic booth: a moving test scene with the booth's name and a clock, and a tone.

The scene is what the booth's camera sends: the CSO always sees the participant, whether
the officer is talking to this booth or not (the hold screen is shown on the kiosk, never
painted into the outgoing video). The tone is the participant's voice; a speak pattern
makes it talk in bursts (`SpeakPattern`), for voice-activity tests and demos.

Honest about time: frames are paced on the wall clock at the configured rate and carry
RTP-style timestamps (90 kHz video, 48 kHz audio), so a receiver sees what a camera
would give it. The static part of the scene is drawn once; each frame only adds the
moving bar and the text, which keeps six booths cheap on two cores.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import av
import cv2
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020  # 20 ms, the usual Opus frame


@dataclass(frozen=True, slots=True)
class SpeakPattern:
    """When the synthetic participant speaks: `on` seconds of voice, then `off` seconds of
    silence, repeating, after an initial `delay` of silence. Parse from text with `parse`:
    "always" (the default: a steady tone), "silent", or "ON/OFF[@DELAY]" in seconds,
    e.g. "1.5/4" or "2/6@10"."""

    on: float
    off: float = 0.0
    delay: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SpeakPattern:
        text = text.strip().lower()
        if text == "always":
            return cls(on=math.inf)
        if text == "silent":
            return cls(on=0.0, off=math.inf)
        try:
            burst, _, delay = text.partition("@")
            on, _, off = burst.partition("/")
            pattern = cls(float(on), float(off or 0), float(delay or 0))
        except ValueError:
            raise ValueError(
                f"speak pattern {text!r}: use always, silent or ON/OFF[@DELAY] in seconds"
            ) from None
        if min(pattern.on, pattern.off, pattern.delay) < 0 or pattern.on + pattern.off <= 0:
            raise ValueError(f"speak pattern {text!r}: durations are positive seconds")
        return pattern

    def speaking(self, t: float) -> bool:
        """Whether the participant speaks `t` seconds after the track started."""
        if t < self.delay:
            return False
        if math.isinf(self.on):
            return True
        if math.isinf(self.off):
            return (t - self.delay) < self.on
        return (t - self.delay) % (self.on + self.off) < self.on


class Pacer:
    """Sleeps until frame n is due at start + n * period (no drift from slow frames)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.start: float | None = None
        self.count = 0

    async def next(self) -> int:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.count += 1
            delay = self.start + self.count * self.period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self.count


class SyntheticVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, label: str, width: int = 640, height: int = 480, fps: float = 15) -> None:
        super().__init__()
        self.label = label
        self.width, self.height, self.fps = width, height, fps
        self._pacer = Pacer(1.0 / fps)
        self._time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._background = self._draw_background()

    def _draw_background(self) -> np.ndarray:
        x = np.linspace(0, 255, self.width, dtype=np.float32)
        y = np.linspace(0, 255, self.height, dtype=np.float32)[:, None]
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[..., 0] = (x * 0.6 + y * 0.2).astype(np.uint8)
        img[..., 1] = (y * 0.5 + 40).astype(np.uint8)
        img[..., 2] = (255 - x * 0.5).astype(np.uint8)
        cv2.putText(img, self.label, (24, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3)
        return img

    def render(self, n: int) -> np.ndarray:
        img = self._background.copy()
        bar = int((n * 8) % self.width)
        img[:, bar : bar + 24] = (20, 220, 240)
        clock = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(img, clock, (24, self.height - 60), font, 1.4, (255, 255, 255), 3)
        cv2.putText(img, f"frame {n}", (24, self.height - 20), font, 0.8, (230, 230, 230), 2)
        return img

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pacer.next()
        frame = av.VideoFrame.from_ndarray(self.render(n), format="bgr24")
        frame.pts = round(n * VIDEO_CLOCK / self.fps)
        frame.time_base = self._time_base
        return frame


class SyntheticToneTrack(MediaStreamTrack):
    """A quiet sine tone, mono s16 at 48 kHz in 20 ms frames, voiced per `pattern`
    (silence in between: digital zeros, as a gated microphone sends)."""

    kind = "audio"

    def __init__(
        self,
        frequency: float = 440.0,
        amplitude: float = 0.2,
        pattern: SpeakPattern | str = "always",
    ) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.pattern = SpeakPattern.parse(pattern) if isinstance(pattern, str) else pattern
        self.samples = int(AUDIO_RATE * AUDIO_PTIME)
        self._pacer = Pacer(AUDIO_PTIME)
        self._time_base = fractions.Fraction(1, AUDIO_RATE)

    def samples_for(self, n: int) -> np.ndarray:
        if not self.pattern.speaking(n * AUDIO_PTIME):
            return np.zeros(self.samples, dtype=np.int16)
        t = (np.arange(self.samples) + n * self.samples) / AUDIO_RATE
        wave = self.amplitude * np.sin(2 * math.pi * self.frequency * t)
        return (wave * 32767).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pacer.next()
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(self.samples_for(n).tobytes())
        frame.sample_rate = AUDIO_RATE
        frame.pts = n * self.samples
        frame.time_base = self._time_base
        return frame


class SyntheticDeskTrack(SyntheticVideoTrack):
    """The document camera's view of the desk, sent at whatever `rate()` says now (idle,
    capturing, degraded: booth_client.sources.media.FrameRate). Frames are drawn only when
    sent and stamped from the wall clock, so a rate change never bends time."""

    def __init__(self, label: str, width: int, height: int, rate: Callable[[], float]) -> None:
        super().__init__(label, width, height, fps=rate())
        self._rate = rate
        self._start: float | None = None
        self._due = 0.0
        self._count = 0

    def _draw_background(self) -> np.ndarray:
        img = np.empty((self.height, self.width, 3), dtype=np.uint8)
        img[:] = (58, 84, 112)  # a brown desk mat (BGR)
        scale = max(0.5, self.width / 800)
        cv2.putText(img, self.label, (24, int(48 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (235, 235, 235), 2)  # fmt: skip
        return img

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = self._due = now
        elif self._due > now:
            await asyncio.sleep(self._due - now)
        # Late (a busy loop) or early: the next frame is one period after this one.
        self._due = max(self._due, time.monotonic() - 0.1) + 1.0 / self._rate()
        n, self._count = self._count, self._count + 1
        frame = av.VideoFrame.from_ndarray(self.render(n), format="bgr24")
        frame.pts = round((time.monotonic() - self._start) * VIDEO_CLOCK)
        frame.time_base = self._time_base
        return frame
