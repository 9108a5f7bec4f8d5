"""The kiosk's recorder: taps the call's media, runs a session's encoder worker, marks its
timeline, and tells the officer whether the session is being recorded.

What it records is what the kiosk itself has: the participant's camera and microphone
(one more consumer of the relay the call and the monitors read) and the officer's voice
and picture as the kiosk decoded them (the speaker's sink, the screen's latest frame).
Taps hold references only; the worker thread does all the work on its own clock
(booth_client.recording.worker), so the call never waits for the recording.

A session's recording begins when its media first comes up and ends with the session.
Media going down and up again (the console reloading, the officer's end reconnecting)
does not stop it: the officer's side says "no officer picture" meanwhile and the
timeline is marked. A kiosk restarted mid-session finds its recording on disk and goes on
with it (the same recording, the missing time a `kiosk_restart` gap). A recording whose
session ended while the kiosk was away is closed (`reconcile`) with the time after its
last sealed segment marked as a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import structlog
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.recording.config import RecordingConfig
from booth_client.recording.consent import Consent
from booth_client.recording.store import Recording, RecordingInfo, RecordingStore
from booth_client.recording.worker import EncoderWorker, WorkerEvent
from booth_client.relay import FrameRelay

log = structlog.get_logger("loket.booth.recording")

FRESH_S = 1.0  # a side's picture older than this is shown as absent, not frozen

# (session id, state, reason): a `recording_status` to the officer
SendStatus = Callable[[str, str, str | None], Awaitable[None]]


class VoiceTap:
    """The officer's voice on its way to the speaker, copied to the recorder."""

    def __init__(self, inner: Any, recorder: KioskRecorder) -> None:
        self.inner, self._recorder = inner, recorder

    def write(self, frame: av.AudioFrame) -> None:
        self._recorder.officer_voice(frame)
        self.inner.write(frame)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> object:  # energy(), levels ... of the inner sink
        return getattr(self.inner, name)


class _Feeds:
    """The newest picture of each side, for the worker (see worker.Feeds)."""

    def __init__(self, officer_sink: Any) -> None:
        self._officer = officer_sink
        self.face: av.VideoFrame | None = None
        self.face_at = 0.0

    def participant(self) -> av.VideoFrame | None:
        return self.face if time.monotonic() - self.face_at < FRESH_S else None

    def officer(self) -> av.VideoFrame | None:
        at = getattr(self._officer, "last_at", None)
        if at is None or time.monotonic() - at >= FRESH_S:
            return None
        frame: av.VideoFrame | None = self._officer.latest
        return frame


@dataclass
class _Active:
    session_id: str
    recording: Recording
    worker: EncoderWorker
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tracks: list[MediaStreamTrack] = field(default_factory=list)


