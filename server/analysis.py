"""Machine advice on stored documents, off the event loop: readings and face comparisons.

When a picture is stored (`document_stored`, after its upload committed), this starts at
most one background job for it and returns at once:

- a KTP, KPJ card or bank book is read by the process's `ReadingPool` (reading/pool.py:
  worker processes, bounded, "busy" at once when full);
- a face still is compared with the claim's newest KTP (and a new KTP with the claim's
  newest still) by the process's `FaceRunner` (faces/runner.py: a bounded thread pool).

Each job's result is written as an `AnalysisRecord` (pending first, then done or
unavailable with the reason) with an audit entry naming the models, and the officer
serving the claim is told through the floor (`verification_updated`: no personal data;
the console then fetches the workbench, an audited read). Jobs in flight are bounded
too (`max_pending`): past it a document is marked "busy" at once, nothing is decrypted.
What was read is compared with the member record when the workbench is shown
(server/workbench.py), so a record looked up again needs no new reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from reading.document import ImageRejected
from reading.engine import MODELS as OCR_MODELS
from reading.pool import ReadingPool, Unavailable
from server.adapters.blobs import BlobMissing, BlobStore
from server.ports.records import (
    AnalysisRecord,
    AuditDraft,
    DocumentRecord,
    RecordStore,
    RecordsTx,
)

if TYPE_CHECKING:
    from faces.runner import FaceRunner

log = structlog.get_logger("loket.analysis")

READ_KINDS = frozenset({"ktp", "kpj_card", "buku_tabungan"})
PHOTO_KINDS = frozenset({"ktp", "kitas"})  # identity documents with the holder's photo
FACE_STILL = "face_still"
# Pixels a face job decodes at most (faces.FaceLimits.max_pixels: 8K).
MAX_FACE_PIXELS = 7680 * 4320

Notify = Callable[[str, str, str], Awaitable[None]]  # claim_id, document_id, what


def ocr_models() -> list[dict[str, str]]:
    """The reading's model files (SHA-256 checked by every worker before it loads them)."""
    return [{"role": m.role, "file": m.name, "sha256": m.sha256} for m in OCR_MODELS]


