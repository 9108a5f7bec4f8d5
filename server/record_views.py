"""JSON views of claims, documents, checklists and outcomes: what the API and exports show.

NIKs are masked (all but the last four digits) unless the reader is an auditor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.domain.access import Reach
from server.domain.claims import Claim
from server.domain.documents import (
    Checklist,
    DocumentKind,
    Verdict,
    checklist,
    display_name,
    required_documents,
)
from server.domain.privacy import mask_nik
from server.ports.records import DocumentRecord, OutcomeRecord, RecordStore

# Which of several pictures of one kind counts: an accepted one, else one still to be
# judged (a new copy after a rejection), else a rejected one.
_RANK: dict[Verdict | None, int] = {Verdict.ACCEPTED: 0, None: 1, Verdict.REJECTED: 2}


def claim_checklist(claim: Claim, docs: Iterable[DocumentRecord]) -> Checklist:
    """The claim's requirements against the best verdict of each document kind."""
    best: dict[DocumentKind, Verdict | None] = {}
    for doc in docs:
        if doc.purged_at is not None:
            continue
        kind = DocumentKind(doc.kind)
        verdict = Verdict(doc.verdict) if doc.verdict else None
        if kind not in best or _RANK[verdict] < _RANK[best[kind]]:
            best[kind] = verdict
    return checklist(required_documents(claim.claim_type, claim.balance_idr), best)


def claim_json(claim: Claim, *, full_nik: bool) -> dict[str, Any]:
    return {
        "claim_id": claim.claim_id,
        "booking_code": claim.booking_code,
        "kpj": claim.kpj,
        "nik": claim.nik if full_nik else mask_nik(claim.nik),
        "branch": claim.branch,
        "claim_type": str(claim.claim_type),
        "appointment": claim.appointment.isoformat() if claim.appointment else None,
        "balance_idr": claim.balance_idr,
        "state": str(claim.state),
        "walk_in": claim.walk_in,
        "registered_at": claim.registered_at.isoformat(),
    }


def claim_summary_json(claim: Claim) -> dict[str, Any]:
    """What a CSO's lookup shows: enough to say "found" and pick the claim, nothing more
    (no KPJ, balance, booking code or branch)."""
    return {
        "claim_id": claim.claim_id,
        "claim_type": str(claim.claim_type),
        "state": str(claim.state),
        "nik": mask_nik(claim.nik),
    }


def claim_json_for(claim: Claim, reach: Reach) -> dict[str, Any]:
    """The claim as much as an access decision's `reach` allows."""
    if reach is Reach.MASKED:
        return claim_summary_json(claim)
    if reach in (Reach.FULL, Reach.FULL_NIK):
        return claim_json(claim, full_nik=reach is Reach.FULL_NIK)
    raise ValueError(f"no view of a claim for reach {reach}")


def document_json(doc: DocumentRecord) -> dict[str, Any]:
    return {
        "document_id": doc.document_id,
        "claim_id": doc.claim_id,
        "kind": doc.kind,
        "name": display_name(DocumentKind(doc.kind)),
        "sha256": doc.sha256,
        "content_type": doc.content_type,
        "size_bytes": doc.size_bytes,
        "width": doc.width,
        "height": doc.height,
        "uploaded_by": doc.uploaded_by,
        "uploaded_at": doc.uploaded_at.isoformat(),
        "verdict": doc.verdict,
        "verdict_reasons": list(doc.verdict_reasons),
        "verdict_by": doc.verdict_by,
        "purged": doc.purged_at is not None,
        "after_session": doc.after_session,
    }


def checklist_json(items: Checklist) -> dict[str, Any]:
    return {
        "complete": items.complete,
        "items": [
            {
                "requirement": check.requirement.key,
                "any_of": [str(k) for k in check.requirement.any_of],
                "names": [display_name(k) for k in check.requirement.any_of],
                "why": check.requirement.reason,
                "status": str(check.status),
            }
            for check in items.items
        ],
    }


