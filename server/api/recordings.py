"""REST API for recordings (server/recordings.py; OpenAPI at /docs).

The booth (its session's recording):

    GET   /api/recording-policy                        what a refusal means, retention
    POST  /api/recording-consents                      a refusal before check-in (in_person)
    POST  /api/recordings                              open (with the consent's answer)
    POST  /api/recordings/{id}/segments                declare a segment: a resumable upload
    HEAD  /api/recording-uploads/{upload}              Upload-Offset: where to go on
    PATCH /api/recording-uploads/{upload}              a chunk; the last one stores the segment
    POST  /api/recordings/{id}/close                   the manifest, its hash in the audit chain
    POST  /api/recordings/{id}/alerts                  the kiosk could not record (disk, write)

Supervisors (their branches) and auditors:

    GET   /api/recordings?claim_id=&booking_code=&nik=&officer=&branch=&since=&until=
    GET   /api/recordings/{id}                         play: manifest, timeline, stills (audited)
    GET   /api/recordings/{id}/segments/{seq}?playback=   one segment, decrypted
    GET   /api/recordings/{id}/verify                  segments vs manifest vs audit chain
    GET   /api/recordings/{id}/export                  the zip (audited)

Operators: POST/DELETE /api/claims/{claim}/legal-hold, GET /api/legal-holds.

Segment uploads are the documents' resumable uploads (tus-like: server/api/uploads.py)
staged under `DATA_DIR/recording-uploads/`, with the segment's description kept beside
its chunks; the kiosk presents the recording's grant (`Loket-Recording-Grant`) so it may
go on after the session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import Counter, Gauge
from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.adapters.recording_files import SegmentFiles
from server.adapters.sql.recordings import RecordingFilter, SqlRecordingStore
from server.adapters.staging import (
    OffsetMismatch,
    StagedUpload,
    UploadGone,
    UploadStaging,
    UploadState,
    upload_id_for,
)
from server.api.params import ID_PATTERN, TEXT_PATTERN, ClaimId, Timestamp, UploadId
from server.api.records import ApiError, IdempotencyKey, Strict, _require_key
from server.api.uploads import (
    CHUNK_TYPE,
    _check_chunk_sum,
    _mismatch,
    _offset_headers,
    _read_chunk,
    _staged,
    _staging_error,
)
from server.auth.deps import current_principal
from server.domain.recording import MAX_MARKS_PER_SEGMENT, Ending, Gap, Mark, Segment
from server.metrics import Metrics
from server.principal import Principal
from server.recordings import OpenRequest, RecordingsService, SegmentDeclared
from server.records import RecordsService, documents_key
from server.settings import Settings
from signaling.messages import (
    BookingRef,
    BoothClaimRef,
    ClaimType,
    Language,
    TicketRef,
    WalkInRef,
)

router = APIRouter(prefix="/api", tags=["recordings"])
log = structlog.get_logger("loket.api.recordings")

SEGMENT_META = "segment.json"  # beside the staged chunks: what the segment is
RecordingId = Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]
Sha256 = Annotated[str, Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 24 * 3600.0)]
Word = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_]+$")]
Detail = Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN)]
UnixTime = Annotated[float, Field(ge=1_000_000_000, le=10_000_000_000)]
RecordingGrantHeader = Annotated[
    str | None,
    Header(
        alias="Loket-Recording-Grant",
        max_length=1024,
        description="the recording's grant (from opening it): accepted after the session",
    ),
]


class ConsentBody(Strict):
    answer: Literal["given", "refused"]
    answered_at: UnixTime  # the kiosk's clock
    language: Language
    text_sha256: Sha256  # of the words the participant was shown
    policy: Literal["in_person", "unrecorded"] | None = None

    def stored(self) -> dict[str, Any]:
        values = self.model_dump(mode="json")
        values["answered_at_iso"] = datetime.fromtimestamp(self.answered_at, UTC).isoformat()
        return values


class VideoBody(Strict):
    codec: Annotated[str, Field(max_length=3, pattern="^vp8$")]
    width: Annotated[int, Field(ge=16, le=3840)]
    height: Annotated[int, Field(ge=16, le=2160)]
    fps: Annotated[float, Field(gt=0, le=60)]
    bitrate: Annotated[int, Field(ge=1000, le=10_000_000)]
    layout: Detail


class AudioBody(Strict):
    codec: Annotated[str, Field(max_length=4, pattern="^opus$")]
    channels: Annotated[int, Field(ge=1, le=2)]
    sample_rate: Annotated[int, Field(ge=48000, le=48000)]
    bitrate: Annotated[int, Field(ge=6000, le=510_000)]
    layout: Detail


class MediaBody(Strict):
    container: Annotated[str, Field(max_length=4, pattern="^webm$")]
    video: VideoBody
    audio: AudioBody


class OpenBody(Strict):
    session_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    claim_id: Annotated[str, Field(min_length=1, max_length=32, pattern=ID_PATTERN)]
    consent: ConsentBody
    media: MediaBody
    started_at: UnixTime  # the recording's clock 0, on the kiosk's clock


class ClaimRefBody(Strict):
    """Who refused, as they typed it at the kiosk (signaling's claim reference)."""

    kind: Literal["booking", "walk_in", "ticket"]
    booking_code: Annotated[str, Field(max_length=32, pattern=TEXT_PATTERN)] | None = None
    nik: Annotated[str, Field(max_length=16, pattern=TEXT_PATTERN)] | None = None
    kpj: Annotated[str, Field(max_length=11, pattern=TEXT_PATTERN)] | None = None
    claim_type: ClaimType | None = None
    number: Annotated[str, Field(max_length=8, pattern=TEXT_PATTERN)] | None = None

    def reference(self) -> BookingRef | WalkInRef | TicketRef:
        values = self.model_dump(exclude_none=True)
        try:
            return CLAIM_REF.validate_python(values)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ApiError(422, "invalid_request", f"claim: {detail}") from None


CLAIM_REF: TypeAdapter[BookingRef | WalkInRef | TicketRef] = TypeAdapter(BoothClaimRef)


class ConsentRefusalBody(Strict):
    claim: ClaimRefBody
    consent: ConsentBody


class MarkBody(Strict):
    at_s: Seconds
    kind: Word
    detail: Detail = ""


class GapBody(Strict):
    start_s: Seconds
    end_s: Seconds
    reason: Word
    detail: Detail = ""


class SegmentBody(Strict):
    seq: Annotated[int, Field(ge=1, le=100_000)]
    length: Annotated[int, Field(ge=1, le=2**31)]
    sha256: Sha256
    start_s: Seconds
    end_s: Seconds
    frames: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    marks: list[MarkBody] = Field(default=[], max_length=MAX_MARKS_PER_SEGMENT)
    gap_before: GapBody | None = None
    pending_bytes: Annotated[int, Field(ge=0, le=2**50)] = 0
    clock_offset_s: Annotated[float, Field(ge=-1e9, le=1e9)] | None = None
    clock_rtt_s: Annotated[float, Field(ge=0, le=3600)] | None = None

    def segment(self) -> Segment:
        return Segment(
            seq=self.seq,
            sha256=self.sha256,
            size=self.length,
            start_s=self.start_s,
            end_s=self.end_s,
            frames=self.frames,
            marks=tuple(Mark(m.at_s, m.kind, m.detail) for m in self.marks),
            gap_before=_gap(self.gap_before),
        )


def _gap(body: GapBody | None) -> Gap | None:
    return None if body is None else Gap(body.start_s, body.end_s, body.reason, body.detail)


class Listed(Strict):
    seq: Annotated[int, Field(ge=1, le=100_000)]
    sha256: Sha256


class CloseBody(Strict):
    segments: list[Listed] = Field(max_length=100_000)
    ended_s: Seconds
    end_reason: Word
    gap_after: GapBody | None = None
    marks: list[MarkBody] = Field(default=[], max_length=MAX_MARKS_PER_SEGMENT)


class AlertBody(Strict):
    reason: Literal["disk_full", "write_failed", "encoder_failed", "upload_refused"]
    detail: Annotated[str, Field(max_length=300, pattern=TEXT_PATTERN)] = ""


class HoldBody(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=300, pattern=TEXT_PATTERN)]


