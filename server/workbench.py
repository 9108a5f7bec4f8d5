"""The verification workbench: the member record beside each identity document's fields,
the machine's advice pre-filled, the officer's states, and the evidence an outcome keeps.

The rules are in server/domain/verification.py (pure); the comparisons of what was read
with the record are reading/compare.py's, made when the workbench is shown, so a record
looked up again needs no new reading. Every view is an audited read; every state the
officer sets is a change with its audit entry, in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reading.compare import Comparison, compare
from reading.fields import Field
from server.domain.access import Action, Reach
from server.domain.audit import canonical_json
from server.domain.claims import FINAL_STATES, Claim, ClaimRuleError, IdentityCheck
from server.domain.documents import DocumentKind, Verdict, display_name
from server.domain.members import LABELS, MEMBER_FIELDS, MemberRecord, local_day, payable_from
from server.domain.privacy import mask_nik
from server.domain.verification import (
    FACE_SUGGESTION,
    PHOTO,
    CheckKey,
    DocumentFacts,
    FieldCheck,
    FieldEvidence,
    FieldState,
    fields_of,
    identity_check,
    judge_field,
    machine_state,
    record_value,
    summary,
)
from server.ports.records import AnalysisRecord, DocumentRecord, RecordsTx, StoredResponse
from server.principal import Principal
from server.record_views import claim_checklist

if TYPE_CHECKING:
    from server.records import RecordsService

FACE_STILL = "face_still"


@dataclass(frozen=True)
class Snapshot:
    """Everything the workbench shows of one claim, read in one transaction."""

    claim: Claim
    member: MemberRecord | None
    documents: list[DocumentRecord]
    analyses: list[AnalysisRecord]
    checks: list[FieldCheck]

    @property
    def checks_by_key(self) -> dict[CheckKey, FieldCheck]:
        return {(c.document_id, c.field): c for c in self.checks}

    def analysis(self, document_id: str, what: str) -> AnalysisRecord | None:
        return next((a for a in self.analyses
                     if a.document_id == document_id and a.analysis == what), None)  # fmt: skip

    def facts(self) -> list[DocumentFacts]:
        return [
            DocumentFacts(d.document_id, DocumentKind(d.kind),
                          Verdict(d.verdict) if d.verdict else None, d.purged_at is not None)
            for d in self.documents
        ]  # fmt: skip


def load(tx: RecordsTx, claim_id: str) -> Snapshot | None:
    claim = tx.get_claim(claim_id)
    if claim is None:
        return None
    return Snapshot(claim, tx.get_claim_member(claim_id), tx.documents_of(claim_id),
                    tx.analyses_of(claim_id), tx.field_checks_of(claim_id))  # fmt: skip


def identity_of(snap: Snapshot, today: date) -> IdentityCheck:
    return identity_check(snap.claim, snap.member, snap.facts(), snap.checks_by_key, today)


# --- the machine's advice, field by field ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Advice:
    read: str | None
    confidence: float | None
    state: FieldState | None
    score: float | None


def _record_for_compare(claim: Claim, member: MemberRecord | None) -> dict[str, object]:
    record: dict[str, object] = {"nik": claim.nik, "kpj": claim.kpj}
    if member is not None:
        record.update(
            name=member.full_name, birth_place=member.birth_place, birth_date=member.birth_date,
            sex=member.sex, account_number=member.account_number,
            holder_name=member.account_holder,
        )  # fmt: skip
    return record


_BAND_WORDS = {"likely_same": "likely the same person", "uncertain": "uncertain",
               "likely_different": "likely different people"}  # fmt: skip


def advice(snap: Snapshot) -> dict[CheckKey, Advice]:
    """What the machine suggests for each field: a reading compared with the record now,
    and for a KTP's photo the face comparison's band (uncertain: no suggestion)."""
    out: dict[CheckKey, Advice] = {}
    record = _record_for_compare(snap.claim, snap.member)
    for doc in snap.documents:
        found = snap.analysis(doc.document_id, "reading")
        if found is None or found.status != "done" or doc.purged_at is not None:
            continue
        values = found.result.get("fields", {})
        confidence = found.result.get("confidence", {})
        fields = {n: Field(v, float(confidence.get(n, 0.0))) if v is not None
                  else Field.unreadable() for n, v in values.items()}  # fmt: skip
        compared: Mapping[str, Comparison] = compare(fields, record)
        for name, read in fields.items():
            c = compared.get(name)
            out[(doc.document_id, name)] = Advice(
                read.value, round(read.confidence, 3) if read.value is not None else None,
                machine_state(c.state.value) if c else None, c.score if c else None,
            )  # fmt: skip
    for face in snap.analyses:
        if face.analysis == "face" and face.status == "done":
            card = face.result.get("ktp_document_id")
            band = face.result.get("band")
            similarity = face.result.get("similarity")
            said = (f"{_BAND_WORDS.get(str(band), band)}, similarity {similarity:.2f}"
                    if band else face.result.get("message"))  # fmt: skip
            out[(str(card), PHOTO)] = Advice(said, None, FACE_SUGGESTION.get(str(band)), similarity)
    return out


# --- JSON for the console --------------------------------------------------------------------


def _masked(field: str, value: str | None, reach: Reach) -> str | None:
    return mask_nik(value) if field == "nik" and value and reach is not Reach.FULL_NIK else value


def member_json(snap: Snapshot, reach: Reach, today: date) -> dict[str, Any]:
    member, claim = snap.member, snap.claim
    body: dict[str, Any] = {
        "nik": claim.nik if reach is Reach.FULL_NIK else mask_nik(claim.nik),
        "kpj": claim.kpj,
        "claim_type": str(claim.claim_type),
        "known": member is not None,
    }
    if member is None:
        return body
    values = member.values()
    first = payable_from(claim.claim_type, member.employment_end)
    body.update(
        fields=[{"field": f, "label": LABELS[f], "value": values[f]} for f in MEMBER_FIELDS],
        source=str(member.source), recorded_at=member.recorded_at.isoformat(),
        confirmed=member.confirmed, note=member.note,
        payable_from=first.isoformat() if first else None,
        waiting=first is not None and today < first,
    )  # fmt: skip
    return body


# What the console shows of an analysis's result (not the raw text lines or model files).
_SHOWN = ("ms", "rotation", "checks", "similarity", "band", "message", "still_document_id",
          "ktp_document_id", "live", "document", "bands")  # fmt: skip


# A job still "pending" this long after it began was cut short (the server stopped).
PENDING_STALE = timedelta(minutes=5)


def _analysis_json(found: AnalysisRecord | None, now: datetime) -> dict[str, Any] | None:
    if found is None:
        return None
    body: dict[str, Any] = {"status": found.status, "reason": found.reason}
    if found.status == "pending" and now - found.started_at > PENDING_STALE:
        body.update(status="unavailable", reason="interrupted (the server stopped meanwhile)")
    if found.status == "done":
        for key in _SHOWN:
            if key in found.result:
                body[key] = found.result[key]
    else:
        for key in ("still_document_id", "ktp_document_id"):
            if key in found.result:
                body[key] = found.result[key]
    return body


def workbench_json(
    snap: Snapshot, reach: Reach, now: datetime, *, reading: bool, faces: bool
) -> dict[str, Any]:
    """The workbench as the console draws it: the record, each identity document with its
    fields (record, reading, confidence, suggestion, the officer's state), the face still
    and its comparison, and what still stands between the claim and an approval."""
    checks, suggested = snap.checks_by_key, advice(snap)
    documents = []
    for doc in snap.documents:
        if doc.purged_at is not None or not (fields_of(doc.kind) or doc.kind == FACE_STILL):
            continue
        rows = []
        for spec in fields_of(doc.kind):
            key = (doc.document_id, spec.name)
            got, hint = checks.get(key), suggested.get(key)
            record = record_value(spec.name, snap.claim, snap.member)
            rows.append({
                "field": spec.name, "label": spec.label,
                "record": _masked(spec.name, record, reach),
                "read": _masked(spec.name, hint.read, reach) if hint else None,
                "confidence": hint.confidence if hint else None,
                "suggested": str(hint.state) if hint and hint.state else None,
                "score": hint.score if hint else None,
                "state": str(got.state) if got else None,
                "reason_code": got.reason_code if got else None,
                "override": got.override if got else False,
                "checked_by": got.checked_by if got else None,
            })  # fmt: skip
        documents.append({
            "document_id": doc.document_id, "kind": doc.kind,
            "name": display_name(DocumentKind(doc.kind)),
            "verdict": doc.verdict, "uploaded_at": doc.uploaded_at.isoformat(),
            "reading": _analysis_json(snap.analysis(doc.document_id, "reading"), now),
            "fields": rows,
        })  # fmt: skip
    stills = [d for d in snap.documents if d.kind == FACE_STILL and d.purged_at is None]
    newest = max(stills, key=lambda d: d.uploaded_at) if stills else None
    face = _analysis_json(snap.analysis(newest.document_id, "face"), now) if newest else None
    today = local_day(now)
    identity = identity_of(snap, today)
    complete = claim_checklist(snap.claim, snap.documents).complete
    return {
        "claim_id": snap.claim.claim_id,
        "member": member_json(snap, reach, today),
        "documents": documents,
        "face": {"still_document_id": newest.document_id if newest else None, **(face or {})},
        "approval": {
            "ok": complete and identity.confirmed,
            "checklist_complete": complete,
            "problems": [{"code": c, "message": m} for c, m in identity.problems],
        },
        "advice": {"reading": reading, "faces": faces},
    }


# --- evidence on the outcome -----------------------------------------------------------------


def evidence(snap: Snapshot, identity: IdentityCheck) -> tuple[dict[str, Any], str]:
    """What was compared, as the outcome keeps it, and the SHA-256 of its canonical JSON
    (the outcome's audit entry holds it, so the chain covers the evidence)."""
    checks, suggested = snap.checks_by_key, advice(snap)
    fields: list[FieldEvidence] = []
    for doc in snap.documents:
        if doc.purged_at is not None:
            continue
        for spec in fields_of(doc.kind):
            key = (doc.document_id, spec.name)
            got, hint = checks.get(key), suggested.get(key)
            fields.append(FieldEvidence(
                document_id=doc.document_id, kind=doc.kind, field=spec.name,
                record=record_value(spec.name, snap.claim, snap.member),
                read=hint.read if hint else None, confidence=hint.confidence if hint else None,
                suggested=str(hint.state) if hint and hint.state else None,
                state=str(got.state) if got else None,
                reason_code=got.reason_code if got else None,
                override=got.override if got else False,
                checked_by=got.checked_by if got else None,
            ))  # fmt: skip
    faces = [a for a in snap.analyses if a.analysis == "face" and a.status == "done"]
    face = max(faces, key=lambda a: a.started_at).result if faces else None
    readings = [a for a in snap.analyses if a.analysis == "reading" and a.status == "done"]
    member = snap.member
    body = {
        "member": None if member is None else {
            "source": str(member.source), "recorded_at": member.recorded_at.isoformat(),
            "confirmed": member.confirmed, "note": member.note,
        },
        "fields": [f.as_dict() for f in fields],
        "face": None if face is None else dict(face),
        "models": {
            "reading": readings[-1].result.get("models") if readings else None,
            "face": face.get("models") if face else None,
        },
        "identity": {"confirmed": identity.confirmed,
                     "problems": [{"code": c, "message": m} for c, m in identity.problems]},
        "summary": summary(fields, face),
    }  # fmt: skip
    return body, hashlib.sha256(canonical_json(body)).hexdigest()


# --- the use cases ---------------------------------------------------------------------------


class Workbench:
    """The workbench's reads and changes, through the records service's access policy,
    audit and idempotency (server/records.py)."""

    def __init__(self, records: RecordsService, *, reading: bool, faces: bool) -> None:
        self.records = records
        self.reading, self.faces = reading, faces

    async def view(self, who: Principal, claim_id: str) -> dict[str, Any]:
        """The workbench of a claim: its serving officer sees the full NIK (audited as
        `member.viewed`); supervisors a masked one; auditors everything."""
        records = self.records
        claim = await records.claim(claim_id)
        decision, _ = await records.access(who, Action.MEMBER_READ, claim_id, claim.branch)
        snap = await records.store.read(lambda tx: load(tx, claim_id))
        assert snap is not None
        await records.audit_read(who, "member.viewed", claim_id=claim_id,
                                 details={"reach": str(decision.reach)})  # fmt: skip
        return workbench_json(
            snap, decision.reach, records.now(), reading=self.reading, faces=self.faces
        )

    async def check_field(
        self,
        cso: Principal,
        claim_id: str,
        document_id: str,
        field: str,
        state: str,
        reason_code: str | None,
        idempotency_key: str,
    ) -> StoredResponse:
        """The officer's state for one field of one document (the machine's suggestion at
        that moment is kept beside it, so an override is on record)."""
        from server.records import RecordsError, from_rule, idempotency_owner, request_hash

        records = self.records
        digest = request_hash("field", claim_id, document_id, field, state, reason_code or "")
        allowed = await records.access_for_change(cso, Action.DOCUMENT_JUDGE, claim_id,
                                                  idempotency_key, digest)  # fmt: skip
        if isinstance(allowed, StoredResponse):
            return allowed

        def work(tx: RecordsTx) -> tuple[int, dict[str, Any]]:
            snap = load(tx, claim_id)
            doc = tx.get_document(document_id)
            if snap is None or doc is None or doc.claim_id != claim_id or doc.purged_at:
                raise RecordsError(404, "not_found", f"no document {document_id} on this claim")
            if snap.claim.state in FINAL_STATES:  # its outcome keeps what was compared
                raise RecordsError(409, "claim_decided", f"the claim is {snap.claim.state}")
            hint = advice(snap).get((document_id, field))
            now = records.now()
            try:
                check = judge_field(
                    document_id, DocumentKind(doc.kind), field, FieldState(state), reason_code,
                    suggested=hint.state if hint else None, by=cso.subject, at=now,
                )  # fmt: skip
            except ClaimRuleError as exc:
                raise from_rule(exc) from None
            records.start_verification(tx, cso, snap.claim)
            tx.append_audit(records.draft(
                cso, "field.checked", claim_id=claim_id,
                decision=str(check.state), reason_codes=(reason_code,) if reason_code else (),
                evidence=(doc.sha256,),
                details={"document_id": document_id, "kind": doc.kind, "field": field,
                         "suggested": str(check.suggested) if check.suggested else None,
                         "override": check.override},
            ), now)  # fmt: skip
            tx.set_field_check(claim_id, check)
            return 200, {"document_id": document_id, "field": field, "state": str(check.state),
                         "reason_code": check.reason_code, "override": check.override}  # fmt: skip

        return await records.store.idempotent(idempotency_owner(cso), idempotency_key, digest, work)
