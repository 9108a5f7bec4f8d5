"""REST API for claims, documents and outcomes (OpenAPI at /docs).

Every mutating POST needs an `Idempotency-Key` header: the same key and body returns the
first response (marked `Idempotent-Replayed: true`), the same key with another body is a
409. An acknowledged upload, verdict or outcome is committed with its audit entry first.
"""

from __future__ import annotations

import contextlib
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from server.api.errors import error_body
from server.api.params import (
    MAX_OFFSET,
    NOTE_PATTERN,
    TEXT_PATTERN,
    ClaimId,
    DocumentId,
    Timestamp,
)
from server.auth.deps import current_principal
from server.domain.access import Action, Reach, decide
from server.domain.claims import REASONS
from server.domain.csv_cells import SpreadsheetCsv
from server.domain.documents import DocumentKind
from server.domain.images import ImageRejected, RejectCode
from server.ports.records import IdempotencyConflict, OutcomeFilter, StoredResponse
from server.principal import Principal
from server.record_views import EXPORT_FIELDS, export_rows, outcome_json
from server.records import RecordsError, RecordsService, refused

router = APIRouter(prefix="/api", tags=["records"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        pattern=r"^[ -~]*[!-~][ -~]*$",  # printable ASCII, not blank
        description="unique per intended change (e.g. a UUID); retries reuse it",
    ),
]
CaptureGrantHeader = Annotated[
    str | None,
    Header(
        alias="Loket-Capture-Grant",
        max_length=1024,
        description="the capture's grant (POST /api/claims/{id}/captures): accepted after "
        "the session ended too",
    ),
]
ACCEPTED_TYPES = {"image/jpeg", "image/png"}
_IMAGE_STATUS = {
    RejectCode.NOT_AN_IMAGE: 415,
    RejectCode.UNSUPPORTED_TYPE: 415,
    RejectCode.TOO_LARGE: 413,
    RejectCode.CORRUPT: 422,
    RejectCode.EMPTY: 422,
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Checked against the catalogue by the claim rules (422 `unknown_reason`).
ReasonCode = Annotated[
    str, Field(max_length=64, json_schema_extra={"enum": [r.code for r in REASONS]})
]


class VerdictRequest(Strict):
    verdict: Literal["accepted", "rejected"]
    reason_codes: list[ReasonCode] = Field(default=[], max_length=10)


class OutcomeRequest(Strict):
    decision: Literal["approved", "rejected", "needs_follow_up"]
    reason_codes: list[ReasonCode] = Field(default=[], max_length=10)
    note: Annotated[str, Field(max_length=2000, pattern=NOTE_PATTERN)] = ""


def _service(request: Request) -> RecordsService:
    service: RecordsService = request.app.state.records
    return service


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, hint: str | None = None) -> None:
        self.status, self.code, self.message, self.hint = status, code, message, hint


def install_records_errors(app: Any) -> None:
    @app.exception_handler(RecordsError)
    async def _records(_: Request, exc: RecordsError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.hint), status_code=exc.status)

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return JSONResponse(
            error_body(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
                "Use a new key for a new change; reuse a key only to retry the same request.",
            ),
            status_code=409,
        )

    @app.exception_handler(ImageRejected)
    async def _image(_: Request, exc: ImageRejected) -> JSONResponse:
        return JSONResponse(
            error_body(str(exc.code), exc.message), status_code=_IMAGE_STATUS[exc.code]
        )


def _require_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise ApiError(
            400, "idempotency_key_required", "send an Idempotency-Key header",
            "Generate one UUID per change and reuse it when you retry.",
        )  # fmt: skip
    if len(key) > 128 or not key.isprintable():
        raise ApiError(
            400, "invalid_idempotency_key", "Idempotency-Key: at most 128 printable characters"
        )
    return key


def _stored(result: StoredResponse) -> JSONResponse:
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.get("/claims", summary="Find claims by booking code or NIK")
async def lookup_claims(
    request: Request,
    booking_code: Annotated[str | None, Query(max_length=32, pattern=TEXT_PATTERN)] = None,
    nik: Annotated[str | None, Query(max_length=16, pattern=r"^\d{16}$")] = None,
    who: Principal = Depends(current_principal),
) -> list[dict[str, Any]]:
    return await _service(request).lookup(who, booking_code=booking_code, nik=nik)