# --- wiring -------------------------------------------------------------------------------


class RecordingMetrics:
    """What /metrics says of recordings (on the app's registry)."""

    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.in_progress = Gauge(
            "loket_recordings_in_progress", "Recordings open (the session or its upload)",
            registry=r,
        )  # fmt: skip
        self.pending_bytes = Gauge(
            "loket_recording_pending_bytes",
            "Bytes the kiosks of open recordings said they still had to upload",
            registry=r,
        )
        self.failures = Counter(
            "loket_recording_failures",
            "Recording failures (alert): a kiosk's disk full or write error, the server's",
            ["where", "reason"],
            registry=r,
        )
        self.segments = Counter("loket_recording_segments_stored", "Segments stored", registry=r)
        self.bytes = Counter("loket_recording_bytes_stored", "Segment bytes stored", registry=r)


class Recordings:
    """The recordings' parts in one server process."""

    def __init__(self, service: RecordingsService, staging: UploadStaging, metrics: Metrics):
        self.service = service
        self.staging = staging
        self.metrics = RecordingMetrics(metrics)
        service.on_failure = lambda where, reason: self.metrics.failures.labels(
            where=where, reason=reason
        ).inc()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        count, pending = await self.service.store.in_progress()
        self.metrics.in_progress.set(count)
        self.metrics.pending_bytes.set(pending)

    def start(self, interval: float = 10.0) -> None:
        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):  # a database blip: next time
                    await self.refresh()
                await asyncio.sleep(interval)

        self._task = asyncio.get_running_loop().create_task(loop(), name="recording-metrics")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.service.store.close()


