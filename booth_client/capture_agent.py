"""The booth's side of a document capture, from `request_capture` to the stored picture.

    CSO: request_capture(kind) ──▶ booth: burst from the document camera ─▶ pipeline
        ◀── capture_status capturing / retrying (advice shown to the participant)
        ◀── capture_status uploading (scores) ─▶ outbox (fsynced) ─▶ HTTP upload
        ◀── capture_status done (document_id)     server ──▶ CSO: document_added

The pipeline (booth_client.capture) is pure and runs in a worker thread, so the signaling
loop and media never wait on OpenCV. The picture goes through the on-disk outbox, so a
kiosk restart or a network loss never loses or duplicates it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import numpy as np
import structlog

from booth_client.capture import CaptureConfig, CapturePipeline, CaptureResult, FrameRing, attempts
from booth_client.outbox import Delivery, Outbox, OutboxItem, Uploader, drain_once
from signaling.messages import CaptureStatus, Envelope, RequestCapture

log = structlog.get_logger("loket.booth.capture")

Send = Callable[[Envelope], Awaitable[None]]
AdviceShown = Callable[[str | None, CaptureResult | None], None]


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
    hand, so the retry and its advice can be seen and tested."""

    def __init__(self, seed: int = 0, *, shaky_first: bool = False) -> None:
        self.seed = seed
        self.shaky_first = shaky_first
        self._requests = 0

    async def burst(self, kind: str, n: int, attempt: int) -> Sequence[np.ndarray]:
        from booth_client.sources.scenes import render_burst

        if attempt == 1:
            self._requests += 1
        blur = 14.0 if (self.shaky_first and attempt == 1) else 0.0
        levels = [blur + 2.0 * (i % 2) if blur else 0.0 for i in range(n)]
        seed = self.seed * 1000 + self._requests
        scenes = await asyncio.to_thread(render_burst, kind, seed, levels, shake_px=1.5)
        return [s.image for s in scenes]


class CaptureAgent:
    def __init__(
        self,
        camera: DocumentCamera,
        outbox: Outbox,
        upload: Uploader,
        send: Send,
        *,
        config: CaptureConfig | None = None,
        on_advice: AdviceShown | None = None,
    ) -> None:
        self.camera = camera
        self.outbox = outbox
        self.upload = upload
        self.send = send
        self.config = config or CaptureConfig()
        self.pipeline = CapturePipeline(self.config)
        self.on_advice = on_advice  # the kiosk screen shows the sentence
        self.last_result: CaptureResult | None = None

    async def handle(self, request: RequestCapture, claim_id: str) -> None:
        """Capture, send the best attempt, report every stage to the CSO."""
        status = _Status(request, self.send)
        try:
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
            item = await asyncio.to_thread(
                self.outbox.put, claim_id, request.kind, best.jpeg,
                capture_id=request.capture_id, session_id=request.session_id,
            )  # fmt: skip
            await status("uploading", attempt=len(tries.history), result=best)
            delivery = await self._deliver(item)
            if delivery is not None and delivery.delivered:
                document_id = str(delivery.body.get("document_id", "")) or None
                await status("done", attempt=len(tries.history), result=best,
                             document_id=document_id)  # fmt: skip
            elif delivery is None:
                await status(
                    "uploading",
                    attempt=len(tries.history),
                    result=best,
                    detail="network is slow; the picture is kept and will be sent",
                )
            else:
                error = delivery.body.get("error")
                await status(
                    "failed",
                    attempt=len(tries.history),
                    result=best,
                    detail=str(error)[:300] if error else f"HTTP {delivery.status}",
                )
        except Exception as exc:
            log.exception("capture_failed", kind=request.kind)
            await status("failed", detail=f"the booth could not capture: {type(exc).__name__}")

    async def _deliver(self, item: OutboxItem) -> Delivery | None:
        """Drain the outbox (oldest first) and return what the server said of `item`."""
        answers: dict[str, Delivery] = {}

        async def upload(it: OutboxItem, data: bytes) -> Delivery:
            answer = await self.upload(it, data)
            answers[it.item_id] = answer
            return answer

        await drain_once(self.outbox, upload)
        return answers.get(item.item_id)


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
        document_id: str | None = None,
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
                document_id=document_id,
                detail=detail,
            )
        )
