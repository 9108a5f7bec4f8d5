"""The recorder's worker thread: composes, encodes and seals segments on its own clock.

The event loop only hands it references: the newest picture of each side (read when a
frame is due) and every voice frame (a bounded queue; past its bound the oldest go, and
are counted). Everything that costs CPU or waits on the disk happens here: scaling and
composing, VP8 and Opus (PyAV lets go of the GIL while it encodes), the WebM muxer,
fsync and the SHA-256 of each sealed segment. So a slow disk or a busy core can make the
recording lose frames, never the call.

Segments end on multiples of `segment_s` of the recording's clock (the first after a
start or a pause ends at the next multiple). A segment the disk refuses (full: below
`min_free_bytes`, or a write error) is dropped whole and its time is a gap with the reason;
the worker says so (`WorkerEvent`) and tries again each second, so the recording resumes
by itself when space returns.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import av

from booth_client.recording.media import (
    RATE,
    Composer,
    EvidenceFormat,
    SegmentEncoder,
    VoiceMixer,
    kiosk_stamp,
)
from booth_client.recording.store import Recording, Sealed

AUDIO_LAG_S = 0.15  # a voice frame may arrive this late and still be placed in time
AUDIO_QUEUE = 500  # voice frames waiting for the worker (5 s of both voices)
RETRY_S = 1.0  # a refused disk is tried again this often


class Feeds(Protocol):
    def participant(self) -> av.VideoFrame | None:
        """The participant's newest picture, None if the camera has given none lately."""
        ...

    def officer(self) -> av.VideoFrame | None:
        """The officer's newest picture as the kiosk decoded it, None if none lately."""
        ...


@dataclass(frozen=True)
class WorkerEvent:
    kind: Literal["sealed", "paused", "resumed"]
    sealed: Sealed | None = None
    reason: str = ""  # paused: disk_full | write_failed
    detail: str = ""
    at_s: float = 0.0