def open_recordings(
    settings: Settings, engine: AsyncEngine, records: RecordsService, metrics: Metrics
) -> Recordings:
    key = documents_key(settings)
    service = RecordingsService(
        settings,
        SqlRecordingStore(engine),
        SegmentFiles(settings.data_dir / "recordings", key),
        records,
    )
    staging = UploadStaging(
        settings.data_dir / "recording-uploads",
        key,
        max_per_booth=settings.max_uploads_per_booth,
        max_total=settings.max_uploads_total,
        max_bytes=settings.max_upload_staging_bytes,
        expiry_s=settings.upload_expiry,
    )
    return Recordings(service, staging, metrics)


def install(app: FastAPI) -> None:
    app.include_router(router)


def _parts(request: Request) -> Recordings:
    parts: Recordings = request.app.state.recordings
    return parts


def _service(request: Request) -> RecordingsService:
    return _parts(request).service


# --- the booth ------------------------------------------------------------------------------


@router.get("/recording-policy", summary="What a refusal to be recorded means; retention")
async def recording_policy(
    request: Request, who: Principal = Depends(current_principal)
) -> JSONResponse:
    return JSONResponse(_service(request).policy())


@router.post(
    "/recording-consents",
    status_code=201,
    summary="A participant refused recording before checking in (audited on their claim)",
)
async def refuse_consent(
    request: Request,
    body: ConsentRefusalBody,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    if body.consent.answer != "refused":
        raise ApiError(422, "invalid_request", "this records refusals; consent goes with opening")
    status, answer = await _service(request).consent_refused(
        who, body.claim.reference(), body.consent.stored(), key
    )
    return JSONResponse(answer, status_code=status)


@router.post("/recordings", status_code=201, summary="Open the recording of a live session")
async def open_recording(
    request: Request,
    body: OpenBody,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    _require_key(idempotency_key)
    opened = await _service(request).open(
        who,
        OpenRequest(
            session_id=body.session_id,
            claim_id=body.claim_id,
            consent=body.consent.stored(),
            media=body.media.model_dump(mode="json"),
            started_at=body.started_at,
        ),
    )
    asyncio.get_running_loop().create_task(_parts(request).refresh())
    return JSONResponse(opened, status_code=201)


@router.post(
    "/recordings/{recording_id}/segments",
    status_code=201,
    summary="Declare a segment: a resumable upload of its bytes (or: stored already)",
)
async def declare_segment(
    request: Request,
    recording_id: RecordingId,
    body: SegmentBody,
    idempotency_key: IdempotencyKey,
    grant: RecordingGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    service, staging = _service(request), _parts(request).staging
    if body.length > service.settings.max_recording_segment_bytes:
        limit = service.settings.max_recording_segment_bytes
        raise ApiError(413, "too_large", f"a segment is at most {limit:,} bytes")
    declared = SegmentDeclared(
        body.segment(), body.pending_bytes, body.clock_offset_s, body.clock_rtt_s
    )
    seg = await service.declare_segment(who, recording_id, grant, declared)
    if seg is None:
        return JSONResponse(
            {
                "recording_id": recording_id,
                "seq": body.seq,
                "stored": True,
                "server_time": time.time(),
            },
            status_code=200,
        )
    staged = StagedUpload(
        upload_id_for(who.subject, f"rec:{key}"),
        who.subject,
        recording_id,
        "recording_segment",
        key,
        body.length,
        body.sha256,
        "video/webm",
        grant=grant,
        created_at=time.time(),
    )
    state, _ = await _staged(staging.create, staged)
    await asyncio.to_thread(_keep_meta, staging.root / staged.upload_id, body)
    answer = {
        "upload_id": staged.upload_id,
        "location": f"/api/recording-uploads/{staged.upload_id}",
        "offset": state.offset,
        "length": body.length,
        "server_time": time.time(),
    }
    return JSONResponse(answer, status_code=201, headers=_offset_headers(state))


def _keep_meta(directory: FsPath, body: SegmentBody) -> None:
    """The segment's description beside its chunks (its own key: another description
    under the same key is another request)."""
    path = directory / SEGMENT_META
    text = body.model_dump_json()
    if path.exists():
        kept = SegmentBody.model_validate_json(path.read_text())
        if kept.segment() != body.segment():
            raise ApiError(
                409, "idempotency_key_reused", "this Idempotency-Key is staging another segment"
            )
        return
    path.write_text(text)


async def _own_upload(request: Request, who: Principal, upload_id: str) -> UploadState:
    state: UploadState = await _staged(_parts(request).staging.state, upload_id)
    if state.upload.booth_id != who.subject or state.upload.kind != "recording_segment":
        raise _staging_error(UploadGone(f"no upload {upload_id!r}"))
    return state


@router.head("/recording-uploads/{upload_id}", summary="Where a segment upload stands")
async def segment_offset(
    request: Request, upload_id: UploadId, who: Principal = Depends(current_principal)
) -> Response:
    state = await _own_upload(request, who, upload_id)
    return Response(status_code=200, headers=_offset_headers(state))


@router.patch(
    "/recording-uploads/{upload_id}",
    summary="Send the chunk at Upload-Offset; the last one stores the segment",
    responses={204: {"description": "chunk stored; Upload-Offset says where to go on"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {CHUNK_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def patch_segment(
    request: Request,
    upload_id: UploadId,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0, le=2**31)],
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum", max_length=100)] = None,
    who: Principal = Depends(current_principal),
) -> Response:
    state = await _own_upload(request, who, upload_id)
    settings: Settings = request.app.state.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CHUNK_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send chunks as {CHUNK_TYPE}")
    if upload_offset != state.offset:
        return _mismatch(OffsetMismatch(state.offset))
    data = await _read_chunk(request, settings.upload_chunk_max_bytes)
    _check_chunk_sum(upload_checksum, data)
    last = upload_offset + len(data) == state.upload.length
    if data and not last and len(data) < settings.upload_chunk_min_bytes:
        raise ApiError(
            400,
            "chunk_too_small",
            f"a chunk other than the last is at least {settings.upload_chunk_min_bytes:,} bytes",
        )
    staging = _parts(request).staging
    try:
        state = await _staged(staging.append, upload_id, upload_offset, data)
    except OffsetMismatch as exc:
        return _mismatch(exc)
    if not state.complete:
        return Response(status_code=204, headers=_offset_headers(state))
    return await _finish(request, who, state)


async def _finish(request: Request, who: Principal, state: UploadState) -> Response:
    parts, upload = _parts(request), state.upload
    staging = parts.staging
    data: bytes = await _staged(staging.assemble, upload.upload_id)
    try:
        text = await asyncio.to_thread((staging.root / upload.upload_id / SEGMENT_META).read_text)
        body = SegmentBody.model_validate_json(text)
    except (OSError, ValueError):
        await asyncio.to_thread(staging.discard, upload.upload_id)
        raise ApiError(
            404, "upload_not_found", "the segment's description is gone: declare it again"
        ) from None
    try:
        stored = await parts.service.store_segment(
            who, upload.claim_id, upload.grant, body.segment(), data
        )
    except Exception as exc:
        status = getattr(exc, "status", 500)
        if status < 500:  # refused for good: the staged chunks go
            await asyncio.to_thread(staging.discard, upload.upload_id)
        raise
    await asyncio.to_thread(staging.discard, upload.upload_id)
    if not stored["replayed"]:
        parts.metrics.segments.inc()
        parts.metrics.bytes.inc(len(data))
    return JSONResponse(
        {**stored, "server_time": time.time()},
        status_code=201,
        headers={"Upload-Offset": str(upload.length)},
    )


@router.post("/recordings/{recording_id}/close", summary="Close: the manifest into the audit chain")
async def close_recording(
    request: Request,
    recording_id: RecordingId,
    body: CloseBody,
    idempotency_key: IdempotencyKey,
    grant: RecordingGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    _require_key(idempotency_key)
    ending = Ending(
        body.ended_s,
        body.end_reason,
        _gap(body.gap_after),
        tuple(Mark(m.at_s, m.kind, m.detail) for m in body.marks),
    )
    listed = [(s.seq, s.sha256) for s in body.segments]
    closed = await _service(request).close(who, recording_id, grant, ending, listed)
    asyncio.get_running_loop().create_task(_parts(request).refresh())
    return JSONResponse(closed)


@router.post(
    "/recordings/{recording_id}/alerts",
    status_code=201,
    summary="The kiosk could not record: its disk is full, a segment could not be written",
)
async def recording_alert(
    request: Request,
    recording_id: RecordingId,
    body: AlertBody,
    idempotency_key: IdempotencyKey,
    grant: RecordingGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    status, answer = await _service(request).alert(
        who, recording_id, grant, body.reason, body.detail, key
    )
    return JSONResponse(answer, status_code=status)


# --- supervisors and auditors -----------------------------------------------------------------


@router.get("/recordings", summary="Find recordings (by NIK: auditors); audited")
async def find_recordings(
    request: Request,
    claim_id: Annotated[str | None, Query(max_length=32, pattern=ID_PATTERN)] = None,
    booking_code: Annotated[str | None, Query(max_length=32, pattern=TEXT_PATTERN)] = None,
    nik: Annotated[str | None, Query(min_length=16, max_length=16, pattern=r"^\d{16}$")] = None,
    officer: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
    branch: Annotated[str | None, Query(max_length=32, pattern=TEXT_PATTERN)] = None,
    since: Annotated[Timestamp | None, Query()] = None,
    until: Annotated[Timestamp | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    where = RecordingFilter(
        claim_id=claim_id or None,
        booking_code=booking_code or None,
        nik=nik or None,
        officer_id=officer or None,
        branch=branch or None,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    found = await _service(request).search(who, where)
    return JSONResponse({"recordings": found})


@router.get("/recordings/{recording_id}", summary="Play a recording: manifest, timeline (audited)")
async def play_recording(
    request: Request, recording_id: RecordingId, who: Principal = Depends(current_principal)
) -> JSONResponse:
    return JSONResponse(await _service(request).play(who, recording_id))


@router.get(
    "/recordings/{recording_id}/segments/{seq}",
    summary="One segment, decrypted (with the playback's link)",
    response_class=Response,
)
async def recording_segment(
    request: Request,
    recording_id: RecordingId,
    seq: Annotated[int, Path(ge=1, le=100_000)],
    playback: Annotated[str | None, Query(max_length=256, pattern=r"^[A-Za-z0-9_.=-]*$")] = None,
    who: Principal = Depends(current_principal),
) -> Response:
    data = await _service(request).segment(who, recording_id, seq, playback)
    return Response(
        data,
        media_type="video/webm",
        headers={"Cache-Control": "private, no-store", "Content-Disposition": "inline"},
    )


@router.get("/recordings/{recording_id}/verify", summary="Check a recording end to end")
async def verify_recording(
    request: Request, recording_id: RecordingId, who: Principal = Depends(current_principal)
) -> JSONResponse:
    service = _service(request)
    rec = await service.resolve(recording_id)
    service._reader(who, rec)
    return JSONResponse((await service.verify(rec)).to_json())


@router.get(
    "/recordings/{recording_id}/export",
    summary="Export a closed recording as a zip to verify without Loket (audited)",
    response_class=Response,
)
async def export_recording(
    request: Request, recording_id: RecordingId, who: Principal = Depends(current_principal)
) -> Response:
    service = _service(request)
    rec = await service.resolve(recording_id)
    data = await service.export(who, rec)
    name = f"recording-{rec.session_id}.zip"
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


# --- operators: legal holds -------------------------------------------------------------------


@router.post("/claims/{claim_id}/legal-hold", status_code=201, summary="Place a legal hold")
async def place_hold(
    request: Request,
    claim_id: ClaimId,
    body: HoldBody,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    _require_key(idempotency_key)
    hold = await _service(request).place_hold(who, claim_id, body.reason)
    return JSONResponse({**asdict(hold), "placed_at": hold.placed_at.isoformat()}, status_code=201)


@router.delete("/claims/{claim_id}/legal-hold", summary="Release a legal hold")
async def release_hold(
    request: Request,
    claim_id: ClaimId,
    reason: Annotated[str, Query(min_length=1, max_length=300, pattern=TEXT_PATTERN)],
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    released = await _service(request).release_hold(who, claim_id, reason)
    if not released:
        raise ApiError(404, "not_found", "that claim has no legal hold")
    return JSONResponse({"claim_id": claim_id, "released": True})


@router.get("/legal-holds", summary="The claims on legal hold")
async def list_holds(request: Request, who: Principal = Depends(current_principal)) -> JSONResponse:
    service = _service(request)
    if str(who.role) != "auditor":
        service._holder(who)  # operators, and auditors who read everything
    holds = await service.store.holds()
    return JSONResponse(
        {"holds": [{**asdict(h), "placed_at": h.placed_at.isoformat()} for h in holds]}
    )