@router.get("/claims/{claim_id}", summary="A claim with its document checklist and evidence")
async def read_claim(
    request: Request, claim_id: ClaimId, who: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return await _service(request).claim_view(who, claim_id)


def _too_large(limit: int) -> ImageRejected:
    return ImageRejected(
        RejectCode.TOO_LARGE, f"uploads are limited to {limit:,} bytes ({limit / 2**20:.1f} MiB)"
    )


def _check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` (a missing or false Content-Length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/claims/{claim_id}/documents",
    status_code=201,
    summary="Upload a document picture (booth in the claim's live session)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in ACCEPTED_TYPES
            },
        }
    },
)
async def upload_document(
    request: Request,
    claim_id: ClaimId,
    kind: Annotated[DocumentKind, Query(description="e.g. ktp, kk, kpj_card")],
    idempotency_key: IdempotencyKey,
    grant_token: CaptureGrantHeader = None,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    # Everything that needs no body first: a refused upload costs no 8 MB read.
    service = _service(request)
    limit = service.settings.max_document_bytes
    service.check_uploader(who)  # the role: booths only
    key = _require_key(idempotency_key)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_TYPES:
        raise ApiError(
            415, "unsupported_media_type", f"Content-Type {content_type or 'missing'}",
            "Send the picture's bytes as the body with Content-Type image/jpeg or image/png.",
        )  # fmt: skip
    _check_declared_length(request, limit)
    # The role, and the live session and its state (or the grant).
    await service.prepare_upload(who, claim_id, kind, key, grant_token)
    data = await _read_limited(request, limit)
    # Decided again on the body: the session may have ended while it arrived (a retry
    # of an upload answered before then gets its stored answer).
    stored = await service.upload(who, claim_id, kind, data, key, grant_token)
    await announce_document(request, stored)
    return _stored(stored)


async def announce_document(request: Request, stored: StoredResponse) -> None:
    """A document just stored: the CSO's console shows it at once (a push, not a poll),
    and its machine advice starts off the event loop (server/analysis.py)."""
    if stored.status_code == 201 and not stored.replayed:
        request.app.state.analyst.document_stored(stored.body)
        with contextlib.suppress(Exception):
            await request.app.state.floor.document_stored(stored.body)


@router.get("/documents/{document_id}", summary="The document picture (audited read)")
async def download_document(
    request: Request, document_id: DocumentId, who: Principal = Depends(current_principal)
) -> Response:
    doc, data = await _service(request).read_document(who, document_id)
    return Response(
        data,
        media_type=doc.content_type,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{doc.kind}-{doc.sha256[:12]}"',
            "Digest": f"sha-256={doc.sha256}",
        },
    )


@router.post("/documents/{document_id}/verdict", summary="Accept or reject a document")
async def judge_document(
    request: Request,
    document_id: DocumentId,
    body: VerdictRequest,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    service = _service(request)
    return _stored(await service.judge(who, document_id, body.verdict, body.reason_codes, key))


@router.post("/claims/{claim_id}/outcome", status_code=201, summary="Record the claim decision")
async def record_outcome(
    request: Request,
    claim_id: ClaimId,
    body: OutcomeRequest,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    result = await _service(request).record_outcome(
        who, claim_id, body.decision, body.reason_codes, body.note, key
    )
    return _stored(result)


@router.get("/outcomes", summary="List or export outcomes (supervisors, auditors)")
async def list_outcomes(
    request: Request,
    branch: Annotated[str | None, Query(max_length=32, pattern=TEXT_PATTERN)] = None,
    cso: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
    decision: Literal["approved", "rejected", "needs_follow_up"] | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    format: Literal["json", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    who: Principal = Depends(current_principal),
) -> Response:
    service = _service(request)
    where = OutcomeFilter(branch, cso, decision, since, until, limit, offset)
    found, allowed = await service.outcomes(who, where)  # within the reader's branches
    if format == "json":
        # Auditors get each outcome's full verification evidence; others its summary.
        auditor = allowed.reach is Reach.FULL_NIK
        body = [outcome_json(o, evidence=auditor) for o in found]
        await service.audit_outcomes_read(who, where, fmt="json", rows=len(found), full_nik=auditor)
        return JSONResponse(body)
    full_nik = allowed.reach is Reach.FULL_NIK
    rows = await export_rows(service.store, found, full_nik=full_nik)
    await service.audit_outcomes_read(who, where, fmt="csv", rows=len(rows), full_nik=full_nik)
    out = io.StringIO()
    writer = SpreadsheetCsv(out, EXPORT_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="outcomes.csv"'},
    )


@router.get("/reasons", summary="The reason-code catalogue (English and Bahasa Indonesia)")
async def reasons(_: Principal = Depends(current_principal)) -> list[dict[str, Any]]:
    return [
        {"code": r.code, "en": r.text_en, "id": r.text_id, "for": sorted(r.applies_to)}
        for r in REASONS
    ]


@router.get("/audit/verify", summary="Check the audit chain (auditors, supervisors)")
async def verify_audit(
    request: Request, who: Principal = Depends(current_principal)
) -> dict[str, Any]:
    decision = decide(who, Action.AUDIT_VERIFY)
    if not decision:
        raise refused(decision)
    count, problems = await _service(request).verify_audit()
    return {
        "entries": count,
        "intact": not problems,
        "problems": [{"seq": p.seq, "kind": str(p.kind), "message": p.message} for p in problems],
    }
