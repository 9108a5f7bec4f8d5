"""The booth's side of a document capture, from `request_capture` to the stored picture.

    CSO: request_capture(kind) ──▶ booth: outbox reservation, grant ∥ burst ─▶ pipeline
        ◀── capture_status capturing / retrying (advice shown to the participant)
        ◀── capture_status uploading (scores, bytes sent) ◀─ outbox ─▶ HTTP upload
        ◀── capture_status queued (kept; retried by itself) / failed (not delivered)
        ◀── capture_status done (document_id)     server ──▶ CSO: document_added

The pipeline (booth_client.capture) is pure and runs in a worker thread, so the signaling
loop and media never wait on OpenCV. The capture is reserved in the on-disk outbox the
moment it is asked for, and its grant (the server's word that this picture may reach this
claim, even after the session) is fetched beside the countdown; the picture then goes
through the outbox (booth_client.delivery), so a kiosk restart or a network loss never
loses or duplicates it. Delivery reports what it does (sending n of m bytes, queued, sent,
not delivered), and while the capture's session lives the officer sees it as
`capture_status` (at most PROGRESS_PER_S times a second), and so does the kiosk screen.

A `face_still` (the officer compares the participant with the KTP's photo) takes the face
camera's newest frame at full resolution instead: no document pipeline, no retries, the
same outbox, grant and delivery (it is evidence like a document).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

import numpy as np
import structlog

from booth_client.capture import CaptureConfig, CapturePipeline, CaptureResult, FrameRing, attempts
from booth_client.delivery import (
    Delivery,
    DeliveryEvent,
    Drainer,
    EventKind,
    Progress,
    Transport,
)
from booth_client.outbox import ItemState, Outbox, OutboxItem
from signaling.messages import CaptureStatus, Envelope, RequestCapture

log = structlog.get_logger("loket.booth.capture")

Send = Callable[[Envelope], Awaitable[None]]
AdviceShown = Callable[[str | None, CaptureResult | None], None]
# A plain upload function (tests, benches): (item, picture) -> the server's answer.
Uploader = Callable[[OutboxItem, bytes], Awaitable[Delivery]]

PROGRESS_PER_S = 4.0  # capture_status while bytes go out, at most
GRANT_WAIT_S = 3.0  # the grant was asked for at the request: it is normally in by now
FACE_STILL = "face_still"
STILL_QUALITY = 92  # JPEG quality of a face still (the face comparison reads it)


class DocumentCamera(Protocol):
    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        """The `n` most recent full-resolution frames (oldest first)."""
        ...


class RingCamera:
    """A real document camera: its track pushes every frame into a ring buffer, so a
    request never waits for new frames."""

    def __init__(self, ring: FrameRing, settle_s: float = 0.4) -> None:
        self.ring = ring
        self.settle_s = settle_s  # after advice, give the participant a moment

    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        if attempt > 1:
            await asyncio.sleep(self.settle_s)
        return [f.image for f in self.ring.latest(n)]


class SyntheticDocumentCamera:
    """A synthetic participant laying the requested document on the desk (rendered with
    booth_client.sources.scenes). `shaky_first`: the first attempt is blurred by a moving
    hand, so the retry and its advice can be seen and tested. `documents` draws the
    participant's own KTP, KPJ card or bank book by kind (booth_client.sources.documents:
    `ParticipantDocuments`); other kinds are the desk's generic cards and letters."""

    def __init__(self, seed: int = 0, *, shaky_first: bool = False, documents: Any = None) -> None:
        self.seed = seed
        self.shaky_first = shaky_first
        self.documents = documents
        self._requests = 0

    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        from booth_client.sources.scenes import render_burst

        if attempt == 1:
            self._requests += 1
        blur = 14.0 if (self.shaky_first and attempt == 1) else 0.0
        levels = [blur + 2.0 * (i % 2) if blur else 0.0 for i in range(n)]
        seed = self.seed * 1000 + self._requests
        own = self.documents.texture(kind) if self.documents is not None else None
        scenes = await asyncio.to_thread(
            render_burst, own[1] if own else kind, seed, levels, shake_px=1.5,
            texture=own[0] if own else None,
        )  # fmt: skip
        return [s.image for s in scenes]


class FaceCamera(Protocol):
    async def still(self) -> np.ndarray:
        """The face camera's newest frame at full resolution (BGR)."""
        ...


class FeedStillCamera:
    """A real face camera: `track` is a subscription to its feed that keeps only the
    newest frame (booth_client.sources.media: `Feed.subscribe(backlog=1)`)."""

    def __init__(self, track: Any, wait_s: float = 2.0) -> None:
        self.track, self.wait_s = track, wait_s

    async def still(self) -> np.ndarray:
        frame = await asyncio.wait_for(self.track.recv(), self.wait_s)
        return await asyncio.to_thread(lambda: frame.to_ndarray(format="bgr24"))


