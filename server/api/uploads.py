"""Capture grants, undeliverable reports and resumable (chunked) uploads.

    POST  /api/claims/{claim}/captures                      a grant for one capture
    POST  /api/claims/{claim}/captures/{capture}/undeliverable
    POST  /api/claims/{claim}/uploads?kind=ktp              create (JSON: length, sha256, type)
    HEAD  /api/uploads/{upload}                             Upload-Offset: where to go on
    PATCH /api/uploads/{upload}                             Upload-Offset + a chunk

The resumable upload follows tus 1.0's core protocol (an offset the server owns, HEAD to
learn it, PATCH with `Upload-Offset` and `Content-Type: application/offset+octet-stream`,
409 on a wrong offset, a per-chunk `Upload-Checksum: sha256 <base64>`) with three
differences: creation is a JSON POST under the claim (with the Idempotency-Key and the
capture grant, so a retried creation finds the same upload), the picture's SHA-256 is
declared up front and checked after the last chunk, and the last PATCH answers like the
one-shot POST (201 with the document, or the stored answer), since that is when the
document exists. Chunks are staged encrypted on the shared data volume
(server/adapters/staging.py), so any process may take any chunk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from server.adapters.staging import (
    ChunkPastEnd,
    OffsetMismatch,
    StagedConflict,
    StagedCorrupt,
    StagedUpload,
    StagingFull,
    UploadGone,
    UploadStaging,
    UploadState,
    upload_id_for,
)
from server.api.errors import error_body
from server.api.params import ClaimId, UploadId
from server.api.records import (
    ApiError,
    CaptureGrantHeader,
    IdempotencyKey,
    Strict,
    _require_key,
    _service,
    _stored,
    announce_document,
)
from server.auth.deps import current_principal
from server.domain.documents import DocumentKind
from server.domain.images import ImageRejected
from server.principal import Principal
from server.records import RecordsError, documents_key
from server.settings import Settings

router = APIRouter(prefix="/api", tags=["uploads"])
log = structlog.get_logger("loket.uploads")

CHUNK_TYPE = "application/offset+octet-stream"
RETRY_AFTER_S = 30
KindQuery = Annotated[DocumentKind, Query(description="e.g. ktp, kk, kpj_card")]
CAPTURE_ID = r"^[A-Za-z0-9_.:-]+$"  # signaling.messages.MessageId
CaptureId = Annotated[str, Field(min_length=1, max_length=64, pattern=CAPTURE_ID)]


class GrantRequest(Strict):
    kind: DocumentKind
    session_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    capture_id: CaptureId


class UndeliverableReport(Strict):
    kind: Annotated[str, Field(max_length=32)]
    reason: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
    status: Annotated[int, Field(ge=0, le=599)] | None = None
    message: Annotated[str, Field(max_length=300)] = ""


class UploadCreate(Strict):
    length: Annotated[int, Field(ge=1, le=2**31)]
    sha256: Annotated[str, Field(max_length=64, pattern=r"^[0-9a-f]{64}$")]
    content_type: Literal["image/jpeg", "image/png"]


def staging_of(request: Request) -> UploadStaging:
    """The app's staging area (made on first use, from the settings)."""
    staging: UploadStaging | None = getattr(request.app.state, "uploads", None)
    if staging is None:
        settings: Settings = request.app.state.settings
        staging = UploadStaging(
            settings.data_dir / "uploads",
            documents_key(settings),
            max_per_booth=settings.max_uploads_per_booth,
            max_total=settings.max_uploads_total,
            max_bytes=settings.max_upload_staging_bytes,
            expiry_s=settings.upload_expiry,
        )
        request.app.state.uploads = staging
    return staging


def _staging_error(exc: Exception) -> ApiError:
    """One place that turns a staging refusal into its HTTP answer."""
    match exc:
        case UploadGone() | StagedCorrupt():
            return ApiError(
                404, "upload_not_found", str(exc),
                "Create the upload again (same Idempotency-Key) and send from its offset.",
            )  # fmt: skip
        case StagingFull(scope="bytes"):
            return ApiError(507, "staging_full", str(exc), f"Retry in {RETRY_AFTER_S} s.")
        case StagingFull():
            return ApiError(429, "too_many_uploads", str(exc), f"Retry in {RETRY_AFTER_S} s.")
        case ChunkPastEnd():
            return ApiError(413, "chunk_past_end", str(exc))
        case StagedConflict():
            return ApiError(
                409, "idempotency_key_reused", str(exc),
                "Use a new key for a new picture; reuse a key only to retry the same one.",
            )  # fmt: skip
    raise exc