def verification_summary(outcome: OutcomeRecord) -> dict[str, Any] | None:
    """What was compared, without personal values (server/workbench.py `evidence`)."""
    found = outcome.verification
    if found is None:
        return None
    member = found.get("member") or {}
    face = found.get("face") or {}
    return {
        **found.get("summary", {}), "member_source": member.get("source"),
        "member_confirmed": member.get("confirmed"),
        "face_still_document_id": face.get("still_document_id"),
        "identity_confirmed": (found.get("identity") or {}).get("confirmed"),
    }  # fmt: skip


def outcome_json(
    outcome: OutcomeRecord, *, audit_hash: str | None = None, evidence: bool = False
) -> dict[str, Any]:
    """An outcome; `audit_hash` (the receipt: its audit entry's SHA-256) when known; the
    full verification evidence (record values, readings: personal data) when `evidence`
    (auditors), else its summary."""
    body = {
        "outcome_id": outcome.outcome_id,
        "claim_id": outcome.claim_id,
        "decision": outcome.decision,
        "reason_codes": list(outcome.reason_codes),
        "note": outcome.note,
        "decided_by": outcome.decided_by,
        "branch": outcome.branch,
        "session_id": outcome.session_id,
        "fingerprints": list(outcome.fingerprints),
        "evidence": list(outcome.evidence),
        "decided_at": outcome.decided_at.isoformat(),
        "audit_seq": outcome.audit_seq,
        "verification": verification_summary(outcome),
        "verification_sha256": outcome.verification_sha256,
    }
    if evidence:
        body["evidence_detail"] = outcome.verification
    if audit_hash is not None:
        body["audit_hash"] = audit_hash
    return body


EXPORT_FIELDS = (
    "outcome_id", "decided_at", "claim_id", "booking_code", "kpj", "nik", "claim_type",
    "branch", "decision", "reason_codes", "note", "decided_by", "session_id", "evidence",
    "fingerprints", "audit_seq",
    # What was compared (server/workbench.py): counts, codes and the face's band, never a
    # personal value; the full evidence hashes to verification_sha256 (in the audit chain).
    "member_source", "fields_checked", "fields_matching", "fields_differing",
    "fields_unreadable", "fields_unchecked", "overrides", "mismatches", "overridden",
    "face_band", "face_similarity", "face_still_document_id", "verification_sha256",
)  # fmt: skip

_SUMMARY_COLUMNS = {
    "member_source": "member_source", "fields_checked": "fields", "fields_matching": "matches",
    "fields_differing": "differs", "fields_unreadable": "unreadable",
    "fields_unchecked": "unchecked", "overrides": "overrides", "face_band": "face_band",
    "face_similarity": "face_similarity", "face_still_document_id": "face_still_document_id",
}  # fmt: skip


async def export_rows(
    store: RecordStore, outcomes: Iterable[OutcomeRecord], *, full_nik: bool
) -> list[dict[str, Any]]:
    """Outcomes joined with their claims, flat, for CSV/JSON export. NIK masked unless
    `full_nik` (auditors)."""
    claims: dict[str, Claim | None] = {}
    rows = []
    for outcome in outcomes:
        if outcome.claim_id not in claims:
            claims[outcome.claim_id] = await store.get_claim(outcome.claim_id)
        claim = claims[outcome.claim_id]
        row = outcome_json(outcome)
        row["reason_codes"] = " ".join(outcome.reason_codes)
        row["evidence"] = " ".join(outcome.evidence)
        row["fingerprints"] = " ".join(outcome.fingerprints)
        summary = row.pop("verification") or {}
        for column, key in _SUMMARY_COLUMNS.items():
            value = summary.get(key)
            row[column] = "" if value is None else value
        row["mismatches"] = " ".join(summary.get("mismatches", []))
        row["overridden"] = " ".join(summary.get("overridden", []))
        row["verification_sha256"] = outcome.verification_sha256 or ""
        if claim is not None:
            row.update(
                booking_code=claim.booking_code or "",
                kpj=claim.kpj,
                nik=claim.nik if full_nik else mask_nik(claim.nik),
                claim_type=str(claim.claim_type),
            )
        rows.append({k: row.get(k, "") for k in EXPORT_FIELDS})
    return rows