class SyntheticFaceCamera:
    """The synthetic participant in front of the face camera: `portrait` (BGR) framed as
    a 1280x720 camera sees a person at a booth; without one, the synthetic test picture
    (no face: the officer's console then says "no face")."""

    def __init__(
        self, label: str, portrait: np.ndarray | None, size: tuple[int, int] = (1280, 720)
    ) -> None:
        self.label, self.portrait, self.size = label, portrait, size
        self._shots = 0

    async def still(self) -> np.ndarray:
        from booth_client.sources.documents import face_frame

        self._shots += 1
        return await asyncio.to_thread(
            face_frame, self.portrait, self.size, self._shots, self.label
        )


class CaptureAgent:
    def __init__(
        self,
        camera: DocumentCamera,
        outbox: Outbox,
        upload: Transport | Uploader,
        send: Send,
        *,
        config: CaptureConfig | None = None,
        on_advice: AdviceShown | None = None,
        session_live: Callable[[str | None], bool] = lambda _: True,
        face_camera: FaceCamera | None = None,
    ) -> None:
        self.camera = camera
        self.face_camera = face_camera
        self.outbox = outbox
        self.send = send
        self.config = config or CaptureConfig()
        self.pipeline = CapturePipeline(self.config)
        self.on_advice = on_advice  # the kiosk screen shows the sentence
        self.last_result: CaptureResult | None = None
        # Whether a capture's session is still live (statuses go only to a live one).
        self.session_live = session_live
        # A Transport (booth_client.upload), or a plain function (tests, benches).
        transport = UploaderTransport(upload) if callable(upload) else cast(Transport, upload)
        self.delivery = Drainer(outbox, transport, on_event=self._delivered)
        self._progress_at: dict[str, float] = {}  # item -> last progress status (monotonic)
        self._granting: set[asyncio.Future[OutboxItem]] = set()

    async def handle(self, request: RequestCapture, claim_id: str) -> None:
        """Capture, keep the best attempt in the outbox and try to deliver it, telling the
        CSO every stage. Returns once the picture is delivered, refused or queued."""
        status = _Status(request, self.send)
        item: OutboxItem | None = None
        try:
            item = await asyncio.to_thread(
                self.outbox.reserve, claim_id, request.kind, capture_id=request.capture_id,
                session_id=request.session_id, owner=self.delivery.owner,
            )  # fmt: skip
            granting = asyncio.ensure_future(self.delivery.fetch_grant(item))
            self._granting.add(granting)  # (a slow one goes on after the picture is kept)
            granting.add_done_callback(self._granting.discard)
            if request.kind == FACE_STILL:
                await self._face_still(item, granting, status)
                return
            tries = attempts(self.config.attempts, self.config)
            previous: CaptureResult | None = None
            for attempt in tries:
                await status(
                    "capturing" if attempt == 1 else "retrying", attempt=attempt, result=previous
                )
                frames = await self.camera.burst(request.kind, self.config.burst, attempt)
                if not frames:
                    raise RuntimeError("the document camera has no frames")
                result = tries.record(
                    await asyncio.to_thread(self.pipeline.run, frames, request.kind)
                )
                previous = result
                if not result.accepted and self.on_advice is not None:
                    self.on_advice(result.message("id"), result)
            best = tries.best
            assert best is not None and best.jpeg is not None
            self.last_result = best
            if self.on_advice is not None:
                self.on_advice(None, best)
            await asyncio.wait({granting}, timeout=GRANT_WAIT_S)
            scores = _scores(best, len(tries.history))
            await asyncio.to_thread(self.outbox.attach, item.item_id, best.jpeg, scores)
        except Exception as exc:
            log.exception("capture_failed", kind=request.kind)
            await status("failed", detail=f"the booth could not capture: {type(exc).__name__}")
            if item is not None:  # reported to the server as never taken
                refusal = {"reason": "capture_failed", "status": None, "message": repr(exc)[:300]}
                await asyncio.to_thread(
                    self.outbox.update, item.item_id, state=ItemState.REFUSED, refusal=refusal
                )
        if item is not None:
            await self.delivery.drain()

    async def _face_still(
        self, item: OutboxItem, granting: asyncio.Future[OutboxItem], status: _Status
    ) -> None:
        """The face camera's newest frame, kept in the outbox like a document picture
        (the caller's `finally` of `handle` does not apply: delivery is started here)."""
        from booth_client.capture import encode_jpeg

        try:
            if self.face_camera is None:
                raise RuntimeError("this booth has no face camera for stills")
            await status("capturing")
            frame = await self.face_camera.still()
            jpeg = await asyncio.to_thread(encode_jpeg, frame, STILL_QUALITY)
            await asyncio.wait({granting}, timeout=GRANT_WAIT_S)
            await asyncio.to_thread(self.outbox.attach, item.item_id, jpeg, {"attempt": 1})
        except Exception as exc:
            log.exception("face_still_failed")
            await status(
                "failed", detail=f"the booth could not take the still: {type(exc).__name__}"
            )
            refusal = {"reason": "capture_failed", "status": None, "message": repr(exc)[:300]}
            await asyncio.to_thread(
                self.outbox.update, item.item_id, state=ItemState.REFUSED, refusal=refusal
            )
        await self.delivery.drain()

    async def _delivered(self, event: DeliveryEvent) -> None:
        """What delivery did with a picture, as the officer (and the screen) see it."""
        item = event.item
        if (
            item.capture_id is None
            or item.session_id is None
            or not self.session_live(item.session_id)
        ):
            return  # its session is over: the claim view shows what arrived
        scores = item.scores
        extra: dict[str, Any] = {"bytes_total": event.total or item.size or None}
        match event.kind:
            case EventKind.SENDING:
                now, last = time.monotonic(), self._progress_at.get(item.item_id)
                if last is not None and (
                    now - last < 1 / PROGRESS_PER_S or event.sent >= event.total
                ):
                    return  # enough for now (the last bytes: `done` follows at once)
                self._progress_at[item.item_id] = now
                stage, extra["bytes_sent"] = "uploading", event.sent
            case EventKind.QUEUED:
                retry = f"next try in {event.retry_in:.0f} s: " if event.retry_in else ""
                stage, extra["bytes_sent"] = "queued", 0
                extra["detail"] = f"{retry}{event.detail}"
            case EventKind.DELIVERED:
                stage, extra["bytes_sent"] = "done", event.total
                extra["document_id"] = event.document_id
            case EventKind.UNDELIVERABLE:
                refusal = item.refusal
                if refusal.get("reason") == "capture_failed":
                    return  # said when it happened
                stage = "failed"
                extra["detail"] = (
                    f"not delivered ({refusal.get('reason')}): {refusal.get('message') or ''}"
                )
        if event.kind is not EventKind.SENDING:
            self._progress_at.pop(item.item_id, None)
        await self.send(
            CaptureStatus(
                session_id=item.session_id,
                capture_id=item.capture_id,
                kind=item.kind,
                stage=stage,  # type: ignore[arg-type]
                attempt=min(int(scores.get("attempt", 1)), 20),
                sharpness=scores.get("sharpness"),
                glare=scores.get("glare"),
                **{**extra, "detail": str(extra["detail"])[:300] if extra.get("detail") else None},
            )
        )