def decode_bgr(data: bytes) -> np.ndarray:
    """A stored JPEG or PNG as BGR pixels (faces want colour: cv2.IMREAD_COLOR)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the picture cannot be decoded")
    return image


class DocumentAnalyst:
    def __init__(
        self,
        store: RecordStore,
        blobs: BlobStore,
        notify: Notify,
        *,
        pool: ReadingPool | None,
        faces: FaceRunner | None,
        max_pending: int = 16,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.blobs, self.notify = store, blobs, notify
        self.pool, self.faces = pool, faces
        self.max_pending = max_pending
        self._now = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.timings: list[float] = []  # seconds from stored to advice written (newest 200)

    async def start(self) -> None:
        """Start the reading workers now (they load their models in the background) and
        the face models in the face pool's thread."""
        if self.pool is not None:
            await self.pool.start()
        if self.faces is not None:
            task = asyncio.ensure_future(self.faces.warm_up())
            task.add_done_callback(_log_warm_up)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.pool is not None:
            await self.pool.close()
        if self.faces is not None:
            self.faces.close()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    # --- what starts a job -----------------------------------------------------------------

    def document_stored(self, body: dict[str, Any]) -> None:
        """An upload committed (the records API's answer body): start its analyses.
        Returns at once; never raises (advice must not fail an upload)."""
        try:
            kind, claim_id, document_id = body["kind"], body["claim_id"], body["document_id"]
        except (KeyError, TypeError):
            return
        started = time.perf_counter()
        if kind in READ_KINDS and self.pool is not None:
            self._spawn(claim_id, document_id, "reading", self._read(body, started))
        if self.faces is not None and (kind == FACE_STILL or kind in PHOTO_KINDS):
            self._spawn(claim_id, document_id, "face", self._face(claim_id, body, started))

    def _spawn(
        self, claim_id: str, document_id: str, what: str, job: Coroutine[Any, Any, None]
    ) -> None:
        if len(self._tasks) >= self.max_pending:
            job.close()
            busy = f"{len(self._tasks)} analyses already running or waiting"
            task = asyncio.ensure_future(self._unavailable(claim_id, document_id, what, busy))
        else:
            task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("analysis_failed", error=repr(task.exception()))

    # --- readings --------------------------------------------------------------------------

    async def _read(self, doc: dict[str, Any], started: float) -> None:
        assert self.pool is not None
        claim_id, document_id, kind = doc["claim_id"], doc["document_id"], doc["kind"]
        begun = self._now()
        await self._write(AnalysisRecord(document_id, "reading", claim_id, "pending", begun))
        try:
            data = await asyncio.to_thread(self.blobs.get, doc["sha256"])
            answer = await self.pool.read(kind, data)
        except (BlobMissing, ImageRejected) as exc:
            answer = Unavailable("failed", str(exc)[:200])
        except Exception as exc:  # a damaged file, a bug: said, never left "pending"
            log.exception("reading_failed", document_id=document_id)
            answer = Unavailable("failed", type(exc).__name__)
        if isinstance(answer, Unavailable):
            record = AnalysisRecord(
                document_id, "reading", claim_id, "unavailable", begun,
                reason=_reason(answer.reason, answer.detail), finished_at=self._now(),
            )  # fmt: skip
        else:
            result = {**answer.to_json(), "models": ocr_models(),
                      "engine": "rapidocr (PP-OCR) on onnxruntime"}  # fmt: skip
            record = AnalysisRecord(document_id, "reading", claim_id, "done", begun,
                                    result=result, finished_at=self._now())  # fmt: skip
        await self._finish(record, started, kind)

    # --- faces -----------------------------------------------------------------------------

    async def _face(self, claim_id: str, doc: dict[str, Any], started: float) -> None:
        """Compare the claim's newest face still with its newest KTP (or KITAS), once
        the newly stored picture makes a pair."""
        assert self.faces is not None
        docs = await self.store.documents_of(claim_id)
        live = [d for d in docs if d.purged_at is None and d.verdict != "rejected"]
        still = _newest(live, {FACE_STILL})
        card = _newest(live, PHOTO_KINDS)
        if still is None or card is None or doc["document_id"] not in (
            still.document_id, card.document_id,
        ):  # fmt: skip
            return  # nothing to compare yet (or a newer picture took its place)
        begun = self._now()
        pending = AnalysisRecord(still.document_id, "face", claim_id, "pending", begun,
                                 result=_pair(still, card))  # fmt: skip
        await self._write(pending)
        record = await self._compare(pending, still, card)
        await self._finish(record, started, FACE_STILL)

    async def _compare(
        self, pending: AnalysisRecord, still: DocumentRecord, card: DocumentRecord
    ) -> AnalysisRecord:
        from faces.analysis import FaceComparison, FaceInputError

        assert self.faces is not None

        def unavailable(why: str) -> AnalysisRecord:
            return AnalysisRecord(pending.document_id, "face", pending.claim_id, "unavailable",
                                  pending.started_at, reason=why, result=pending.result,
                                  finished_at=self._now())  # fmt: skip

        if max(still.width * still.height, card.width * card.height) > MAX_FACE_PIXELS:
            return unavailable("a picture is larger than the face comparison takes")
        try:
            pictures = await asyncio.to_thread(
                lambda: [decode_bgr(self.blobs.get(d.sha256)) for d in (still, card)]
            )
            answer = await self.faces.compare(pictures[0], pictures[1])
        except (BlobMissing, ValueError, FaceInputError) as exc:
            return unavailable(f"the pictures could not be compared: {exc}"[:300])
        except Exception as exc:  # a damaged file, a bug: said, never left "pending"
            log.exception("face_comparison_failed", document_id=still.document_id)
            return unavailable(f"the comparison failed: {type(exc).__name__}")
        if not isinstance(answer, FaceComparison):
            return unavailable(_reason(str(answer.reason), answer.message))
        return AnalysisRecord(pending.document_id, "face", pending.claim_id, "done",
                              pending.started_at, result={**pending.result, **answer.summary()},
                              finished_at=self._now())  # fmt: skip

    # --- writing results -------------------------------------------------------------------

    async def _unavailable(self, claim_id: str, document_id: str, what: str, why: str) -> None:
        now = self._now()
        await self._finish(
            AnalysisRecord(
                document_id,
                what,
                claim_id,
                "unavailable",
                now,
                reason=_reason("busy", why),
                finished_at=now,
            ),
            None,
            "",
        )

    async def _write(self, record: AnalysisRecord) -> None:
        await self.store.write(lambda tx: tx.set_analysis(record))

    async def _finish(self, record: AnalysisRecord, started: float | None, kind: str) -> None:
        """Store the result with its audit entry (no personal values: status, timing and
        models), then tell the officer."""
        result = record.result
        details: dict[str, Any] = {
            "document_id": record.document_id, "analysis": record.analysis,
            "status": record.status, "reason": record.reason,
        }  # fmt: skip
        if record.status == "done":
            details["ms"] = result.get("ms")
            details["models"] = result.get("models")
            if record.analysis == "face":
                details.update(band=result.get("band"), similarity=result.get("similarity"),
                               ktp_document_id=result.get("ktp_document_id"))  # fmt: skip
        draft = AuditDraft(actor="loket", role="system", action="document.analysed",
                           claim_id=record.claim_id, details=details)  # fmt: skip

        def work(tx: RecordsTx) -> None:
            tx.append_audit(draft, self._now())  # first: it serialises writers (sql adapter)
            tx.set_analysis(record)

        await self.store.write(work)
        if started is not None:
            took = time.perf_counter() - started
            self.timings = [*self.timings[-199:], took]
            log.info(
                "document_analysed",
                claim_id=record.claim_id,
                kind=kind,
                analysis=record.analysis,
                status=record.status,
                seconds=round(took, 3),
            )
        with contextlib.suppress(Exception):  # the officer's console is told, best effort
            await self.notify(record.claim_id, record.document_id, record.analysis)


def _reason(code: str, detail: str) -> str:
    words = {"busy": "busy", "timeout": "took too long", "failed": "failed",
             "closed": "the server is shutting down"}  # fmt: skip
    text = words.get(code, code)
    return f"{text}: {detail}"[:300] if detail else text


def _newest(docs: list[DocumentRecord], kinds: frozenset[str] | set[str]) -> DocumentRecord | None:
    found = [d for d in docs if d.kind in kinds]
    return max(found, key=lambda d: d.uploaded_at) if found else None


def _pair(still: DocumentRecord, card: DocumentRecord) -> dict[str, Any]:
    return {"still_document_id": still.document_id, "ktp_document_id": card.document_id,
            "ktp_kind": card.kind}  # fmt: skip


def _log_warm_up(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        log.error("face_models_unavailable", error=repr(task.exception()))