class EncoderWorker:
    def __init__(
        self,
        recording: Recording,
        fmt: EvidenceFormat,
        feeds: Feeds,
        on_event: Callable[[WorkerEvent], None],
        *,
        min_free_bytes: int,
        free_bytes: Callable[[], int],
        gap: dict[str, Any] | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.recording, self.fmt, self.feeds = recording, fmt, feeds
        self._on_event = on_event
        self._min_free, self._free = min_free_bytes, free_bytes
        self._gap = gap  # what was not recorded before the next segment, and why
        self._wall, self._mono = wall, mono
        self._fault = fault or (lambda point: None)  # tests: raise OSError at a point
        self._audio: deque[tuple[int, av.AudioFrame]] = deque(maxlen=AUDIO_QUEUE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._composer = Composer(fmt)
        self._origin_mono = 0.0
        self.frames_written = 0
        self.audio_dropped = 0
        self.cpu_s = 0.0  # the thread's own CPU time so far (what recording costs, mostly)
        self.paused: str | None = None  # why nothing is being written, if so
        self.segment_s = recording.info.segment_s

    # --- from the event loop ------------------------------------------------------------

    def push_audio(self, voice: int, frame: av.AudioFrame) -> None:
        if len(self._audio) == self._audio.maxlen:
            self.audio_dropped += 1
        self._audio.append((voice, frame))

    def start(self) -> None:
        # The recording's clock: its origin on the wall clock, then the monotonic clock.
        self._origin_mono = self._mono() - (self._wall() - self.recording.info.origin)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Seal what is being written and end the thread (blocking: call from a thread)."""
        self._stop.set()
        self._thread.join(timeout)

    def now_s(self) -> float:
        return self._mono() - self._origin_mono

    # --- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        period = 1.0 / self.fmt.fps
        segment: _Segment | None = None
        mixer: VoiceMixer | None = None
        next_try = 0.0
        due = self._mono()
        began_cpu = time.thread_time()
        while True:
            self.cpu_s = time.thread_time() - began_cpu
            stopping = self._stop.wait(max(0.0, due - self._mono()))
            now_mono = self._mono()
            due = max(due + period, now_mono - period)  # late: skip frames, never pile up
            t = now_mono - self._origin_mono
            voices = self._drain()
            if stopping:
                if segment is not None and mixer is not None:
                    self._finish(segment, mixer, voices, t)
                return
            if segment is None:
                if now_mono < next_try:
                    continue
                segment = self._open(t)
                if segment is None:
                    next_try = now_mono + RETRY_S
                    continue
                mixer = VoiceMixer(start_sample=round(t * RATE))
            assert mixer is not None
            try:
                if t >= segment.ends_at:
                    self._seal(segment, t)
                    segment = self._open(t)
                    if segment is None:
                        next_try = now_mono + RETRY_S
                        continue
                self._write(segment, mixer, voices, t)
            except Exception as exc:  # the disk or the encoder refused: a gap, then retry
                self._failed(segment, exc)
                segment, next_try = None, now_mono + RETRY_S

    def _drain(self) -> list[tuple[int, av.AudioFrame]]:
        out = []
        while self._audio:
            out.append(self._audio.popleft())
        return out

    def _open(self, t: float) -> _Segment | None:
        reason, detail = None, ""
        try:
            free = self._free()
            if free < self._min_free:
                reason = "disk_full"
                detail = (f"{free // 2**20} MB free on the kiosk's disk, "
                          f"{self._min_free // 2**20} MB needed")  # fmt: skip
            else:
                seq = self.recording.next_seq()
                self._fault("open")
                encoder = SegmentEncoder(self.recording.part(seq), self.fmt)
        except Exception as exc:
            reason, detail = _why(exc), f"{type(exc).__name__}: {exc}"[:200]
        if reason is not None:
            self._pause(reason, detail, t)
            return None
        ends_at = (math.floor(t / self.segment_s + 1e-9) + 1) * self.segment_s
        gap, self._gap = self._gap, None
        if gap is not None:
            gap = {**gap, "end_s": round(t, 3)}
        if self.paused is not None:
            self.paused = None
            self._tell(WorkerEvent("resumed", at_s=t))
        return _Segment(seq, encoder, t, ends_at, gap)

    def _write(
        self, segment: _Segment, mixer: VoiceMixer, voices: list[tuple[int, Any]], t: float
    ) -> None:
        for voice, frame in voices:
            mixer.push(voice, frame)
        for frame in mixer.pull(round((t - AUDIO_LAG_S) * RATE)):
            segment.encoder.audio(frame)
        self._fault("write")
        sides = (self.feeds.participant(), self.feeds.officer())
        picture = self._composer.compose(sides, kiosk_stamp(self.recording.info.origin + t))
        segment.encoder.video(picture, t)
        segment.frames += 1
        segment.last_t = t
        self.frames_written += 1

    def _seal(self, segment: _Segment, t: float) -> None:
        segment.encoder.close()
        self._fault("seal")
        sealed = self.recording.seal(segment.seq, segment.start, t, segment.frames, segment.gap)
        self._tell(WorkerEvent("sealed", sealed=sealed, at_s=t))

    def _finish(
        self, segment: _Segment, mixer: VoiceMixer, voices: list[tuple[int, Any]], t: float
    ) -> None:
        """Stopping: what was written so far is sealed (nothing of it is lost)."""
        try:
            for voice, frame in voices:
                mixer.push(voice, frame)
            for frame in mixer.pull(round(t * RATE)):
                segment.encoder.audio(frame)
            if segment.frames == 0:
                segment.encoder.abandon()
                self.recording.part(segment.seq).unlink(missing_ok=True)
                if segment.gap is not None:
                    self._gap = segment.gap  # still owed: it goes with the next segment
                return
            self._seal(segment, max(t, segment.last_t + 1.0 / self.fmt.fps))
        except Exception as exc:
            self._failed(segment, exc)

    def _failed(self, segment: _Segment | None, exc: Exception) -> None:
        start = segment.start if segment is not None else self.now_s()
        if segment is not None:
            segment.encoder.abandon()
            with contextlib.suppress(OSError):
                self.recording.part(segment.seq).unlink(missing_ok=True)
            if segment.gap is not None:  # the gap before it is still a gap, and longer
                start = float(segment.gap["start_s"])
        self._pause(_why(exc), f"{type(exc).__name__}: {exc}"[:200], start)

    def _pause(self, reason: str, detail: str, start: float) -> None:
        if self._gap is None:
            self._gap = {"start_s": round(start, 3), "reason": reason, "detail": detail}
        if self.paused != reason:
            self.paused = reason
            self._tell(WorkerEvent("paused", reason=reason, detail=detail, at_s=start))

    def _tell(self, event: WorkerEvent) -> None:
        with contextlib.suppress(Exception):  # the loop is closing: nobody to tell
            self._on_event(event)


@dataclass
class _Segment:
    seq: int
    encoder: SegmentEncoder
    start: float
    ends_at: float
    gap: dict[str, Any] | None
    frames: int = 0
    last_t: float = 0.0


def _why(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    return "disk_full" if errno in (28, 122) else "write_failed"