def _scores(result: CaptureResult, attempt: int) -> dict[str, Any]:
    glare = result.glare
    return {
        "attempt": attempt,
        "sharpness": result.sharpness,
        "glare": min(1.0, glare) if glare is not None else None,
    }


class UploaderTransport:
    """A plain upload function as a Transport (tests and benches): no grants, and an
    undeliverable picture is only logged."""

    def __init__(self, upload: Uploader) -> None:
        self._upload = upload

    async def grant(self, item: OutboxItem) -> Delivery:
        return Delivery(404, {"error": {"code": "no_grants", "message": "not offered here"}})

    async def upload(self, item: OutboxItem, data: bytes, progress: Progress) -> Delivery:
        await progress(0, len(data))
        return await self._upload(item, data)

    async def report(self, item: OutboxItem) -> Delivery:
        return Delivery(204, {})

    async def reauthenticate(self) -> None:
        return None


class _Status:
    def __init__(self, request: RequestCapture, send: Send) -> None:
        self.request = request
        self.send = send

    async def __call__(
        self,
        stage: str,
        *,
        attempt: int = 1,
        result: CaptureResult | None = None,
        detail: str | None = None,
    ) -> None:
        advice = result.advice.value if result is not None and result.advice else None
        glare = result.glare if result is not None else None
        await self.send(
            CaptureStatus(
                session_id=self.request.session_id,
                capture_id=self.request.capture_id,
                kind=self.request.kind,
                stage=stage,  # type: ignore[arg-type]
                attempt=min(attempt, 20),
                sharpness=result.sharpness if result is not None else None,
                glare=min(1.0, glare) if glare is not None else None,
                advice=advice,  # type: ignore[arg-type]
                detail=detail,
            )
        )
