"""Reading the BoothClient for the screen: state snapshots, the capture's progress, pictures.

Everything here only watches: the client's public attributes (view, online, last_refusal,
last_ended, last_close, video_sink, self_view()) and the capture agent's public hooks
(`send`, `on_advice`, `camera`), each wrapped so that the agent behaves as before and the
screen learns what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import av
import numpy as np
import structlog
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from booth_client.capture import CaptureResult
from booth_client.capture_agent import CaptureAgent, DocumentCamera
from booth_client.kiosk import CloseKind, Refusal
from booth_client.screen.model import CapturePhase, CaptureView, ClientSnapshot, MediaSource
from signaling.messages import CaptureStatus, Envelope, SessionEndNote

if TYPE_CHECKING:
    from booth_client.client import BoothClient

log = structlog.get_logger("loket.booth.screen")

Clock = Callable[[], float]
PREVIEW_FPS = 8.0  # a camera without a live stream: its burst, replayed as the preview


class CaptureWatch:
    """The latest capture as the participant should see it: countdown, advice, picture."""

    def __init__(
        self,
        agent: CaptureAgent,
        *,
        countdown_s: float,
        retry_countdown_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.view: CaptureView | None = None
        self.picture: np.ndarray | None = None  # BGR: the picture sent
        self._preview: Sequence[np.ndarray] = ()  # BGR frames of the document camera
        self._clock = clock
        self._countdown = (countdown_s, retry_countdown_s)
        camera = agent.camera
        self._ring = getattr(camera, "ring", None)  # a live camera keeps a FrameRing
        agent.camera = _CountdownCamera(camera, self)
        send, advice = agent.send, agent.on_advice

        async def tee(message: Envelope) -> None:
            # A face still is taken during the call (the officer says so): the call stays
            # on screen, no document capture is shown.
            if isinstance(message, CaptureStatus) and message.kind != "face_still":
                self._status(message)
            await send(message)

        def on_advice(sentence: str | None, result: CaptureResult | None) -> None:
            self._advice(result, final=sentence is None)
            if advice is not None:
                advice(sentence, result)

        agent.send, agent.on_advice = tee, on_advice

    def preview(self) -> np.ndarray | None:
        """The document camera now (a live ring), or the burst being taken, replayed."""
        if self._ring is not None:
            latest = self._ring.latest(1)
            if latest:
                return latest[-1].image
        if not self._preview:
            return None
        return self._preview[int(self._clock() * PREVIEW_FPS) % len(self._preview)]

    def forget(self) -> None:
        """The visit is over: no document picture stays in memory or on screen."""
        self.view, self.picture, self._preview = None, None, ()

    def _status(self, message: CaptureStatus) -> None:
        now = self._clock()
        view = self.view
        if message.stage == "capturing":
            self.view = CaptureView(message.kind, CapturePhase.CAPTURING, message.attempt,
                                    capture_id=message.capture_id)  # fmt: skip
            self.picture, self._preview = None, ()
            return
        if view is not None and view.capture_id != message.capture_id:
            if view.finished_at is None:
                return  # another capture is on screen: its news first
            view = None  # an older picture delivered after a restart: shown alone
        if view is None:
            view = CaptureView(message.kind, CapturePhase.UPLOADING, capture_id=message.capture_id)
        sent = message.bytes_sent if message.bytes_sent is not None else view.sent
        total = message.bytes_total or view.total
        match message.stage:
            case "retrying":
                self.view = CaptureView(message.kind, CapturePhase.RETRYING, message.attempt,
                                        advice=message.advice or view.advice,
                                        capture_id=message.capture_id)  # fmt: skip
            case "uploading":
                self.view = replace(view, phase=CapturePhase.UPLOADING, finished_at=None,
                                    sent=sent, total=total)  # fmt: skip
            case "queued":  # kept safe at the booth: said, then the call screen again
                self.view = replace(view, phase=CapturePhase.QUEUED, finished_at=now,
                                    sent=sent, total=total)  # fmt: skip
            case "done" | "failed":
                phase = CapturePhase.DONE if message.stage == "done" else CapturePhase.FAILED
                self.view = replace(view, phase=phase, finished_at=now, sent=sent, total=total)

    def _advice(self, result: CaptureResult | None, *, final: bool) -> None:
        view = self.view
        if view is None or result is None:
            return
        if final:  # the picture that is sent
            self.picture = result.image
            self.view = replace(view, accepted=result.accepted)
        elif result.advice is not None:
            self.view = replace(view, advice=result.advice.value)

    def _counting(self, attempt: int, frames: Sequence[np.ndarray]) -> float:
        seconds = self._countdown[0 if attempt == 1 else 1]
        view = self.view
        if view is not None and seconds > 0:
            until = self._clock() + seconds
            self.view = replace(view, phase=CapturePhase.COUNTDOWN, countdown_until=until)
        self._preview = frames
        return seconds

    def _taking(self, frames: Sequence[np.ndarray]) -> None:
        view = self.view
        if view is not None:
            self.view = replace(view, phase=CapturePhase.CAPTURING, countdown_until=None)
        if frames:
            self._preview = frames


class _CountdownCamera:
    """The agent's camera behind a countdown the participant sees. A live camera (ring
    buffer) is shown during the countdown and read after it; one without a live stream
    (the synthetic participant) takes its burst first and shows it meanwhile."""

    def __init__(self, inner: DocumentCamera, watch: CaptureWatch) -> None:
        self.inner = inner
        self.watch = watch

    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        live = self.watch._ring is not None
        frames: Sequence[np.ndarray] = () if live else await self.inner.burst(kind, n, attempt)
        await asyncio.sleep(self.watch._counting(attempt, frames))
        if live:
            frames = await self.inner.burst(kind, n, attempt)
        self.watch._taking(frames)
        return frames


class SelfView:
    """The booth's own outgoing camera, for the small self-view: subscribed while a call
    is on screen, unsubscribed otherwise (so nothing renders frames for nobody)."""

    def __init__(self, client: BoothClient) -> None:
        self._client = client
        self._track: MediaStreamTrack | None = None
        self._task: asyncio.Task[None] | None = None
        self.latest: av.VideoFrame | None = None

    def want(self, on: bool) -> None:
        if on and self._task is None:
            track = self._client.self_view()
            if track is not None:
                self._track = track
                self._task = asyncio.get_running_loop().create_task(
                    self._read(track), name="kiosk-self-view"
                )
        elif not on:
            self.stop()

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    self.latest = frame
        except MediaStreamError:
            pass  # the source ended (a new call makes a new one)
        finally:
            self._task = None

    def stop(self) -> None:
        task, track = self._task, self._track
        self._task = self._track = None
        self.latest = None
        if task is not None:
            task.cancel()
        if track is not None:
            with contextlib.suppress(Exception):
                track.stop()


class ClientObserver:
    """Turns the client's state into `ClientSnapshot`s; counts new refusals and ends by
    identity (each is a new object), so the screen knows which are news."""

    def __init__(
        self,
        client: BoothClient,
        watch: CaptureWatch,
        self_view: SelfView,
        *,
        officer_stale_s: float,
    ) -> None:
        self.client = client
        self.watch = watch
        self.self_view = self_view
        self.officer_stale_s = officer_stale_s
        self._refusal: Refusal | None = None
        self._refusal_seq = 0
        self._refusal_code: str | None = None
        self._ended: SessionEndNote | None = None
        self._end_seq = 0

    def snapshot(self, now: float) -> ClientSnapshot:
        c = self.client
        refusal = c.last_refusal
        if refusal is not None and refusal is not self._refusal:
            self._refusal = refusal
            if refusal.request == "check_in":
                self._refusal_seq += 1
                self._refusal_code = refusal.code
        ended = c.last_ended
        if ended is not None and ended is not self._ended:
            self._ended = ended
            self._end_seq += 1
        view, sink = c.view, c.video_sink
        fresh = sink.latest is not None and sink.last_at is not None
        officer_video = fresh and now - (sink.last_at or 0.0) < self.officer_stale_s
        close = c.last_close
        return ClientSnapshot(
            state=view.state,
            lost_from=view.machine.lost_from,
            online=c.online,
            connections=c.connections,
            checking_in=c.checking_in,
            position=view.position,
            estimated_wait_s=view.estimated_wait_s,
            focused=view.focused,
            cso_name=view.cso_name,
            peer_state=c.peer_state,
            refusal_code=self._refusal_code,
            refusal_seq=self._refusal_seq,
            end_reason=self._ended.reason if self._ended is not None else None,
            end_seq=self._end_seq,
            capture=self.watch.view,
            out_of_service=close is not None and close.kind is CloseKind.GIVE_UP,
            called_ticket=c.called_ticket.number if c.called_ticket else None,
            officer_video=officer_video,
            self_video=self.self_view.latest is not None,
            recording_years=c.recording.retention_years if c.recording.enabled else None,
        )

    def image(self, source: MediaSource) -> np.ndarray | None:
        """RGB pixels for a media slot, or None (the renderer draws the placeholder)."""
        match source:
            case "officer":
                return _rgb(self.client.video_sink.latest)
            case "self":
                return _rgb(self.self_view.latest)
            case "document":
                return _bgr_to_rgb(self.watch.preview())
            case "picture":
                return _bgr_to_rgb(self.watch.picture)
        return None


def _rgb(frame: av.VideoFrame | None) -> np.ndarray | None:
    if frame is None:
        return None
    return frame.to_ndarray(format="rgb24")


def _bgr_to_rgb(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, 2::-1])