async def _staged(fn: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except OffsetMismatch:
        raise
    except (UploadGone, StagedCorrupt, StagingFull, ChunkPastEnd, StagedConflict) as exc:
        raise _staging_error(exc) from None


def _offset_headers(state: UploadState) -> dict[str, str]:
    return {
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.upload.length),
        "Cache-Control": "no-store",
    }


def _mismatch(exc: OffsetMismatch) -> JSONResponse:
    body = error_body(
        "offset_mismatch",
        f"the upload is at offset {exc.offset}",
        "Send the chunk that starts at `offset` (HEAD the upload to learn it).",
        offset=exc.offset,
    )
    return JSONResponse(body, status_code=409, headers={"Upload-Offset": str(exc.offset)})


async def _own_upload(request: Request, who: Principal, upload_id: str) -> UploadState:
    """The upload, if it exists and is this booth's (another's is simply not found)."""
    _service(request).check_uploader(who)
    state: UploadState = await _staged(staging_of(request).state, upload_id)
    if state.upload.booth_id != who.subject:
        raise _staging_error(UploadGone(f"no upload {upload_id!r}"))
    return state


# --- grants and reports ------------------------------------------------------------------


@router.post(
    "/claims/{claim_id}/captures",
    status_code=201,
    summary="A grant to deliver one capture (booth in the claim's live session)",
)
async def request_capture_grant(
    request: Request,
    claim_id: ClaimId,
    body: GrantRequest,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    service = _service(request)
    service.check_uploader(who)
    key = _require_key(idempotency_key)
    stored = await service.issue_grant(
        who, claim_id, body.kind, body.session_id, body.capture_id, key
    )
    return _stored(stored)


@router.post(
    "/claims/{claim_id}/captures/{capture_id}/undeliverable",
    status_code=201,
    summary="The booth gave up on a capture: audited, and the officer and supervisors told",
)
async def report_undeliverable(
    request: Request,
    claim_id: ClaimId,
    capture_id: Annotated[str, Path(min_length=1, max_length=64, pattern=CAPTURE_ID)],
    body: UndeliverableReport,
    idempotency_key: IdempotencyKey,
    grant_token: CaptureGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    service = _service(request)
    service.check_uploader(who)
    key = _require_key(idempotency_key)
    stored = await service.capture_undeliverable(
        who, claim_id, capture_id, grant_token, body.model_dump(), key
    )
    if stored.status_code == 201 and not stored.replayed:
        request.app.state.metrics.captures_undeliverable.labels(reason=body.reason).inc()
        await notify_capture_undeliverable(request, {**stored.body, "branch": who.branch})
    return _stored(stored)


async def notify_capture_undeliverable(request: Request, report: dict[str, Any]) -> None:
    """Tell the people: the floor shows the officer serving the claim the capture failed,
    and supervisors an alert (besides the audit entry `capture.undeliverable`, the error
    log line and the `loket_captures_undeliverable_total` counter)."""
    try:
        await request.app.state.floor.capture_undeliverable(report)
    except Exception:  # the report is committed; telling people is best effort
        log.exception("capture_undeliverable_hook_failed")


# --- resumable uploads -------------------------------------------------------------------


def _upload_json(state: UploadState, settings: Settings) -> dict[str, Any]:
    upload = state.upload
    return {
        "upload_id": upload.upload_id,
        "location": f"/api/uploads/{upload.upload_id}",
        "offset": state.offset,
        "length": upload.length,
        "chunk_max": settings.upload_chunk_max_bytes,
        "chunk_min": settings.upload_chunk_min_bytes,
        "expires_at": state.touched_at + settings.upload_expiry,
    }


@router.post(
    "/claims/{claim_id}/uploads",
    status_code=201,
    summary="Create (or find again) a resumable upload of a document picture",
)
async def create_upload(
    request: Request,
    claim_id: ClaimId,
    kind: KindQuery,
    body: UploadCreate,
    idempotency_key: IdempotencyKey,
    grant_token: CaptureGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    service = _service(request)
    settings = service.settings
    service.check_uploader(who)
    key = _require_key(idempotency_key)
    if body.length > settings.max_document_bytes:
        limit = settings.max_document_bytes
        raise ApiError(413, "too_large", f"uploads are limited to {limit:,} bytes")
    done = await service.stored_upload(who, claim_id, kind, body.sha256, key)
    if done is not None:  # every chunk arrived and the document was stored before
        return _stored(done)
    await service.prepare_upload(who, claim_id, kind, key, grant_token)
    staged = StagedUpload(
        upload_id_for(who.subject, key), who.subject, claim_id, kind, key, body.length,
        body.sha256, body.content_type, grant=grant_token, created_at=time.time(),
    )  # fmt: skip
    state, created = await _staged(staging_of(request).create, staged)
    headers = {**_offset_headers(state), "Location": f"/api/uploads/{staged.upload_id}"}
    return JSONResponse(
        _upload_json(state, settings), status_code=201 if created else 200, headers=headers
    )


@router.head("/uploads/{upload_id}", summary="Where a resumable upload stands (Upload-Offset)")
async def upload_offset(
    request: Request, upload_id: UploadId, who: Principal = Depends(current_principal)
) -> Response:
    state = await _own_upload(request, who, upload_id)
    return Response(status_code=200, headers=_offset_headers(state))


def _check_chunk_sum(header: str | None, data: bytes) -> None:
    if header is None:
        return
    algorithm, _, value = header.partition(" ")
    if algorithm.lower() != "sha256":
        raise ApiError(400, "checksum_algorithm", "Upload-Checksum: only sha256 is supported")
    try:
        expected = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_checksum", "Upload-Checksum: sha256 <base64>") from None
    if not hmac.compare_digest(expected, hashlib.sha256(data).digest()):
        raise ApiError(
            460, "chunk_checksum_mismatch", "the chunk arrived damaged: nothing was stored",
            "Send the same chunk again.",
        )  # fmt: skip


async def _read_chunk(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(413, "chunk_too_large", f"a chunk is at most {limit:,} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_large
        chunks.append(piece)
    return b"".join(chunks)


@router.patch(
    "/uploads/{upload_id}",
    summary="Send the chunk at Upload-Offset; the last one stores the document",
    responses={204: {"description": "chunk stored; Upload-Offset says where to go on"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {CHUNK_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def patch_upload(
    request: Request,
    upload_id: UploadId,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0, le=2**31)],
    upload_checksum: Annotated[str | None, Header(alias="Upload-Checksum", max_length=100)] = None,
    who: Principal = Depends(current_principal),
) -> Response:
    state = await _own_upload(request, who, upload_id)
    settings = _service(request).settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != CHUNK_TYPE:
        raise ApiError(415, "unsupported_media_type", f"send chunks as {CHUNK_TYPE}")
    if upload_offset != state.offset:  # before the body: a wrong offset costs no read
        return _mismatch(OffsetMismatch(state.offset))
    data = await _read_chunk(request, settings.upload_chunk_max_bytes)
    _check_chunk_sum(upload_checksum, data)
    last = upload_offset + len(data) == state.upload.length
    if data and not last and len(data) < settings.upload_chunk_min_bytes:
        raise ApiError(
            400, "chunk_too_small",
            f"a chunk other than the last is at least {settings.upload_chunk_min_bytes:,} bytes",
        )  # fmt: skip
    try:
        state = await _staged(staging_of(request).append, upload_id, upload_offset, data)
    except OffsetMismatch as exc:  # another request wrote this offset first
        return _mismatch(exc)
    if not state.complete:
        return Response(status_code=204, headers=_offset_headers(state))
    return await _finish(request, who, state)


async def _finish(request: Request, who: Principal, state: UploadState) -> Response:
    """Every chunk is here: check the whole picture and store it as the one-shot POST does
    (same Idempotency-Key: same document). The staged chunks go once it is stored, or once
    it is refused for good; a server fault keeps them, and an empty PATCH at the final
    offset tries again."""
    service, staging, upload = _service(request), staging_of(request), state.upload
    picture: bytes = await _staged(staging.assemble, upload.upload_id)
    if hashlib.sha256(picture).hexdigest() != upload.sha256:
        await asyncio.to_thread(staging.discard, upload.upload_id)
        raise ApiError(
            422, "checksum_mismatch", "the picture does not match the SHA-256 declared for it",
            "Create the upload again with the picture's real SHA-256.",
        )  # fmt: skip
    try:
        stored = await service.upload(
            who, upload.claim_id, upload.kind, picture, upload.idempotency_key, upload.grant
        )
    except (RecordsError, ApiError, ImageRejected) as exc:
        if isinstance(exc, ImageRejected) or exc.status < 500:  # refused for good
            await asyncio.to_thread(staging.discard, upload.upload_id)
        raise
    await asyncio.to_thread(staging.discard, upload.upload_id)
    await announce_document(request, stored)
    response = _stored(stored)
    response.headers["Upload-Offset"] = str(upload.length)
    return response
