"""Where the CSO's voice and picture go at the booth: audio and video sinks.

The peer connection hands every decoded frame of the officer's tracks to a sink
(`booth_client.peer`). Sinks are small objects with `write(frame)` and `close()`:

- `AlsaAudioSink` plays on the kiosk's speaker through PyAV's ALSA output (already a
  dependency: no PortAudio needed). Writing to a sound card blocks in real time, so a
  thread does it; the event loop only queues frames (and drops the oldest when the card
  falls behind, as a live call should).
- `NullAudioSink` when there is no sound device (logged once at start).
- `MeasuringAudioSink` records the RMS energy of every frame with its arrival time
  (`time.monotonic()`, which is system-wide on Linux, so another process can compare),
  and can append each as a JSON line to a file: tests read it to see which booth hears
  the officer, and from when.
- `LatestFrameSink` keeps the newest video frame and a count, for the kiosk screen.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import av
import numpy as np
import structlog

log = structlog.get_logger("loket.booth.audio")

OUTPUT_RATE = 48_000


class AudioSink(Protocol):
    def write(self, frame: av.AudioFrame) -> None: ...

    def close(self) -> None: ...


class VideoSink(Protocol):
    def write(self, frame: av.VideoFrame) -> None: ...

    def close(self) -> None: ...


def frame_rms(frame: av.AudioFrame) -> float:
    """Root-mean-square level of a frame, 0.0 (silence) to 1.0 (full scale)."""
    samples = frame.to_ndarray()
    if samples.size == 0:
        return 0.0
    if samples.dtype.kind == "i":
        scale = float(2 ** (8 * samples.dtype.itemsize - 1))  # s16: 32768
        values = samples.astype(np.float32) / scale
    else:
        values = samples.astype(np.float32)
    return float(math.sqrt(float(np.mean(values * values))))


class NullAudioSink:
    """Drops the audio: a kiosk without a sound device still takes calls."""

    frames = 0

    def write(self, frame: av.AudioFrame) -> None:
        self.frames += 1

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Level:
    at: float  # time.monotonic() when the frame arrived
    rms: float


class MeasuringAudioSink:
    """Records the level of every frame heard. `path`: also append `{"t", "rms"}` lines."""

    def __init__(self, path: Path | None = None, keep: int = 30_000) -> None:
        self.levels: list[Level] = []
        self._keep = keep
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8", buffering=1)  # line-buffered

    def write(self, frame: av.AudioFrame) -> None:
        level = Level(time.monotonic(), frame_rms(frame))
        self.levels.append(level)
        if len(self.levels) > self._keep:
            del self.levels[: self._keep // 2]
        if self._file is not None:
            self._file.write(json.dumps({"t": round(level.at, 4), "rms": round(level.rms, 5)}))
            self._file.write("\n")

    def energy(self, since: float, until: float | None = None) -> float:
        """Mean RMS of the frames heard in [since, until) (0.0 when none arrived)."""
        end = math.inf if until is None else until
        picked = [lv.rms for lv in self.levels if since <= lv.at < end]
        return sum(picked) / len(picked) if picked else 0.0

    def first_voiced(self, since: float, threshold: float = 0.01) -> float | None:
        """When the first frame louder than `threshold` arrived at or after `since`."""
        for level in self.levels:
            if level.at >= since and level.rms > threshold:
                return level.at
        return None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


class AlsaAudioSink:
    """Plays on an ALSA device (PulseAudio and PipeWire provide one too) via PyAV.

    Construct with `open()`, which fails fast (OSError) when there is no such device.
    """

    def __init__(self, container: av.container.OutputContainer, max_queue: int = 25) -> None:
        self._container = container
        self._stream = container.streams.audio[0]
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OUTPUT_RATE)
        self._queue: queue.Queue[av.AudioFrame | None] = queue.Queue(maxsize=max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._play, name="alsa-sink", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, device: str = "default") -> AlsaAudioSink:
        container = av.open(device, "w", format="alsa")
        try:
            stream = container.add_stream("pcm_s16le", rate=OUTPUT_RATE, layout="stereo")
            # One short silent frame: ALSA opens the card here, so a missing one fails now.
            silence = av.AudioFrame.from_ndarray(
                np.zeros((1, 2 * 480), dtype=np.int16), format="s16", layout="stereo"
            )
            silence.sample_rate = OUTPUT_RATE
            for packet in stream.encode(silence):
                container.mux(packet)
        except Exception:
            with contextlib.suppress(Exception):
                container.close()
            raise
        return cls(container)

    def write(self, frame: av.AudioFrame) -> None:
        try:
            self._queue.put_nowait(frame)
        except queue.Full:  # the card is behind: drop the oldest, keep the call live
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(frame)

    def _play(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                frame.pts = None
                for out in self._resampler.resample(frame):
                    for packet in self._stream.encode(out):
                        self._container.mux(packet)
            except Exception as exc:  # the device went away: stop playing, keep the call
                log.warning("speaker_failed", error=str(exc))
                return

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self._container.close()


def open_audio_sink(kind: str, log_path: Path | None = None, device: str = "default") -> AudioSink:
    """The booth's speaker. kind: "auto" (the sound card, else nothing, logged), "null",
    "measure" (levels only, to `log_path` if given; for tests and diagnostics)."""
    if kind == "measure":
        return MeasuringAudioSink(log_path)
    if kind == "null":
        return NullAudioSink()
    try:
        sink = AlsaAudioSink.open(device)
    except Exception as exc:
        log.warning(
            "no_sound_device",
            device=device,
            error=str(exc) or type(exc).__name__,
            note="the officer's voice will not be played at this booth; check the speaker "
            "and ALSA/PulseAudio (or pass --audio-sink null to silence this warning)",
        )
        return NullAudioSink()
    log.info("speaker_open", device=device)
    return sink


class LatestFrameSink:
    """Keeps the officer's newest video frame for the kiosk screen, and counts frames."""

    def __init__(self) -> None:
        self.frames = 0
        self.latest: av.VideoFrame | None = None
        self.last_at: float | None = None

    def write(self, frame: av.VideoFrame) -> None:
        self.frames += 1
        self.latest = frame
        self.last_at = time.monotonic()

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.latest.width, self.latest.height) if self.latest is not None else None

    def close(self) -> None:
        self.latest = None
