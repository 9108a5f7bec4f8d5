"""REST API of the verification workbench (server/workbench.py): the member record beside
each identity document's fields, the officer's state for each field, and a new lookup of
the member in the directory. Changes need an `Idempotency-Key`, as every records POST."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from server.api.params import ID_PATTERN, ClaimId
from server.api.records import IdempotencyKey, ReasonCode, Strict, _require_key, _stored
from server.auth.deps import current_principal
from server.principal import Principal
from server.records import RecordsService
from server.workbench import Workbench

router = APIRouter(prefix="/api", tags=["verification"])


class FieldRequest(Strict):
    document_id: Annotated[str, Field(min_length=1, max_length=32, pattern=ID_PATTERN)]
    field: Annotated[str, Field(min_length=1, max_length=24, pattern=r"^[a-z_]+$")]
    state: Literal["matches", "differs", "unreadable"]
    reason_code: ReasonCode | None = None


def _workbench(request: Request) -> Workbench:
    workbench: Workbench = request.app.state.workbench
    return workbench


@router.get(
    "/claims/{claim_id}/verification",
    summary="The member record beside each identity document's fields (audited read)",
)
async def read_workbench(
    request: Request, claim_id: ClaimId, who: Principal = Depends(current_principal)
) -> dict[str, Any]:
    return await _workbench(request).view(who, claim_id)


@router.post(
    "/claims/{claim_id}/fields",
    summary="Set an identity field's state: matches, differs (with a reason) or unreadable",
)
async def check_field(
    request: Request,
    claim_id: ClaimId,
    body: FieldRequest,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    result = await _workbench(request).check_field(
        who, claim_id, body.document_id, body.field, body.state, body.reason_code, key
    )
    return _stored(result)


@router.post(
    "/claims/{claim_id}/member/lookup",
    summary="Look the member up in the directory again (replaces a record not confirmed)",
)
async def look_up_member(
    request: Request,
    claim_id: ClaimId,
    idempotency_key: IdempotencyKey,
    who: Principal = Depends(current_principal),
) -> JSONResponse:
    key = _require_key(idempotency_key)
    records: RecordsService = request.app.state.records
    return _stored(await records.refresh_member(who, claim_id, key))