class KioskRecorder:
    def __init__(
        self,
        config: RecordingConfig,
        store: RecordingStore,
        relay: FrameRelay,
        tracks: Callable[[], tuple[MediaStreamTrack | None, MediaStreamTrack | None]],
        officer_picture: Any,
        send_status: SendStatus,
        sealed: Callable[[], None],
    ) -> None:
        self.config, self.store = config, store
        self._relay, self._tracks = relay, tracks
        self._officer_picture = officer_picture
        self._send_status, self._sealed = send_status, sealed
        self.writer = uuid.uuid4().hex  # this process (another one's recording: a restart)
        self.active: _Active | None = None
        self.consent: Consent | None = None  # of the participant at the kiosk now
        self.status: str = "off"
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()
        # the kiosk could not record (disk, write): told to the server (set by the kiosk)
        self.alert: Callable[[Recording, str, str], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def tap(self, sink: Any) -> Any:
        """The sink the call writes the officer's voice to, copied to the recorder."""
        return sink if isinstance(sink, VoiceTap) else VoiceTap(sink, self)

    def officer_voice(self, frame: av.AudioFrame) -> None:
        active = self.active
        if active is not None:
            active.worker.push_audio(1, frame)

    # --- a session --------------------------------------------------------------------

    async def start(self, session_id: str, claim_id: str, *, resume: bool = False) -> None:
        """The session's media is up: record it (a new recording, or the one on disk;
        `resume`: only the one on disk, consented to before the kiosk restarted)."""
        consent = self.consent
        if not self.enabled or not (resume or (consent is not None and consent.given)):
            return
        async with self._lock:
            active = self.active
            if active is not None and active.session_id == session_id:
                await self._send(session_id, "recording" if active.worker.paused is None
                                 else "paused", active.worker.paused)  # fmt: skip
                return
            if active is not None:
                await self._end(active, "session_changed")
            recording = await asyncio.to_thread(self.store.find, session_id)
            gap: dict[str, Any] | None = None
            kind = "recording_started"
            if recording is not None and recording.closing() is None:
                last = recording.last_end() or 0.0
                gap = {"start_s": round(last, 3), "reason": "kiosk_restart",
                       "detail": "the kiosk restarted mid-session"}  # fmt: skip
                await asyncio.to_thread(recording.update, writer=self.writer)
                kind = "recording_resumed"
            elif consent is None or not consent.given:
                return  # (resuming, and none on disk: never consented to here)
            else:
                fmt = self.config.evidence_format()
                info = RecordingInfo(
                    session_id=session_id, claim_id=claim_id, origin=time.time(),
                    consent=consent.body(), media=fmt.describe(),
                    segment_s=self.config.segment_s, writer=self.writer,
                )  # fmt: skip
                recording = await asyncio.to_thread(self.store.open, info)
            self.active = self._run(session_id, recording, gap)
            self._mark(kind)
            self._sealed()  # the uploader opens it on the server now
            log.info("recording_started", session_id=session_id, resumed=gap is not None)
            await self._send(session_id, "recording", None)

    def _run(self, session_id: str, recording: Recording, gap: dict[str, Any] | None) -> _Active:
        loop = asyncio.get_running_loop()
        feeds = _Feeds(self._officer_picture)

        def on_event(event: WorkerEvent) -> None:  # the worker thread
            loop.call_soon_threadsafe(self._worker_event, session_id, event)

        worker = EncoderWorker(
            recording, self.config.evidence_format(), feeds, on_event,
            min_free_bytes=self.config.min_free_bytes, free_bytes=self.store.free_bytes,
            gap=gap,
        )  # fmt: skip
        active = _Active(session_id, recording, worker)
        face, voice = self._tracks()
        if face is not None:
            track = self._relay.subscribe(face, buffered=False)
            active.tracks.append(track)
            active.tasks.append(loop.create_task(self._read_face(track, feeds), name="rec-face"))
        if voice is not None:
            track = self._relay.subscribe(voice)
            active.tracks.append(track)
            active.tasks.append(loop.create_task(self._read_voice(track, worker), name="rec-voice"))
        worker.start()
        return active

    @staticmethod
    async def _read_face(track: MediaStreamTrack, feeds: _Feeds) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                feeds.face, feeds.face_at = frame, time.monotonic()  # type: ignore[assignment]

    @staticmethod
    async def _read_voice(track: MediaStreamTrack, worker: EncoderWorker) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                worker.push_audio(0, await track.recv())  # type: ignore[arg-type]

    def _worker_event(self, session_id: str, event: WorkerEvent) -> None:
        active = self.active
        if active is None or active.session_id != session_id:
            if event.kind == "paused":  # while stopping: the last segment was not sealed
                log.error("recording_failed_at_end", session_id=session_id,
                          reason=event.reason, detail=event.detail)  # fmt: skip
            return
        match event.kind:
            case "sealed":
                self._sealed()
            case "paused":
                log.error("recording_paused", session_id=session_id, reason=event.reason,
                          detail=event.detail)  # fmt: skip
                self._mark("recording_paused", event.reason)
                self._spawn(self._send(session_id, "paused", event.reason))
                self._alert(active.recording, event.reason, event.detail)
            case "resumed":
                log.info("recording_resumed", session_id=session_id)
                self._mark("recording_resumed")
                self._spawn(self._send(session_id, "recording", None))

    def _alert(self, recording: Recording, reason: str, detail: str) -> None:
        if self.alert is not None:
            self.alert(recording, reason, detail)

    def mark(self, kind: str, detail: str = "") -> None:
        """A timeline mark on the session being recorded (if any)."""
        self._mark(kind, detail)

    def _mark(self, kind: str, detail: str = "") -> None:
        active = self.active
        if active is None:
            return
        at = active.worker.now_s()
        self._spawn(asyncio.to_thread(active.recording.mark, max(0.0, at), kind, detail))

    async def end(self, session_id: str | None, reason: str) -> None:
        """The session ended: seal what was written, close the recording on disk."""
        async with self._lock:
            active = self.active
            if active is None or (session_id is not None and active.session_id != session_id):
                return
            await self._end(active, reason)

    async def _end(self, active: _Active, reason: str) -> None:
        self.active = None
        for track in active.tracks:
            track.stop()
        for task in active.tasks:
            task.cancel()
        ended = active.worker.now_s()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(active.recording.mark, ended, "session_ended", reason)
        await asyncio.to_thread(active.worker.stop)
        await asyncio.to_thread(active.recording.close, ended, reason[:32] or "ended", None)
        log.info("recording_ended", session_id=active.session_id, reason=reason,
                 seconds=round(ended, 1), segments=len(active.recording.sealed()),
                 worker_cpu_s=round(active.worker.cpu_s, 2),
                 audio_dropped=active.worker.audio_dropped)  # fmt: skip
        self._sealed()
        self.status = "off"  # (the console knows: the session is over)

    async def reconcile(self, live_session: str | None) -> int:
        """Close the recordings on disk whose session is over (the kiosk was away when it
        ended): the time after the last sealed segment is a `kiosk_restart` gap. Returns
        how many were closed."""
        async with self._lock:
            current = self.active.session_id if self.active is not None else None
            closed = 0
            for rec in await asyncio.to_thread(self.store.all):
                sid = rec.info.session_id
                if sid in (current, live_session) or rec.closing() is not None:
                    continue
                last = rec.last_end() or 0.0
                ended = max(last, min(time.time() - rec.info.origin, 24 * 3600.0))
                gap = {"start_s": round(last, 3), "end_s": round(ended, 3),
                       "reason": "kiosk_restart",
                       "detail": "the session ended while the kiosk was stopped"}  # fmt: skip
                await asyncio.to_thread(rec.close, ended, "kiosk_restart", gap)
                log.warning("recording_closed_after_restart", session_id=sid,
                            unrecorded_s=round(ended - last, 1))  # fmt: skip
                closed += 1
            if closed:
                self._sealed()
            return closed

    async def close(self) -> None:
        """The kiosk stops: what is being written is sealed (the session is not over: a
        restart goes on with it)."""
        active, self.active = self.active, None
        if active is None:
            return
        for track in active.tracks:
            track.stop()
        for task in active.tasks:
            task.cancel()
        await asyncio.to_thread(active.worker.stop)

    async def _send(self, session_id: str, state: str, reason: str | None) -> None:
        self.status = state
        with contextlib.suppress(Exception):
            await self._send_status(session_id, state, reason)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
